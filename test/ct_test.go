package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/client"
	"github.com/corral-project/corral/internal/lxc"
)

// needLXC skips tests that need LXC and root.
func needLXC(t *testing.T) {
	t.Helper()
	if why := lxcMissing(); why != "" {
		t.Skip("SKIP reason: " + why)
	}
}

// lxcMissing says why containers can't run here ("" when they can).
func lxcMissing() string {
	if os.Geteuid() != 0 {
		return "containers need root"
	}
	for _, bin := range []string{"lxc-start", "lxc-usernsexec", "lxc-attach", "openssl"} {
		if _, err := exec.LookPath(bin); err != nil {
			return bin + " is not installed (apt install lxc uidmap openssl)"
		}
	}
	if _, err := os.Stat(lxc.BusyboxBinary); err != nil {
		return "busybox-static is not installed"
	}
	return ""
}

// ctNode starts a daemon and makes sure no container it started outlives
// the test: they are killed and their cgroups removed at cleanup.
func ctNode(t *testing.T) *Node {
	t.Helper()
	n := StartNode(t)
	lxcPath := filepath.Join(n.DataDir, "lxc")
	t.Cleanup(func() {
		dirs, _ := os.ReadDir(lxcPath)
		for _, d := range dirs {
			if d.IsDir() {
				exec.Command("lxc-stop", "-P", lxcPath, "-n", d.Name(), "-k").Run()
			}
		}
		tag := lxc.CgroupTag(lxcPath)
		cgs, _ := filepath.Glob("/sys/fs/cgroup/*/" + tag)
		cgs2, _ := filepath.Glob("/sys/fs/cgroup/" + tag)
		for _, cg := range append(cgs, cgs2...) {
			subs, _ := os.ReadDir(cg)
			for _, s := range subs {
				if s.IsDir() {
					os.Remove(filepath.Join(cg, s.Name()))
				}
			}
			os.Remove(cg)
		}
	})
	return n
}

// busyboxTemplate builds the busybox template on the node's local pool.
func busyboxTemplate(t *testing.T, n *Node, c *client.Client) string {
	t.Helper()
	upid, err := c.BuildTemplate(bg, n.Name, "local", api.TemplateBuild{Kind: "busybox", Filename: "busybox-test.tar.gz"})
	if err != nil {
		t.Fatal(err)
	}
	waitOK(t, c, upid)
	return "local:vztmpl/busybox-test.tar.gz"
}

func createCT(t *testing.T, c *client.Client, in api.CTCreate) int {
	t.Helper()
	cr, err := c.CreateContainer(bg, in)
	if err != nil {
		t.Fatal(err)
	}
	waitOK(t, c, cr.Task)
	return cr.VMID
}

func ctAct(t *testing.T, c *client.Client, vmid int, action string) {
	t.Helper()
	upid, err := c.CTAction(bg, vmid, action, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitOK(t, c, upid)
}

func ctExec(t *testing.T, c *client.Client, vmid int, cmd ...string) api.CTExecResult {
	t.Helper()
	res, err := c.CTExec(bg, vmid, api.CTExec{Command: cmd})
	if err != nil {
		t.Fatal(err)
	}
	return *res
}

// mustOut runs a command that must succeed and returns its trimmed stdout.
func mustOut(t *testing.T, c *client.Client, vmid int, cmd ...string) string {
	t.Helper()
	r := ctExec(t, c, vmid, cmd...)
	if r.ExitCode != 0 {
		t.Fatalf("%v in %d: exit %d, stderr %q", cmd, vmid, r.ExitCode, r.Stderr)
	}
	return strings.TrimSpace(r.Stdout)
}

// testBridge creates a bridge with a unique name for the test's containers
// (no host address: traffic stays between the containers).
func testBridge(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("ctbr%d", os.Getpid()%100000)
	if out, err := exec.Command("ip", "link", "add", name, "type", "bridge").CombinedOutput(); err != nil {
		t.Skipf("SKIP reason: can't create a bridge: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "link", "del", name).Run() })
	if out, err := exec.Command("ip", "link", "set", name, "up").CombinedOutput(); err != nil {
		t.Fatalf("bridge up: %v: %s", err, out)
	}
	return name
}

func TestContainerLifecycle(t *testing.T) {
	needLXC(t)
	n := ctNode(t)
	c := n.Admin()
	tmpl := busyboxTemplate(t, n, c)
	br := testBridge(t)

	id1 := createCT(t, c, api.CTCreate{OSTemplate: tmpl, Hostname: "alpha.example.org", Memory: 64, Password: "s3cret-pw",
		Nets: []api.CTNet{{Name: "eth0", Bridge: br, IP: "10.213.7.1/24"}}})
	id2 := createCT(t, c, api.CTCreate{OSTemplate: tmpl, Hostname: "beta", Memory: 64,
		Nets: []api.CTNet{{Name: "eth0", Bridge: br, IP: "10.213.7.2/24"}}})
	ct, err := c.Container(bg, id1)
	if err != nil {
		t.Fatal(err)
	}
	if ct.Status != "stopped" || ct.Config.OSType != "busybox" || !ct.Config.Unprivileged || ct.Config.RootFS.Volume == "" {
		t.Fatalf("created container: %+v", ct)
	}
	// Unprivileged: the root filesystem belongs to the mapped root.
	rootfs := filepath.Join(n.DataDir, "storage", "images", fmt.Sprint(id1), "subvol-"+fmt.Sprint(id1)+"-disk-0")
	var st = mustStat(t, filepath.Join(rootfs, "etc", "passwd"))
	if st.uid != 100000 {
		t.Fatalf("rootfs not shifted: /etc/passwd owned by %d", st.uid)
	}
	t0 := time.Now()
	ctAct(t, c, id1, "start")
	t.Logf("start task took %s", time.Since(t0))
	ctAct(t, c, id2, "start")

	if got := mustOut(t, c, id1, "hostname"); got != "alpha" {
		t.Fatalf("hostname %q", got)
	}
	if got := mustOut(t, c, id1, "id", "-u"); got != "0" {
		t.Fatalf("id -u inside: %q", got)
	}
	// The host sees the container's root as the mapped, unprivileged user.
	pid := mustStatus(t, c, id1).PID
	if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); !strings.Contains(string(b), "Uid:\t100000") {
		t.Fatalf("container init is not uid 100000 on the host:\n%s", b)
	}
	if got := mustOut(t, c, id1, "cat", "/etc/hosts"); !strings.Contains(got, "127.0.1.1\talpha.example.org alpha") {
		t.Fatalf("/etc/hosts: %q", got)
	}
	if got := mustOut(t, c, id1, "ip", "-4", "addr", "show", "eth0"); !strings.Contains(got, "10.213.7.1/24") {
		t.Fatalf("eth0: %q", got)
	}
	if got := mustOut(t, c, id1, "sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max"); got != fmt.Sprint(64<<20) {
		t.Fatalf("memory limit inside: %q", got)
	}
	if got := mustOut(t, c, id1, "sh", "-c", "grep ^root: /etc/shadow | cut -d: -f2"); !strings.HasPrefix(got, "$6$") {
		t.Fatalf("root password hash: %q", got)
	}
	// The two containers reach each other over the test bridge.
	if r := ctExec(t, c, id1, "ping", "-c", "1", "-W", "5", "10.213.7.2"); r.ExitCode != 0 {
		t.Fatalf("ping between containers: exit %d: %s %s", r.ExitCode, r.Stdout, r.Stderr)
	}
	// Exec: environment, stdin, exit codes, a missing binary.
	res, err := c.CTExec(bg, id1, api.CTExec{Command: []string{"sh", "-c", "read x; echo $x-$FOO; echo err >&2; exit 3"}, Env: map[string]string{"FOO": "bar"}, Stdin: "hello\n"})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 3 || res.Stdout != "hello-bar\n" || res.Stderr != "err\n" {
		t.Fatalf("exec: %+v", res)
	}
	res, err = c.CTExec(bg, id1, api.CTExec{Command: []string{"/no/such/binary"}})
	if err != nil {
		t.Fatalf("exec of a missing binary must be a result, not an error: %v", err)
	}
	if res.ExitCode == 0 || res.Stderr == "" {
		t.Fatalf("missing binary: %+v", res)
	}
	st2 := mustStatus(t, c, id1)
	if st2.Status != "running" || st2.Mem == 0 || st2.MaxMem != 64<<20 || st2.Disk == 0 || st2.NetOut == 0 {
		t.Fatalf("status: %+v", st2)
	}
	// Suspend freezes every process; resume thaws them.
	ctAct(t, c, id1, "suspend")
	if s := mustStatus(t, c, id1).Status; s != "frozen" {
		t.Fatalf("after suspend: %s", s)
	}
	ctAct(t, c, id1, "resume")
	if s := mustStatus(t, c, id1).Status; s != "running" {
		t.Fatalf("after resume: %s", s)
	}
	// Live limits.
	if _, err := c.UpdateContainer(bg, id1, api.CTUpdate{Memory: ptr(96)}); err != nil {
		t.Fatal(err)
	}
	if got := mustOut(t, c, id1, "sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max"); got != fmt.Sprint(96<<20) {
		t.Fatalf("memory limit after live change: %q", got)
	}
	// A NIC's rate limit changes on the running container's port.
	nets := mustStatusConfig(t, c, id1).Nets
	nets[0].Rate = 3
	ct1, err := c.UpdateContainer(bg, id1, api.CTUpdate{Nets: &nets})
	if err != nil {
		t.Fatal(err)
	}
	if ct1.Pending != nil || ct1.Config.Nets[0].Rate != 3 {
		t.Fatalf("live rate change: config %+v pending %+v", ct1.Config.Nets, ct1.Pending)
	}
	if out, err := exec.Command("tc", "qdisc", "show", "dev", fmt.Sprintf("veth%di0", id1)).CombinedOutput(); err != nil || !strings.Contains(string(out), "htb") {
		t.Fatalf("no HTB qdisc on the container's port after the live change (%v): %s", err, out)
	}
	// A new host name waits for the restart.
	ct2, err := c.UpdateContainer(bg, id1, api.CTUpdate{Hostname: ptr("gamma")})
	if err != nil {
		t.Fatal(err)
	}
	if ct2.Pending == nil || ct2.Pending.Hostname != "gamma" || ct2.Config.Hostname != "alpha.example.org" {
		t.Fatalf("pending hostname: %+v", ct2)
	}
	// The resource list (the UI's tree) shows what runs, not what is pending.
	var resources []api.Resource
	if _, err := c.Do(bg, "GET", "/cluster/resources", nil, nil, &resources); err != nil {
		t.Fatal(err)
	}
	for _, r := range resources {
		if r.VMID == id1 && r.Name != "alpha.example.org" {
			t.Fatalf("resource list names the running container %q", r.Name)
		}
	}
	// Shutdown asks init (busybox: SIGUSR2) to power off.
	upid, err := c.CTAction(bg, id1, "shutdown", &api.CTShutdown{Timeout: 20, Force: ptr(false)})
	if err != nil {
		t.Fatal(err)
	}
	waitOK(t, c, upid)
	ctAct(t, c, id1, "start")
	if got := mustOut(t, c, id1, "hostname"); got != "gamma" {
		t.Fatalf("hostname after restart: %q", got)
	}
	// Access: an auditor of one container sees only it, reads its status,
	// and may neither exec in it nor stop it.
	if _, err := c.CreateUser(bg, api.UserCreate{UserID: "aud@corral", Password: "auditor-pass-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdateACL(bg, api.ACLUpdate{Entries: []api.ACLEntry{{Path: fmt.Sprintf("/vms/%d", id1), User: "aud@corral", Role: "Auditor"}}}); err != nil {
		t.Fatal(err)
	}
	aud := n.Login("aud@corral", "auditor-pass-1")
	if cts, err := aud.Containers(bg, ""); err != nil || len(cts) != 1 || cts[0].Config.VMID != id1 {
		t.Fatalf("auditor's list: %+v %v", cts, err)
	}
	if _, err := aud.CTStatus(bg, id1); err != nil {
		t.Fatalf("auditor's status: %v", err)
	}
	if _, err := aud.CTExec(bg, id1, api.CTExec{Command: []string{"id"}}); client.StatusOf(err) != 403 {
		t.Fatalf("auditor's exec: %v", err)
	}
	if _, err := aud.CTAction(bg, id1, "stop", nil); client.StatusOf(err) != 403 {
		t.Fatalf("auditor's stop: %v", err)
	}
	if _, err := aud.CTTerminal(bg, id2, "console"); client.StatusOf(err) != 403 {
		t.Fatalf("auditor's console of another container: %v", err)
	}
	// Delete refuses running containers; destroyed ones leave nothing.
	if _, err := c.DeleteContainer(bg, id1, false); client.StatusOf(err) != 409 {
		t.Fatalf("delete running: %v", err)
	}
	ctAct(t, c, id1, "stop")
	ctAct(t, c, id2, "stop")
	for _, id := range []int{id1, id2} {
		upid, err := c.DeleteContainer(bg, id, false)
		if err != nil {
			t.Fatal(err)
		}
		waitOK(t, c, upid)
		if _, err := c.Container(bg, id); client.StatusOf(err) != 404 {
			t.Fatalf("container %d after destroy: %v", id, err)
		}
		if _, err := os.Stat(filepath.Join(n.DataDir, "storage", "images", fmt.Sprint(id), "subvol-"+fmt.Sprint(id)+"-disk-0")); !os.IsNotExist(err) {
			t.Fatalf("rootfs of %d left behind: %v", id, err)
		}
	}
}

type statInfo struct{ uid, gid int }

func mustStat(t *testing.T, path string) statInfo {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	s := fi.Sys().(*syscall.Stat_t)
	return statInfo{int(s.Uid), int(s.Gid)}
}

func mustStatus(t *testing.T, c *client.Client, vmid int) api.CTStatus {
	t.Helper()
	st, err := c.CTStatus(bg, vmid)
	if err != nil {
		t.Fatal(err)
	}
	return *st
}

// mustStatusConfig returns a container's current config.
func mustStatusConfig(t *testing.T, c *client.Client, vmid int) api.CTConfig {
	t.Helper()
	ct, err := c.Container(bg, vmid)
	if err != nil {
		t.Fatal(err)
	}
	return ct.Config
}
