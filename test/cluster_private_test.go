package test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestClusterStoreEndpointsPrivate: a single node exposes no store
// endpoint to other local users. Before, the peer port was plain HTTP on
// 127.0.0.1:8008, and any user (tested as nobody) could talk raft to it and
// crash the daemon. Now the member listens on unix sockets in the 0700 data
// dir (sockets 0600), and the daemon's only TCP listener is the API.
func TestClusterStoreEndpointsPrivate(t *testing.T) {
	for _, tool := range []string{"curl", "setpriv"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s to connect as another user", tool)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to act as user nobody")
	}
	n := StartNode(t)
	socks := []string{filepath.Join(n.DataDir, "store.sock"), filepath.Join(n.DataDir, "peer.sock")}

	fi, err := os.Stat(n.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != 0o700 {
		t.Errorf("data dir mode %o, want 700", m)
	}
	for _, s := range socks {
		fi, err := os.Stat(s)
		if err != nil {
			t.Fatalf("store socket: %v", err)
		}
		if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: mode %v, want a socket only its owner can use", s, fi.Mode())
		}
	}

	// curl's exit code 7 is "could not connect"; root (the daemon's user)
	// can, nobody cannot: not through the 0700 dir, and not through the
	// socket's own mode once the dir is made traversable.
	connect := func(asNobody bool, sock string) int {
		args := []string{"curl", "-s", "-o", "/dev/null", "--max-time", "5", "--unix-socket", sock, "http://localhost/version"}
		if asNobody {
			args = append([]string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"}, args...)
		}
		cmd := exec.Command(args[0], args[1:]...)
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return 0
	}
	// Let nobody reach the data dir's parent directories.
	for d := filepath.Dir(n.DataDir); d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			mode := fi.Mode().Perm()
			os.Chmod(d, mode|0o011)
			t.Cleanup(func() { os.Chmod(d, mode) })
		}
	}
	for _, s := range socks {
		if code := connect(false, s); code != 0 {
			t.Errorf("root could not use %s (curl exit %d)", s, code)
		}
		if code := connect(true, s); code != 7 {
			t.Errorf("nobody connected to %s through the data dir (curl exit %d, want 7)", s, code)
		}
	}
	if err := os.Chmod(n.DataDir, 0o711); err != nil {
		t.Fatal(err)
	}
	for _, s := range socks {
		if code := connect(true, s); code != 7 {
			t.Errorf("nobody connected to %s with the data dir traversable (curl exit %d, want 7)", s, code)
		}
	}
	os.Chmod(n.DataDir, 0o700)

	// The daemon's listening TCP sockets: only the API.
	ports := listeningPorts(t, n.cmd.Process.Pid)
	want := n.URL[strings.LastIndex(n.URL, ":")+1:]
	if len(ports) != 1 || ports[0] != want {
		t.Errorf("daemon listens on TCP ports %v, want only the API port %s", ports, want)
	}
}

// listeningPorts lists the TCP ports pid listens on, from its socket fds
// and /proc/net/tcp{,6}.
func listeningPorts(t *testing.T, pid int) []string {
	t.Helper()
	inodes := map[string]bool{}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	var ports []string
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		sc.Scan() // header
		for sc.Scan() {
			fl := strings.Fields(sc.Text())
			if len(fl) < 10 || fl[3] != "0A" || !inodes[fl[9]] { // 0A: LISTEN
				continue
			}
			p, _ := strconv.ParseUint(fl[1][strings.LastIndex(fl[1], ":")+1:], 16, 16)
			ports = append(ports, strconv.FormatUint(p, 10))
		}
		fh.Close()
	}
	return ports
}
