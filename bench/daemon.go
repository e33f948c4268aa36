package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/client"
)

// nodeName is every bench daemon's node (and etcd member) name. Seeding
// opens the member in this process, which only works under the same name.
const nodeName = "n1"

// startTimeout bounds how long a daemon may take to answer /health.
const startTimeout = 60 * time.Second

// lab owns the temp directory, the corral binary and every daemon started
// from it, so one close() cleans up after success, failure or Ctrl-C.
type lab struct {
	cfg      config
	root     string
	bin      string
	password string

	mu       sync.Mutex
	nodes    []*node
	qemuDirs []string // more directories of QEMU pidfiles to clean up (bare launches)
	cleanups []func() // undo steps (mounts, libvirt, device modes), run last first
}

// newLab creates the temp dir and builds (or locates) the corral binary.
func newLab(ctx context.Context, cfg config) (*lab, error) {
	root, err := os.MkdirTemp("", "corral-bench-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	l := &lab{cfg: cfg, root: root, password: "bench-admin-password"}
	// An empty config file keeps a host's /etc/corral/corral.yaml out of
	// the measurement.
	if err := os.WriteFile(l.configFile(), nil, 0o600); err != nil {
		l.close()
		return nil, fmt.Errorf("write empty config: %w", err)
	}
	if cfg.bin != "" {
		l.bin, err = filepath.Abs(cfg.bin)
	} else {
		l.bin, err = buildCorral(ctx, root)
	}
	if err != nil {
		l.close()
		return nil, err
	}
	return l, nil
}

// atClose registers an undo step for close, which runs them last first
// after every QEMU and daemon is gone and before the temp dir goes. Steps
// must not use the run's context: it may be cancelled by then.
func (l *lab) atClose(fn func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cleanups = append(l.cleanups, fn)
}

// watchQEMUDir makes close kill the QEMU processes whose pidfiles are in dir.
func (l *lab) watchQEMUDir(dir string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.qemuDirs = append(l.qemuDirs, dir)
}

func (l *lab) configFile() string { return filepath.Join(l.root, "empty-corral.yaml") }

// buildCorral compiles ./cmd/corral from the working tree being measured.
func buildCorral(ctx context.Context, dir string) (string, error) {
	if _, err := os.Stat("cmd/corral"); err != nil {
		return "", errors.New("run the benchmark from the repository root (cmd/corral not found)")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	bin := filepath.Join(dir, "corral")
	logf("building ./cmd/corral")
	out, err := exec.CommandContext(ctx, goBin, "build", "-o", bin, "./cmd/corral").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./cmd/corral: %w\n%s", err, out)
	}
	return bin, nil
}

// close kills every QEMU the bench started, stops every daemon still
// running, undoes what atClose registered and removes the temp dir. It
// runs on success, on error and after Ctrl-C alike.
func (l *lab) close() {
	l.mu.Lock()
	nodes, dirs, cleanups := l.nodes, l.qemuDirs, l.cleanups
	l.mu.Unlock()
	// QEMU first: a daemon that stops leaves its VMs running (as it must
	// in production), and with -daemonize they are nobody's children.
	for _, n := range nodes {
		dirs = append(dirs, n.qemuRunDir())
	}
	var vmids []int
	for _, d := range dirs {
		vmids = append(vmids, killQEMUs(d)...)
	}
	if len(vmids) > 0 {
		logf("cleanup: killed %d QEMU processes", len(vmids))
		// Let the daemons notice and remove the VMs' cgroups themselves.
		time.Sleep(2 * time.Second)
	}
	for _, n := range nodes {
		if err := n.stop(); err != nil {
			logf("cleanup: %v", err)
		}
	}
	removeCgroups(vmids)
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	if l.cfg.keep {
		logf("kept %s", l.root)
		return
	}
	if err := os.RemoveAll(l.root); err != nil {
		logf("cleanup: %v", err)
	}
}

// node is one daemon with its own data dir and ports; it keeps them across
// restarts, as a real node does.
type node struct {
	lab      *lab
	label    string // directory name, for logs
	dataDir  string
	url      string
	peerURL  string
	listen   string
	logPath  string
	password string

	cmd    *exec.Cmd
	exited chan struct{}
}

// newNode allocates a data dir and loopback ports for a daemon.
func (l *lab) newNode(label string) (*node, error) {
	dir := filepath.Join(l.root, label)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("node dir: %w", err)
	}
	apiPort, err := freePort()
	if err != nil {
		return nil, err
	}
	peerPort, err := freePort()
	if err != nil {
		return nil, err
	}
	n := &node{
		lab: l, label: label, dataDir: filepath.Join(dir, "data"), logPath: filepath.Join(dir, "daemon.log"),
		listen:   fmt.Sprintf("127.0.0.1:%d", apiPort),
		url:      fmt.Sprintf("https://127.0.0.1:%d", apiPort),
		peerURL:  fmt.Sprintf("https://127.0.0.1:%d", peerPort),
		password: l.password,
	}
	l.mu.Lock()
	l.nodes = append(l.nodes, n)
	l.mu.Unlock()
	return n, nil
}

// freePort asks the kernel for an unused loopback port. Another process
// could take it before the daemon binds it; on a bench machine that risk
// is accepted, as in the integration tests.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// qemuRunDir is where the daemon keeps its VMs' pidfiles and sockets.
func (n *node) qemuRunDir() string { return filepath.Join(n.dataDir, "run", "qemu") }

func (n *node) running() bool {
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// start launches the daemon and waits until /health answers "ok". It
// returns the time from exec to that first healthy answer.
func (n *node) start(ctx context.Context) (time.Duration, error) {
	if n.running() {
		return 0, fmt.Errorf("daemon %s is already running", n.label)
	}
	logFile, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, fmt.Errorf("daemon log: %w", err)
	}
	cmd := exec.Command(n.lab.bin, "daemon", "--config", n.lab.configFile(), "--node", nodeName,
		"--data-dir", n.dataDir, "--socket", filepath.Join(filepath.Dir(n.dataDir), "corral.sock"),
		"--listen", n.listen, "--store-peer-url", n.peerURL)
	cmd.Env = append(environWithout("CORRAL_"), "CORRAL_ADMIN_PASSWORD="+n.password)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// If the bench itself is killed (SIGKILL skips our cleanup), the
	// kernel kills the daemon too instead of leaving it behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return 0, fmt.Errorf("start daemon %s: %w", n.label, err)
	}
	n.cmd, n.exited = cmd, make(chan struct{})
	go func() {
		cmd.Wait()
		logFile.Close()
		close(n.exited)
	}()
	if err := n.waitHealthy(ctx, begin.Add(startTimeout)); err != nil {
		n.kill()
		return 0, err
	}
	return time.Since(begin), nil
}

// environWithout returns the environment minus variables starting with
// prefix, so the caller's CORRAL_* settings can't change what is measured.
func environWithout(prefix string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, prefix) {
			out = append(out, kv)
		}
	}
	return out
}

// waitHealthy polls /health every 10 ms (the start-time resolution) until
// it reports ok, the process exits, or the deadline passes.
func (n *node) waitHealthy(ctx context.Context, deadline time.Time) error {
	hc := &http.Client{
		Timeout:   time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
	}
	defer hc.CloseIdleConnections()
	var last error
	for {
		if last = n.healthy(ctx, hc); last == nil {
			return nil
		}
		select {
		case <-n.exited:
			return fmt.Errorf("daemon %s exited during start (%v); its log ends with:\n%s", n.label, n.cmd.ProcessState, n.logTail(20))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("daemon %s not healthy after %s (last error: %v); its log ends with:\n%s", n.label, startTimeout, last, n.logTail(20))
		}
	}
}

// healthy reports nil when GET /api/v1/health says the node is ok.
func (n *node) healthy(ctx context.Context, hc *http.Client) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.url+"/api/v1/health", nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var h api.Health
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return fmt.Errorf("health: status %d: %w", resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK || h.Status != "ok" {
		return fmt.Errorf("health: status %d, %q", resp.StatusCode, h.Status)
	}
	return nil
}

// logTail returns the last lines of the daemon's log, for error messages.
func (n *node) logTail(lines int) string {
	b, err := os.ReadFile(n.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return "  " + strings.Join(all, "\n  ")
}

// stop sends SIGTERM and waits for a clean exit, killing the daemon if it
// takes longer than the 40 s the integration tests allow.
func (n *node) stop() error {
	if !n.running() {
		return nil
	}
	if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("signal daemon %s: %w", n.label, err)
	}
	select {
	case <-n.exited:
		return nil
	case <-time.After(40 * time.Second):
		n.kill()
		return fmt.Errorf("daemon %s did not stop within 40s of SIGTERM; killed", n.label)
	}
}

func (n *node) kill() {
	if n.running() {
		n.cmd.Process.Kill()
		<-n.exited
	}
}

// memInfo is the daemon's memory as the kernel accounts it, in KiB.
type memInfo struct {
	RSS, Anon, File, HWM int64
}

// mem reads VmRSS and its parts from /proc/<pid>/status. RssFile is
// mostly the binary's text and etcd's bbolt mmap; RssAnon is heap and
// stacks.
func (n *node) mem() (memInfo, error) {
	if !n.running() {
		return memInfo{}, fmt.Errorf("daemon %s is not running", n.label)
	}
	return readMem(n.cmd.Process.Pid)
}

func readMem(pid int) (memInfo, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memInfo{}, fmt.Errorf("read memory of pid %d: %w", pid, err)
	}
	var m memInfo
	fields := map[string]*int64{"VmRSS:": &m.RSS, "RssAnon:": &m.Anon, "RssFile:": &m.File, "VmHWM:": &m.HWM}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && fields[f[0]] != nil {
			*fields[f[0]], _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	if m.RSS == 0 {
		return m, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
	}
	return m, nil
}

// client returns an API client for the daemon; TLS verification is off
// because only the loopback daemon we started is on the other end.
func (n *node) client() (*client.Client, error) {
	c, err := client.New(client.Options{Server: n.url, Insecure: true, Timeout: 30 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("API client: %w", err)
	}
	return c, nil
}

// login returns an admin@corral ticket.
func (n *node) login(ctx context.Context, password string) (string, error) {
	c, err := n.client()
	if err != nil {
		return "", err
	}
	defer c.Close()
	t, err := c.Login(ctx, "admin@corral", password)
	if err != nil {
		return "", err
	}
	return t.Ticket, nil
}

// benchUser is the ID of the user that write client i updates, so
// concurrent clients never contend for the same key.
func benchUser(i int) string { return fmt.Sprintf("bench-%d@corral", i) }

// prepareUsers boots node n once (a new cluster) and creates the users
// the write benchmarks update, then stops it again.
func (l *lab) prepareUsers(ctx context.Context, n *node) error {
	logf("first boot of the main daemon; creating %d users", l.cfg.writers)
	if _, err := n.start(ctx); err != nil {
		return err
	}
	c, err := n.client()
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Login(ctx, "admin@corral", l.password); err != nil {
		return err
	}
	for i := range l.cfg.writers {
		u := api.UserCreate{UserID: benchUser(i), Password: "bench-user-password", Comment: "write benchmark"}
		if _, err := c.CreateUser(ctx, u); err != nil {
			return err
		}
	}
	return n.stop()
}

// startResult is one series of daemon starts.
type startResult struct {
	durations []time.Duration
	mems      []memInfo // only for fresh starts: RSS after idling
}

// measureFreshStarts boots brand-new single-node clusters (etcd init, CA
// and certificate generation, admin password hash), timing each start and
// reading the RSS after the daemon has sat idle.
func (l *lab) measureFreshStarts(ctx context.Context) (startResult, error) {
	var r startResult
	for i := range l.cfg.starts {
		n, err := l.newNode(fmt.Sprintf("fresh-%d", i+1))
		if err != nil {
			return r, err
		}
		d, err := n.start(ctx)
		if err != nil {
			return r, err
		}
		logf("fresh daemon %d/%d healthy after %s; idling %s", i+1, l.cfg.starts, d.Round(time.Millisecond), l.cfg.idle)
		if err := sleep(ctx, l.cfg.idle); err != nil {
			return r, err
		}
		m, err := n.mem()
		if err != nil {
			return r, err
		}
		logf("fresh daemon %d/%d idle RSS %.1f MB", i+1, l.cfg.starts, mb1(m.RSS))
		if err := n.stop(); err != nil {
			return r, err
		}
		os.RemoveAll(filepath.Dir(n.dataDir))
		r.durations = append(r.durations, d)
		r.mems = append(r.mems, m)
	}
	return r, nil
}

// measureRestarts restarts the seeded node several times; the last start
// leaves it running for the API benchmarks.
func (l *lab) measureRestarts(ctx context.Context, n *node) (startResult, error) {
	var r startResult
	for i := range l.cfg.starts {
		d, err := n.start(ctx)
		if err != nil {
			return r, err
		}
		logf("restart %d/%d with %d guests healthy after %s", i+1, l.cfg.starts, l.cfg.guests, d.Round(time.Millisecond))
		r.durations = append(r.durations, d)
		if i < l.cfg.starts-1 {
			if err := n.stop(); err != nil {
				return r, err
			}
		}
	}
	return r, nil
}

// storeDBSize is the size of the node's bbolt database file, which etcd
// maps into memory (it shows up as RssFile).
func (n *node) storeDBSize() int64 {
	fi, err := os.Stat(filepath.Join(n.dataDir, "store", "member", "snap", "db"))
	if err != nil {
		return 0
	}
	return fi.Size()
}

// mb1 converts KiB, as /proc reports them, to MB (10⁶ bytes).
func mb1(kib int64) float64 { return float64(kib) * 1024 / 1e6 }
