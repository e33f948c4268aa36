package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLIContainers drives containers through the CLI: template build and
// list, create, exec (exit code and streams), enter, snapshot and rollback,
// template and clone, destroy.
func TestCLIContainers(t *testing.T) {
	needLXC(t)
	n := ctNode(t)
	env := []string{"HOME=" + t.TempDir(), "XDG_CONFIG_HOME=", "CORRAL_SOCKET=/nonexistent", "CORRAL_SERVER=", "CORRAL_TOKEN="}
	run := func(stdin string, args ...string) (string, string, int) {
		t.Helper()
		return n.CLI(env, stdin, args...)
	}
	must := func(args ...string) string {
		t.Helper()
		out, errOut, code := run("", args...)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, errOut)
		}
		return out
	}
	if _, errOut, code := run(n.Password+"\n", "login", "--server", n.URL, "--user", "admin@corral", "--password-stdin"); code != 0 {
		t.Fatalf("login: %d %s", code, errOut)
	}
	must("template", "build", "busybox", "--filename", "bb.tar.gz")
	if out := must("template", "list"); !strings.Contains(out, "local:vztmpl/bb.tar.gz") {
		t.Fatalf("template list: %s", out)
	}
	if out := must("ct", "create", "--vmid", "300", "--ostemplate", "local:vztmpl/bb.tar.gz", "--hostname", "cli-ct", "--memory", "64", "--start"); !strings.Contains(out, "Container 300 created and started.") {
		t.Fatalf("create: %s", out)
	}
	if out := must("ct", "list"); !strings.Contains(out, "cli-ct") || !strings.Contains(out, "running") {
		t.Fatalf("list: %s", out)
	}
	// exec: streams separated, stdin passed, exit code propagated.
	out, errOut, code := run("from-stdin\n", "ct", "exec", "300", "--env", "X=42", "--", "sh", "-c", "read l; echo $l $X; echo oops >&2; exit 5")
	if code != 5 || out != "from-stdin 42\n" || !strings.Contains(errOut, "oops") {
		t.Fatalf("exec: %d %q %q", code, out, errOut)
	}
	if out := must("ct", "exec", "300", "--", "hostname"); out != "cli-ct\n" {
		t.Fatalf("exec hostname: %q", out)
	}
	// enter without a terminal: a shell reading standard input.
	if out, _, _ := run("echo entered-$((40+2))\nexit\n", "ct", "enter", "300"); !strings.Contains(out, "entered-42") {
		t.Fatalf("enter: %q", out)
	}
	// Snapshot (while running: frozen meanwhile), change, roll back.
	must("ct", "exec", "300", "--", "sh", "-c", "echo before > /root/state")
	must("ct", "snapshot", "create", "300", "s1", "--description", "first")
	if out := must("ct", "snapshot", "list", "300"); !strings.Contains(out, "s1") || !strings.Contains(out, "first") {
		t.Fatalf("snapshot list: %s", out)
	}
	must("ct", "exec", "300", "--", "sh", "-c", "echo after > /root/state")
	if _, errOut, code := run("", "ct", "rollback", "300", "s1"); code == 0 || !strings.Contains(errOut, "running") {
		t.Fatalf("rollback of a running container: %d %s", code, errOut)
	}
	must("ct", "stop", "300")
	must("ct", "rollback", "300", "s1")
	must("ct", "start", "300")
	if out := must("ct", "exec", "300", "--", "cat", "/root/state"); out != "before\n" {
		t.Fatalf("after rollback: %q", out)
	}
	must("ct", "stop", "300")
	if _, errOut, code := run("", "ct", "template", "300"); code == 0 || !strings.Contains(errOut, "snapshots") {
		t.Fatalf("template with snapshots: %d %s", code, errOut)
	}
	must("ct", "snapshot", "delete", "300", "s1")
	rootfs := filepath.Join(n.DataDir, "storage", "images", "300")
	if m, _ := filepath.Glob(rootfs + "/*@*"); len(m) != 0 {
		t.Fatalf("snapshot copies left: %v", m)
	}
	// Template and clone (a full copy on a directory pool).
	must("ct", "template", "300")
	if _, err := os.Stat(filepath.Join(rootfs, "basevol-300-disk-0")); err != nil {
		t.Fatalf("template volume: %v", err)
	}
	if _, errOut, code := run("", "ct", "start", "300"); code == 0 || !strings.Contains(errOut, "template") {
		t.Fatalf("start of a template: %d %s", code, errOut)
	}
	if out := must("ct", "clone", "300", "--newid", "301", "--hostname", "clone1"); !strings.Contains(out, "Container 301 cloned from 300.") {
		t.Fatalf("clone: %s", out)
	}
	must("ct", "start", "301")
	if out := must("ct", "exec", "301", "--", "sh", "-c", "hostname; cat /root/state"); out != "clone1\nbefore\n" {
		t.Fatalf("clone content: %q", out)
	}
	if out := must("ct", "show", "301"); !strings.Contains(out, "clone1") || !strings.Contains(out, "local:301/subvol-301-disk-0") {
		t.Fatalf("show clone: %s", out)
	}
	must("ct", "stop", "301")
	must("ct", "destroy", "301", "--yes")
	must("ct", "destroy", "300", "--yes")
	if out := must("ct", "list"); strings.Contains(out, "30") {
		t.Fatalf("list after destroy: %s", out)
	}
	must("template", "remove", "local:vztmpl/bb.tar.gz")
}
