package test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/client"
)

// TestContainerExecConsoleAndRestart: interactive exec over the websocket,
// the console (login with the password given at create), the daemon killed
// while the container runs and the container found again, and a memory
// limit that holds.
func TestContainerExecConsoleAndRestart(t *testing.T) {
	needLXC(t)
	n := ctNode(t)
	c := n.Admin()
	tmpl := busyboxTemplate(t, n, c)
	id := createCT(t, c, api.CTCreate{OSTemplate: tmpl, Hostname: "console-test", Memory: 48, Swap: ptr(0), Password: "console-pw-1", Start: true})

	// Interactive exec: stdin streamed in, stdout and stderr framed, exit code.
	ctx, cancel := context.WithTimeout(bg, 30*time.Second)
	defer cancel()
	sess, err := c.CTExecInteractive(ctx, id, api.CTExec{Command: []string{"sh", "-c", "while read l; do echo out:$l; echo err:$l >&2; done; exit 7"}})
	if err != nil {
		t.Fatal(err)
	}
	sess.Write([]byte("one\ntwo\n"))
	sess.CloseStdin()
	var out, errb bytes.Buffer
	code, err := sess.Wait(&out, &errb)
	if err != nil || code != 7 || out.String() != "out:one\nout:two\n" || errb.String() != "err:one\nerr:two\n" {
		t.Fatalf("interactive exec: code %d err %v stdout %q stderr %q", code, err, out.String(), errb.String())
	}
	// A TTY session sees a terminal.
	sess, err = c.CTExecInteractive(ctx, id, api.CTExec{Command: []string{"sh", "-c", "[ -t 0 ] && echo is-a-tty"}, TTY: true})
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code, err := sess.Wait(&out, &errb); err != nil || code != 0 || !strings.Contains(out.String(), "is-a-tty") {
		t.Fatalf("tty exec: %d %v %q", code, err, out.String())
	}

	// Console: busybox getty on /dev/console; log in as root.
	conn, err := c.CTTerminal(ctx, id, "console")
	if err != nil {
		t.Fatal(err)
	}
	r := &termReader{r: conn}
	send := func(s string) {
		if _, err := conn.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	r.expect(t, "Connected to tty 0", 10*time.Second)
	// Like a user at a console: type the name at the login prompt; if
	// getty was (re)starting and flushed it, press Enter for a new prompt.
	send("root\n")
	for try := 0; !r.wait("Password:", 3*time.Second); try++ {
		if try == 4 {
			t.Fatalf("no password prompt on the console; got %q", r.buf)
		}
		send("\n")
		if r.wait("login:", 3*time.Second) {
			send("root\n")
		}
	}
	send("console-pw-1\n")
	send("echo marker-$((6*7))\n")
	r.expect(t, "marker-42", 10*time.Second)
	send("exit\n")
	conn.Close()

	// The memory limit holds: a process allocating beyond it is killed,
	// the container and the host carry on.
	res := ctExec(t, c, id, "sh", "-c", "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo ${#x}")
	if res.ExitCode == 0 {
		t.Fatalf("allocating 200 MB in a 48 MiB container succeeded: %+v", res)
	}
	t.Logf("allocation beyond the limit: exit %d", res.ExitCode)
	if got := mustOut(t, c, id, "echo", "still-here"); got != "still-here" {
		t.Fatalf("container after OOM: %q", got)
	}

	// Kill the daemon (no clean shutdown); the container keeps running and
	// the restarted daemon finds it.
	pid := mustStatus(t, c, id).PID
	n.Kill()
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
		t.Fatalf("container init %d died with the daemon", pid)
	}
	n.Start()
	c = n.Admin()
	if st := mustStatus(t, c, id); st.Status != "running" || st.PID != pid {
		t.Fatalf("after daemon restart: %+v (pid was %d)", st, pid)
	}
	if got := mustOut(t, c, id, "hostname"); got != "console-test" {
		t.Fatalf("exec after restart: %q", got)
	}
	res2, err := c.ClusterResources(bg, "")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, rs := range res2 {
		if rs.VMID == id && rs.Type == api.GuestContainer && rs.Status == "running" {
			found = true
		}
	}
	if !found {
		t.Fatalf("container %d not listed as a running lxc guest: %+v", id, res2)
	}
	// Stopping from inside (init powers off) is noticed.
	ctExec(t, c, id, "poweroff")
	deadline := time.Now().Add(20 * time.Second)
	for mustStatus(t, c, id).Status != "stopped" {
		if time.Now().After(deadline) {
			t.Fatal("container did not stop after poweroff inside")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestContainerBadInput: refused requests name the field and leave nothing.
func TestContainerBadInput(t *testing.T) {
	needLXC(t)
	n := ctNode(t)
	c := n.Admin()
	br := testBridge(t)
	tmpl := busyboxTemplate(t, n, c)
	imagesDir := filepath.Join(n.DataDir, "storage", "images")
	base := api.CTCreate{OSTemplate: tmpl}
	with := func(f func(*api.CTCreate)) api.CTCreate {
		in := base
		f(&in)
		return in
	}
	cases := []struct {
		name   string
		in     api.CTCreate
		status int
		field  string
	}{
		{"missing template", with(func(in *api.CTCreate) { in.OSTemplate = "local:vztmpl/nope.tar.gz" }), 422, "ostemplate"},
		{"iso as template", with(func(in *api.CTCreate) { in.OSTemplate = "local:iso/x.iso" }), 422, "ostemplate"},
		{"bad hostname", with(func(in *api.CTCreate) { in.Hostname = "-bad_name" }), 422, "hostname"},
		{"bad ip", with(func(in *api.CTCreate) { in.Nets = []api.CTNet{{Name: "eth0", IP: "10.1.2.300/24"}} }), 422, "nets[0].ip"},
		{"ip without prefix", with(func(in *api.CTCreate) { in.Nets = []api.CTNet{{Name: "eth0", IP: "10.1.2.3"}} }), 422, "nets[0].ip"},
		{"duplicate mac", with(func(in *api.CTCreate) {
			in.Nets = []api.CTNet{{Name: "eth0", Bridge: br, HWAddr: "02:00:00:00:00:01"}, {Name: "eth1", Bridge: br, HWAddr: "02:00:00:00:00:01"}}
		}), 422, "nets[1].hwaddr"},
		{"duplicate interface", with(func(in *api.CTCreate) { in.Nets = []api.CTNet{{Name: "eth0", Bridge: br}, {Name: "eth0", Bridge: br}} }), 422, "nets[1].name"},
		{"dotdot mount", with(func(in *api.CTCreate) {
			in.Mountpoints = []api.CTMountpoint{{MP: "/data/../etc", Storage: "local", Size: "1G"}}
		}), 422, "mountpoints[0].mp"},
		{"mount over proc", with(func(in *api.CTCreate) { in.Mountpoints = []api.CTMountpoint{{MP: "/proc/x", Storage: "local"}} }), 422, "mountpoints[0].mp"},
		{"host bind mount by non-root", with(func(in *api.CTCreate) { in.Mountpoints = []api.CTMountpoint{{MP: "/data", HostPath: "/etc"}} }), 403, ""},
		{"no such pool", with(func(in *api.CTCreate) { in.RootFS.Storage = "nope" }), 422, "rootfs.storage"},
		{"NIC without a bridge", with(func(in *api.CTCreate) { in.Nets = []api.CTNet{{Name: "eth0", Rate: 5}} }), 422, "nets[0].bridge"},
		{"NIC on a missing bridge", with(func(in *api.CTCreate) { in.Nets = []api.CTNet{{Name: "eth0", Bridge: "nosuchbr0"}} }), 422, "nets[0].bridge"},
		{"bad ssh key", with(func(in *api.CTCreate) { in.SSHPublicKeys = []string{"not a key"} }), 422, "ssh_public_keys[0]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.CreateContainer(bg, tc.in)
			if client.StatusOf(err) != tc.status {
				t.Fatalf("status %d, want %d: %v", client.StatusOf(err), tc.status, err)
			}
			if tc.field != "" && !strings.Contains(err.Error(), tc.field+":") {
				t.Fatalf("error does not name %s: %v", tc.field, err)
			}
		})
	}
	// Corrupt templates: the create task fails with a clear message and
	// leaves no volume and no config.
	for _, bad := range []struct{ file, content string }{
		{"garbage.tar.gz", "this is not gzip data at all"},
		{"plain.tar.xz", strings.Repeat("x", 4096)},
	} {
		path := filepath.Join(n.DataDir, "storage", "template", "cache", bad.file)
		if err := os.WriteFile(path, []byte(bad.content), 0o644); err != nil {
			t.Fatal(err)
		}
		cr, err := c.CreateContainer(bg, api.CTCreate{OSTemplate: "local:vztmpl/" + bad.file})
		if err != nil {
			t.Fatal(err)
		}
		tk, err := c.WaitTask(bg, cr.Task)
		if err != nil {
			t.Fatal(err)
		}
		if tk.Status != api.TaskFailed || !strings.Contains(tk.ExitMsg, "not a valid template archive") {
			t.Fatalf("%s: task %s %q", bad.file, tk.Status, tk.ExitMsg)
		}
		if _, err := c.Container(bg, cr.VMID); client.StatusOf(err) != 404 {
			t.Fatalf("%s: config left behind: %v", bad.file, err)
		}
		if ents, _ := os.ReadDir(filepath.Join(imagesDir, fmt.Sprint(cr.VMID))); len(ents) > 0 {
			t.Fatalf("%s: volume left behind: %v", bad.file, ents[0].Name())
		}
	}
	// A template whose published checksum does not match is refused.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("tampered")) }))
	defer srv.Close()
	upid, err := c.DownloadURL(bg, n.Name, "local", api.DownloadURL{URL: srv.URL + "/t.tar.gz", Content: api.ContentVZTmpl,
		Filename: "t.tar.gz", SHA256: strings.Repeat("ab", 32)})
	if err != nil {
		t.Fatal(err)
	}
	if tk, _ := c.WaitTask(bg, upid); tk.Status != api.TaskFailed {
		t.Fatalf("download with a wrong sha256: %s", tk.Status)
	}
	if _, err := os.Stat(filepath.Join(n.DataDir, "storage", "template", "cache", "t.tar.gz")); !os.IsNotExist(err) {
		t.Fatalf("template with a bad checksum stored: %v", err)
	}
	// A user without Sys.Modify on / can't create privileged containers.
	if _, err := c.CreateUser(bg, api.UserCreate{UserID: "ctuser@corral", Password: "ctuser-pass-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdateACL(bg, api.ACLUpdate{Entries: []api.ACLEntry{{Path: "/vms", User: "ctuser@corral", Role: "VMAdmin", Propagate: true},
		{Path: "/storage", User: "ctuser@corral", Role: "DatastoreUser", Propagate: true}}}); err != nil {
		t.Fatal(err)
	}
	u := n.Login("ctuser@corral", "ctuser-pass-1")
	if _, err := u.CreateContainer(bg, with(func(in *api.CTCreate) { in.Unprivileged = ptr(false) })); client.StatusOf(err) != 403 {
		t.Fatalf("privileged container by a VM admin: %v", err)
	}
	if cts, _ := c.Containers(bg, ""); len(cts) != 0 {
		t.Fatalf("refused creates left containers: %+v", cts)
	}
}

// termReader waits for text on a terminal stream, prompts included (they
// end without a newline).
type termReader struct {
	r      io.Reader
	mu     sync.Mutex
	buf    []byte
	chunks chan []byte
}

func (tr *termReader) expect(t *testing.T, want string, within time.Duration) {
	t.Helper()
	if !tr.wait(want, within) {
		t.Fatalf("no %q on the terminal within %s (got %q)", want, within, tr.buf)
	}
}

// wait reports whether want arrives within the time; the reading goes on
// in the background, so a later wait sees what arrived meanwhile.
func (tr *termReader) wait(want string, within time.Duration) bool {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.chunks == nil {
		tr.chunks = make(chan []byte, 64)
		go func() {
			defer close(tr.chunks)
			for {
				b := make([]byte, 4096)
				n, err := tr.r.Read(b)
				if n > 0 {
					tr.chunks <- b[:n]
				}
				if err != nil {
					return
				}
			}
		}()
	}
	deadline := time.After(within)
	for !bytes.Contains(tr.buf, []byte(want)) {
		select {
		case c, ok := <-tr.chunks:
			if !ok {
				return false
			}
			tr.buf = append(tr.buf, c...)
		case <-deadline:
			return false
		}
	}
	i := bytes.Index(tr.buf, []byte(want))
	tr.buf = tr.buf[i+len(want):]
	return true
}
