package test

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/corral-project/corral/api"
)

// TestCLI drives the built binary against a real daemon the way an
// administrator would: login, manage users and ACLs, run and follow a task.
func TestCLI(t *testing.T) {
	n := StartNode(t)
	home := t.TempDir()
	env := []string{"HOME=" + home, "XDG_CONFIG_HOME=", "CORRAL_SOCKET=/nonexistent", "CORRAL_SERVER=", "CORRAL_TOKEN="}
	run := func(stdin string, args ...string) (string, string, int) {
		t.Helper()
		return n.CLI(env, stdin, args...)
	}
	if out, errOut, code := run(n.Password+"\n", "login", "--server", n.URL, "--user", "admin@corral", "--password-stdin"); code != 0 {
		t.Fatalf("login: %d %s %s", code, out, errOut)
	}
	if st, err := os.Stat(home + "/.config/corral/session.json"); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("session file: %v %v", st, err)
	}
	if _, errOut, code := run("carol-password\n", "user", "create", "carol@corral", "--password-stdin", "--email", "carol@example.org"); code != 0 {
		t.Fatalf("user create: %d %s", code, errOut)
	}
	out, _, code := run("", "user", "list", "-o", "json")
	var users []api.User
	if code != 0 || json.Unmarshal([]byte(out), &users) != nil {
		t.Fatalf("user list json: %d %s", code, out)
	}
	found := false
	for _, u := range users {
		found = found || (u.UserID == "carol@corral" && u.Email == "carol@example.org")
	}
	if !found {
		t.Fatalf("carol not listed: %s", out)
	}
	if out, _, code := run("", "user", "list"); code != 0 || !strings.Contains(out, "carol@corral") || strings.HasPrefix(out, "[") {
		t.Fatalf("user list table: %d %s", code, out)
	}
	if out, _, code := run("", "user", "list", "-o", "yaml"); code != 0 || !strings.Contains(out, "userid: carol@corral") {
		t.Fatalf("user list yaml: %d %s", code, out)
	}
	if _, errOut, code := run("", "acl", "add", "--path", "/nodes/n1", "--role", "Auditor", "--user", "carol@corral"); code != 0 {
		t.Fatalf("acl add: %d %s", code, errOut)
	}
	// Errors print the problem detail and exit non-zero.
	_, errOut, code := run("", "acl", "add", "--path", "/bogus", "--role", "Auditor", "--user", "carol@corral")
	if code == 0 || !strings.Contains(errOut, "entries[0].path") {
		t.Fatalf("bad acl: code %d stderr %q", code, errOut)
	}
	// pvesh-style raw access.
	out, _, code = run("", "api", "post", "/nodes/n1/tasks/sleep", "seconds=1", "-o", "json")
	var ref api.TaskRef
	if code != 0 || json.Unmarshal([]byte(out), &ref) != nil || !strings.HasPrefix(ref.Task, "UPID:n1:") {
		t.Fatalf("api post: %d %s", code, out)
	}
	out, errOut, code = run("", "task", "log", ref.Task, "-f")
	if code != 0 || !strings.Contains(out, "slept 1/1") || !strings.Contains(out, "TASK OK") {
		t.Fatalf("task log -f: %d %s %s", code, out, errOut)
	}
	if out, _, code := run("", "task", "list", "--type", "sleep"); code != 0 || !strings.Contains(out, ref.Task) {
		t.Fatalf("task list: %d %s", code, out)
	}
	// Carol, logged in elsewhere, sees the node but can't create users.
	home2 := t.TempDir()
	env2 := []string{"HOME=" + home2, "XDG_CONFIG_HOME=", "CORRAL_SOCKET=/nonexistent", "CORRAL_SERVER=", "CORRAL_TOKEN="}
	if _, errOut, code := n.CLI(env2, "carol-password\n", "login", "--server", n.URL, "--user", "carol", "--password-stdin"); code != 0 {
		t.Fatalf("carol login: %s", errOut)
	}
	if out, _, code := n.CLI(env2, "", "node", "status", "n1", "-o", "json"); code != 0 || !strings.Contains(out, `"cpus"`) {
		t.Fatalf("carol node status: %d %s", code, out)
	}
	if _, errOut, code := n.CLI(env2, "x-password\n", "user", "create", "x@corral", "--password-stdin"); code != 1 || !strings.Contains(errOut, "403") {
		t.Fatalf("carol user create: %d %s", code, errOut)
	}
	// Without a session or token: a clear error.
	if _, errOut, code := n.CLI([]string{"HOME=" + t.TempDir(), "XDG_CONFIG_HOME=", "CORRAL_SOCKET=/nonexistent", "CORRAL_SERVER=", "CORRAL_TOKEN="}, "", "user", "list"); code == 0 || !strings.Contains(errOut, "login") {
		t.Fatalf("no credentials: %d %s", code, errOut)
	}
	// Local root over the unix socket, no password.
	if os.Geteuid() == 0 {
		sockEnv := []string{"HOME=" + t.TempDir(), "XDG_CONFIG_HOME=", "CORRAL_SOCKET=" + n.Socket, "CORRAL_SERVER=", "CORRAL_TOKEN="}
		if out, errOut, code := n.CLI(sockEnv, "", "node", "list"); code != 0 || !strings.Contains(out, "n1") {
			t.Fatalf("root over socket: %d %s %s", code, out, errOut)
		}
	}
}

// TestPAMRealm logs in a real host account through the pam realm.
func TestPAMRealm(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIP reason: creating a host account for the PAM test needs root")
	}
	if _, err := exec.LookPath("useradd"); err != nil {
		t.Skip("SKIP reason: useradd not installed")
	}
	b := make([]byte, 4)
	rand.Read(b)
	name := "corralit" + hex.EncodeToString(b)
	if out, err := exec.Command("useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("userdel", name).Run() })
	chpw := exec.Command("chpasswd")
	chpw.Stdin = strings.NewReader(name + ":host-secret-1\n")
	if out, err := chpw.CombinedOutput(); err != nil {
		t.Fatalf("chpasswd: %v %s", err, out)
	}

	n := StartNode(t)
	admin := n.Admin()
	realms, _ := admin.Realms(bg)
	hasPAM := false
	for _, r := range realms {
		hasPAM = hasPAM || r.Type == "pam"
	}
	if !hasPAM {
		t.Fatalf("pam realm not created on a host with PAM: %+v", realms)
	}
	// A host account that is not a corral user can't log in.
	if _, err := n.Client().Login(bg, name+"@pam", "host-secret-1"); err == nil {
		t.Fatal("host account without a corral user logged in")
	}
	if _, err := admin.CreateUser(bg, api.UserCreate{UserID: name + "@pam"}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CreateUser(bg, api.UserCreate{UserID: name + "x@pam", Password: "not-allowed-1"}); err == nil {
		t.Fatal("a password was accepted for a pam user")
	}
	c := n.Client()
	tk, err := c.Login(bg, name+"@pam", "host-secret-1")
	if err != nil || tk.Username != name+"@pam" {
		t.Fatalf("pam login: %+v %v", tk, err)
	}
	if _, err := n.Client().Login(bg, name+"@pam", "wrong-secret"); err == nil {
		t.Fatal("pam login with a wrong password succeeded")
	}
}
