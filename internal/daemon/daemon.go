package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/access"
	"github.com/corral-project/corral/internal/access/pam"
	"github.com/corral-project/corral/internal/cluster"
	"github.com/corral-project/corral/internal/events"
	"github.com/corral-project/corral/internal/guest"
	"github.com/corral-project/corral/internal/lxc"
	"github.com/corral-project/corral/internal/metrics"
	"github.com/corral-project/corral/internal/network/stack"
	"github.com/corral-project/corral/internal/node"
	"github.com/corral-project/corral/internal/qemu"
	"github.com/corral-project/corral/internal/server"
	"github.com/corral-project/corral/internal/storage"
	_ "github.com/corral-project/corral/internal/storage/plugins" // registers every storage plugin
	"github.com/corral-project/corral/internal/store"
	"github.com/corral-project/corral/internal/task"
)

// Build information, set by the linker.
var (
	Version = "0.1.0-dev"
	Commit  = "unknown"
)

// Logger builds the daemon's slog logger from the config.
func Logger(c Config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		lvl = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Run starts a node and blocks until ctx is cancelled (SIGTERM), then shuts
// down in order: stop taking requests, finish or fail tasks, close the store.
// ready, when non-nil, is called once the API serves.
func Run(ctx context.Context, c Config, log *slog.Logger, stdout io.Writer, ready func()) error {
	if err := privateDataDir(c.DataDir, log); err != nil {
		return err
	}
	log.Info("starting corral", "version", Version, "node", c.Node, "data_dir", c.DataDir)

	sctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	pkiDir := filepath.Join(c.DataDir, "pki")
	hosts := []string{c.Node, "localhost", "127.0.0.1", "::1", c.Address}
	if h, _, err := net.SplitHostPort(c.Listen); err == nil && h != "" && h != "0.0.0.0" && h != "::" {
		hosts = append(hosts, h)
	}
	// A founding node makes its CA and node certificate before the store
	// starts, so the store's peer side has a certificate from the start.
	var preCA *cluster.CA
	var err error
	if !cluster.HasPKI(pkiDir) && !exists(filepath.Join(c.DataDir, "store")) {
		if preCA, err = cluster.NewCA(c.Node); err != nil {
			return err
		}
		if _, err := preCA.NodeCert(pkiDir, c.Node, hosts); err != nil {
			return err
		}
	}
	scfg := store.Config{Name: c.Node, DataDir: c.DataDir, ClientURL: c.StoreClientURL, PeerURL: c.StorePeerURL,
		PeerSocket: filepath.Join(c.DataDir, "peer.sock"), Logger: log}
	if cluster.HasPKI(pkiDir) {
		scfg.PeerTLS = cluster.PKIFiles(pkiDir)
	}
	st, err := store.Open(sctx, scfg)
	if err != nil {
		return err
	}
	defer st.Close()
	hub := events.New(st, log, events.Options{})
	defer hub.Close()

	acc := access.New(st, log)
	pamOK, pamWhy := pam.Available()
	if pamOK {
		acc.RegisterRealmType("pam", func(r api.Realm) (access.Authenticator, error) {
			svc := r.Service
			if svc == "" {
				svc = c.PAMService
			}
			return access.AuthFunc(func(ctx context.Context, name, pw string) error {
				return pam.Authenticate(ctx, svc, name, pw)
			}), nil
		})
	} else {
		log.Warn("PAM realm unavailable on this node", "reason", pamWhy)
	}
	generated, err := acc.Bootstrap(sctx, access.BootstrapOptions{AdminPassword: c.AdminPassword, PAM: pamOK, TicketLifetime: c.TicketLifetime})
	if err != nil {
		return err
	}
	pwFile := filepath.Join(c.DataDir, "initial-admin-password")
	if generated != "" {
		if err := os.WriteFile(pwFile, []byte(generated+"\n"), 0o600); err != nil {
			return fmt.Errorf("write initial admin password: %w", err)
		}
		fmt.Fprintf(stdout, "\nNew cluster: user admin@corral, password %s\n(also written to %s)\n\n", generated, pwFile)
	}

	ca, err := cluster.EnsureCA(sctx, st, c.Node, preCA)
	if err != nil {
		return err
	}
	cert, err := ca.NodeCert(pkiDir, c.Node, hosts)
	if err != nil {
		return err
	}

	runCtx, stopRun := context.WithCancel(context.Background())
	defer stopRun()
	nodes := cluster.NewNodes(st)
	if err := nodes.Register(runCtx, log, c.Node, c.Address, Version); err != nil {
		return err
	}
	tasks, err := task.NewManager(st, c.Node, filepath.Join(c.DataDir, "tasks"), log)
	if err != nil {
		return err
	}
	if err := tasks.Recover(sctx); err != nil {
		return err
	}

	stor := storage.NewService(st, c.Node, log)
	if err := stor.EnsureDefault(sctx, filepath.Join(c.DataDir, "storage")); err != nil {
		return err
	}

	auditFile, err := os.OpenFile(filepath.Join(c.DataDir, "audit.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	defer auditFile.Close()

	netStack, err := stack.New(stack.Config{Node: c.Node, NetNS: c.NetNS, Address: c.Address, RunDir: filepath.Join(c.DataDir, "run", "network"),
		Store: st, Log: log, MgmtPorts: mgmtPorts(c), Peers: func() []string {
			var out []string
			for _, n := range nodes.List() {
				out = append(out, n.Address)
			}
			return out
		}})
	if err != nil {
		return err
	}
	defer netStack.Close()

	guests := guest.NewRegistry(st)
	vms, err := qemu.NewManager(qemu.Deps{Node: c.Node, RunDir: filepath.Join(c.DataDir, "run", "qemu"), Log: log, Store: st,
		Guests: guests, Storage: stor, Tasks: tasks,
		KVM: func(ctx context.Context) bool { k, _ := node.KVM(ctx); return k.Available }, Net: netStack})
	if err != nil {
		return err
	}
	vms.Reconcile(sctx)
	defer vms.Close()
	cts, err := lxc.NewManager(lxc.Deps{Node: c.Node, LXCPath: filepath.Join(c.DataDir, "lxc"), Log: log, Store: st,
		Guests: guests, Storage: stor, Tasks: tasks, ImageServer: c.ImageServer, Net: netStack})
	if err != nil {
		return err
	}
	cts.Reconcile(sctx)
	defer cts.Close()
	netStack.Start(runCtx) // after the drivers registered their running guests' NICs

	metricServers := metrics.NewServers(st)
	met, err := metrics.New(metrics.Config{Node: c.Node, Dir: filepath.Join(c.DataDir, "rrd"), Interval: c.MetricsInterval, Log: log,
		Storage: func(ctx context.Context) []metrics.StorageUsage {
			var out []metrics.StorageUsage
			for _, p := range stor.List() {
				if ps := stor.CachedStatus(ctx, p); ps.Active {
					out = append(out, metrics.StorageUsage{Storage: p.Storage, Total: ps.Total, Used: ps.Used})
				}
			}
			return out
		}})
	if err != nil {
		return err
	}
	met.AddGuestSource(vms)
	met.AddGuestSource(cts)
	met.SetServers(metricServers.Configs)
	go met.Run(runCtx)
	go forgetDestroyedGuests(hub, met, c.Node, log)

	srv := server.New(server.Deps{
		Node: c.Node, Version: Version, Commit: Commit, Store: st, Access: acc, Tasks: tasks, Nodes: nodes,
		Guests:  guests,
		VMs:     vms,
		CTs:     cts,
		Net:     netStack,
		Storage: stor,
		Events:  hub,
		Metrics: met, MetricServers: metricServers,
		NodeStatus: func(ctx context.Context) (api.NodeStatus, error) { return node.Status(ctx, c.Node) },
		Audit:      auditFile, Log: log,
	})

	errc := make(chan error, 2)
	httpsLn, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", c.Listen, err)
	}
	hs := &http.Server{
		Handler:           srv,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		// Uploads stream over HTTP/2: larger flow-control windows keep a
		// fast client from waiting on window updates every megabyte.
		HTTP2:    &http.HTTP2Config{MaxReceiveBufferPerStream: 16 << 20, MaxReceiveBufferPerConnection: 32 << 20},
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	go func() { errc <- hs.ServeTLS(httpsLn, "", "") }()

	var us *http.Server
	if c.Socket != "" {
		ln, err := listenUnix(c.Socket)
		if err != nil {
			return err
		}
		us = &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, ConnContext: peerContext}
		go func() { errc <- us.Serve(ln) }()
	}
	vms.StartOnBoot(runCtx, c.DataDir)
	cts.StartOnBoot(runCtx, c.DataDir)
	log.Info("corral API ready", "url", "https://"+displayAddr(httpsLn.Addr().String())+"/api/v1", "socket", c.Socket)
	if ready != nil {
		ready()
	}
	// Start-up (etcd recovery, certificates, the KVM probe) leaves garbage
	// an idle daemon would hold for two minutes until Go's periodic GC.
	debug.FreeOSMemory()

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-errc:
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("listener failed", "err", err)
		}
	}
	shCtx, shCancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer shCancel()
	hub.Close() // ends event streams, which would otherwise hold the listeners open
	hs.Shutdown(shCtx)
	if us != nil {
		us.Shutdown(shCtx)
		os.Remove(c.Socket)
	}
	tasks.Shutdown(shCtx)
	stopRun()
	log.Info("stopped")
	return nil
}

// privateDataDir makes the data dir (store sockets, keys, guest runtime
// files) reachable by its owner only, tightening a looser existing mode.
func privateDataDir(dir string, log *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if fi.Mode().Perm() != 0o700 {
		log.Warn("data dir was reachable by other users; setting mode 0700", "dir", dir, "mode", fi.Mode().Perm().String())
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("data dir mode: %w", err)
		}
	}
	return nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// forgetDestroyedGuests drops the metric history of this node's guests
// when they are destroyed, so a reused ID starts with an empty history.
// It ends when the hub closes (at shutdown).
func forgetDestroyedGuests(hub *events.Hub, met *metrics.Service, node string, log *slog.Logger) {
	last := ""
	handle := func(it *events.Item) {
		last = it.Event.ID
		if e := it.Event; e.Type == api.EventGuestDeleted && e.Node == node {
			if err := met.ForgetGuest(e.VMID); err != nil {
				log.Warn("metrics: removing a destroyed guest's history", "vmid", e.VMID, "err", err)
			}
		}
	}
	for {
		backlog, sub, _, err := hub.Subscribe(last)
		if err != nil {
			log.Warn("metrics: cannot follow guest deletions", "err", err)
			return
		}
		for _, it := range backlog {
			handle(it)
		}
		for it := range sub.C {
			handle(it)
		}
		if !sub.Lagged() {
			return
		}
	}
}

func displayAddr(a string) string {
	if strings.HasPrefix(a, "[::]:") {
		return "localhost:" + strings.TrimPrefix(a, "[::]:")
	}
	if strings.HasPrefix(a, "0.0.0.0:") {
		return "localhost:" + strings.TrimPrefix(a, "0.0.0.0:")
	}
	return a
}

// listenUnix opens the local socket, mode 0600: only root (or the daemon's
// user) can connect, and peers are identified by SO_PEERCRED.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("socket dir: %w", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale socket: %w", err)
	}
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	return ln, nil
}

func peerContext(ctx context.Context, conn net.Conn) context.Context {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return ctx
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return ctx
	}
	var cred *unix.Ucred
	raw.Control(func(fd uintptr) {
		cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if err != nil || cred == nil {
		return ctx
	}
	return server.WithPeer(ctx, cred.Uid)
}

// mgmtPorts are the TCP ports the node firewall never closes: the API, the
// store's peer port and ssh.
func mgmtPorts(c Config) []uint16 {
	ports := []uint16{22}
	addrs := []string{c.Listen}
	if u, err := url.Parse(c.StorePeerURL); err == nil {
		addrs = append(addrs, u.Host)
	}
	for _, a := range addrs {
		if _, p, err := net.SplitHostPort(a); err == nil {
			if n, err := strconv.ParseUint(p, 10, 16); err == nil && n > 0 {
				ports = append(ports, uint16(n))
			}
		}
	}
	return ports
}
