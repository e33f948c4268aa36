// Package test holds corral's integration tests: they build the real
// binary, start real daemons (embedded etcd and all) on random loopback
// ports with temporary data dirs, and drive them over HTTPS with the Go
// client and the CLI.
package test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/corral-project/corral/client"
)

var corralBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "corral-bin")
	if err != nil {
		panic(err)
	}
	corralBin = filepath.Join(dir, "corral")
	build := exec.Command("go", "build", "-o", corralBin, "../cmd/corral")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build corral:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Node is one running daemon.
type Node struct {
	t        testing.TB
	Name     string
	DataDir  string
	Socket   string
	URL      string
	Password string
	args     []string
	env      []string
	cmd      *exec.Cmd
	out      *syncBuf
	exited   chan struct{}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// StartNode starts a daemon with admin password "admin-pass-1".
func StartNode(t testing.TB, extraEnv ...string) *Node {
	t.Helper()
	dir := t.TempDir()
	n := &Node{t: t, Name: "n1", DataDir: filepath.Join(dir, "data"), Socket: filepath.Join(dir, "corral.sock"), Password: "admin-pass-1"}
	port := freePort(t)
	n.URL = fmt.Sprintf("https://127.0.0.1:%d", port)
	n.args = []string{"daemon", "--node", n.Name, "--data-dir", n.DataDir, "--socket", n.Socket,
		"--listen", fmt.Sprintf("127.0.0.1:%d", port),
	}
	n.env = append([]string{"CORRAL_ADMIN_PASSWORD=" + n.Password}, extraEnv...)
	n.Start()
	t.Cleanup(func() {
		n.Stop()
		// Guests outlive the daemon by design; a test must not leave them.
		pids, _ := filepath.Glob(filepath.Join(n.DataDir, "run", "qemu", "*.pid"))
		for _, f := range pids {
			if b, err := os.ReadFile(f); err == nil {
				var pid int
				if _, err := fmt.Sscan(string(b), &pid); err == nil && pid > 1 {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		if t.Failed() {
			t.Logf("daemon output:\n%s", n.out.String())
		}
	})
	return n
}

// Start (re)starts the daemon process and waits until it answers.
func (n *Node) Start() {
	n.t.Helper()
	n.out = &syncBuf{}
	n.cmd = exec.Command(corralBin, n.args...)
	n.cmd.Env = append(os.Environ(), n.env...)
	n.cmd.Stdout, n.cmd.Stderr = n.out, n.out
	if err := n.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	n.exited = make(chan struct{})
	go func() { n.cmd.Wait(); close(n.exited) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := client.New(client.Options{Server: n.URL, Insecure: true, Timeout: 2 * time.Second})
		if err == nil {
			_, err = c.Health(context.Background())
			c.Close()
		}
		if err == nil {
			return
		}
		select {
		case <-n.exited:
			n.t.Fatalf("daemon exited during start:\n%s", n.out.String())
		default:
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("daemon not ready after 60s: %v\n%s", err, n.out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop sends SIGTERM and waits for a clean exit.
func (n *Node) Stop() {
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	select {
	case <-n.exited:
		return
	default:
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(40 * time.Second):
		n.cmd.Process.Kill()
		<-n.exited
		n.t.Errorf("daemon did not stop within 40s of SIGTERM")
	}
}

// Kill stops the daemon without letting it clean up, like a crash.
func (n *Node) Kill() {
	n.cmd.Process.Kill()
	<-n.exited
}

// CA returns the cluster CA certificate the daemon wrote.
func (n *Node) CA() []byte {
	n.t.Helper()
	b, err := os.ReadFile(filepath.Join(n.DataDir, "pki", "ca.crt"))
	if err != nil {
		n.t.Fatal(err)
	}
	return b
}

// Client returns an unauthenticated client that verifies the cluster CA.
func (n *Node) Client() *client.Client {
	n.t.Helper()
	c, err := client.New(client.Options{Server: n.URL, CACertPEM: n.CA(), Timeout: 30 * time.Second})
	if err != nil {
		n.t.Fatal(err)
	}
	return c
}

// Login returns a client logged in as user.
func (n *Node) Login(user, password string) *client.Client {
	n.t.Helper()
	c := n.Client()
	if _, err := c.Login(context.Background(), user, password); err != nil {
		n.t.Fatalf("login %s: %v", user, err)
	}
	return c
}

// Admin returns a client logged in as admin@corral.
func (n *Node) Admin() *client.Client { return n.Login("admin@corral", n.Password) }

// CLI runs the built binary with args and env, returning stdout, stderr and the exit code.
func (n *Node) CLI(env []string, stdin string, args ...string) (string, string, int) {
	n.t.Helper()
	cmd := exec.Command(corralBin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		n.t.Fatal(err)
	}
	return out.String(), errb.String(), code
}
