package test

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/client"
	"github.com/corral-project/corral/test/guest"
)

// needChromium finds Debian's chromium and checks that it starts headless
// here; the e2e suite drives it with playwright-core, never a downloaded
// browser.
func needChromium(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (make deps-test installs Debian's chromium)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	profile := t.TempDir()
	out, err := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--user-data-dir="+profile, "--dump-dom", "about:blank").CombinedOutput()
	if err != nil {
		t.Skipf("chromium cannot run headless here: %v: %s", err, lastLines(string(out), 5))
	}
	return bin
}

// uploadISO uploads a file to the "local" pool on n1 as ISO content.
func uploadISO(t *testing.T, c *client.Client, path, name string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := c.Do(bg, "POST", "/nodes/n1/storage/local/upload", url.Values{"content": {"iso"}, "filename": {name}}, f, nil,
		client.WithHeader("Content-Type", "application/octet-stream")); err != nil {
		t.Fatal(err)
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// TestWebUI runs the web UI's end-to-end suite (web/e2e/run.mjs) against a
// real daemon serving the embedded UI: log in (and a wrong password), create
// a VM from the test guest's ISO in the wizard, start it, watch its screen
// change in noVNC, follow its task log, edit hardware (pending change), and
// check that a restricted user sees only their VM and no destroy button;
// with LXC, build the busybox template, create a container in the wizard
// (past a server field error), start it, log in on its console and run a
// command there, snapshot, stop and destroy it.
// Screenshots of each view go to $CORRAL_E2E_OUT (default:
// .test-artifacts/web-e2e in the checkout).
func TestWebUI(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end browser test; skipped with -short")
	}
	if _, err := os.Stat("../internal/webui/dist/index.html"); err != nil {
		t.Skip("the web UI is not built into this binary (make build runs the UI build first)")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed (the web UI build needs Node.js >= 20.19)")
	}
	if _, err := os.Stat("../web/node_modules/playwright-core"); err != nil {
		t.Skip("web/node_modules is missing: run make web-deps (npm ci)")
	}
	needQEMU(t)
	browser := needChromium(t)
	dir := guest.Build(t)

	// With LXC the suite also builds a template and drives a container.
	var n *Node
	cts := "1"
	if why := lxcMissing(); why != "" {
		t.Logf("no container steps: %s", why)
		cts = "0"
		n = StartNode(t)
	} else {
		n = ctNode(t)
	}
	c := n.Admin()
	uploadISO(t, c, filepath.Join(dir, guest.ISO), "guest.iso")
	// A restricted user who may use VM 101 and nothing else.
	if _, err := c.Do(bg, "POST", "/access/users", nil, map[string]any{"userid": "alice@corral", "password": "alice-pass-1"}, nil); err != nil {
		t.Fatal(err)
	}
	cr, err := createVM(t, c, api.VMCreate{VMID: 101, Name: "alice-vm", Memory: 64})
	if err != nil {
		t.Fatal(err)
	}
	waitOK(t, c, cr.Task)
	if _, err := c.Do(bg, "PUT", "/access/acl", nil, api.ACLUpdate{Entries: []api.ACLEntry{{Path: "/vms/101", User: "alice@corral", Role: "VMUser", Propagate: true}}}, nil); err != nil {
		t.Fatal(err)
	}

	// Screenshots are the suite's artifacts: kept after the run.
	out := os.Getenv("CORRAL_E2E_OUT")
	if out == "" {
		out = "../.test-artifacts/web-e2e"
		os.RemoveAll(out) // ours alone: no stale screenshots from an earlier run
	}
	if out, err = filepath.Abs(out); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "e2e/run.mjs")
	cmd.Dir = "../web"
	cmd.Env = append(os.Environ(), "CORRAL_URL="+n.URL, "ADMIN_USER=admin", "ADMIN_PASSWORD="+n.Password,
		"USER_NAME=alice@corral", "USER_PASSWORD=alice-pass-1", "USER_VMID=101", "ISO=local:iso/guest.iso",
		"ISO_FILE="+filepath.Join(dir, guest.ISO),
		"OUT="+out, "CHROMIUM="+browser, "CONTAINERS="+cts)
	start := time.Now()
	b, err := cmd.CombinedOutput()
	t.Logf("e2e output (%s, screenshots in %s):\n%s", time.Since(start).Round(time.Second), out, b)
	if err != nil {
		t.Fatalf("web e2e suite failed: %v", err)
	}
}
