package test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/corral-project/corral/api"
)

// TestCLIStorage drives the storage commands of the built binary against a
// real daemon: pool status, a guest volume's life, an ISO upload and a
// download task.
func TestCLIStorage(t *testing.T) {
	n := StartNode(t)
	env := []string{"HOME=" + t.TempDir(), "XDG_CONFIG_HOME=", "CORRAL_SOCKET=/nonexistent", "CORRAL_SERVER=", "CORRAL_TOKEN="}
	run := func(args ...string) (string, string, int) {
		t.Helper()
		return n.CLI(env, "", args...)
	}
	if _, errOut, code := n.CLI(env, n.Password+"\n", "login", "--server", n.URL, "--user", "admin@corral", "--password-stdin"); code != 0 {
		t.Fatalf("login: %d %s", code, errOut)
	}

	// The default pool, on the only node (no --node needed).
	out, errOut, code := run("storage", "status")
	if code != 0 || !strings.HasPrefix(out, "STORAGE") || !strings.Contains(out, "local") || !strings.Contains(out, "GiB") {
		t.Fatalf("storage status: %d %q %s", code, out, errOut)
	}
	out, _, code = run("storage", "status", "-o", "json")
	var pools []api.StorageStatus
	if code != 0 || json.Unmarshal([]byte(out), &pools) != nil || len(pools) != 1 || !pools[0].Active || pools[0].Node != "n1" {
		t.Fatalf("storage status json: %d %s", code, out)
	}

	// A guest volume: allocate, list, grow, free.
	out, errOut, code = run("storage", "alloc", "local", "--vmid", "100", "--size", "1g", "-o", "json")
	var vol api.Volume
	if code != 0 || json.Unmarshal([]byte(out), &vol) != nil || vol.VolID != "local:100/vm-100-disk-0.qcow2" || vol.Size != 1<<30 {
		t.Fatalf("alloc: %d %s %s", code, out, errOut)
	}
	if out, errOut, code := run("storage", "content", "local", "--vmid", "100"); code != 0 || !strings.Contains(out, vol.VolID) || !strings.Contains(out, "1.0 GiB") {
		t.Fatalf("content: %d %s %s", code, out, errOut)
	}
	if out, errOut, code := run("storage", "resize", vol.VolID, "+1G"); code != 0 || !strings.Contains(out, "2.0 GiB") {
		t.Fatalf("resize: %d %s %s", code, out, errOut)
	}
	// A guest's volume needs --force; the server's reason is shown.
	if _, errOut, code := run("storage", "free", vol.VolID); code != 1 || !strings.Contains(errOut, "409") || !strings.Contains(errOut, "force") {
		t.Fatalf("free without --force: %d %s", code, errOut)
	}
	if out, errOut, code := run("storage", "free", vol.VolID, "--force"); code != 0 || !strings.Contains(out, "freed") {
		t.Fatalf("free --force: %d %s %s", code, out, errOut)
	}
	if out, _, code := run("storage", "content", "local", "--content", "images", "-o", "json"); code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("content after free: %d %s", code, out)
	}

	// Upload a small ISO, verified by a locally computed checksum.
	iso := filepath.Join(t.TempDir(), "tiny.iso")
	data := bytes.Repeat([]byte("corral-iso\n"), 50000)
	if err := os.WriteFile(iso, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := run("storage", "upload", "local", iso, "--content", "iso", "--checksum"); code != 0 || !strings.Contains(out, "local:iso/tiny.iso") {
		t.Fatalf("upload: %d %s %s", code, out, errOut)
	}
	stored, err := os.ReadFile(filepath.Join(n.DataDir, "storage", "template", "iso", "tiny.iso"))
	if err != nil || !bytes.Equal(stored, data) {
		t.Fatalf("uploaded file differs: %v", err)
	}
	if _, errOut, code := run("storage", "upload", "local", iso, "--content", "iso"); code != 1 || !strings.Contains(errOut, "already exists") {
		t.Fatalf("upload over an existing file: %d %s", code, errOut)
	}
	if _, errOut, code := run("storage", "upload", "local", iso, "--content", "iso", "--filename", "bad.iso", "--sha256", strings.Repeat("0", 64)); code != 1 || !strings.Contains(errOut, "sha256") {
		t.Fatalf("upload with a wrong checksum: %d %s", code, errOut)
	}
	if out, errOut, code := run("storage", "content", "local", "--content", "iso"); code != 0 || !strings.Contains(out, "local:iso/tiny.iso") || strings.Contains(out, "bad.iso") {
		t.Fatalf("content iso: %d %s %s", code, out, errOut)
	}
	if out, errOut, code := run("storage", "free", "local:iso/tiny.iso"); code != 0 || !strings.Contains(out, "freed") {
		t.Fatalf("free iso: %d %s %s", code, out, errOut)
	}

	// A download task, followed to its end.
	src := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(data) }))
	defer src.Close()
	out, errOut, code = run("storage", "download", "local", src.URL+"/net.iso", "--content", "iso", "--filename", "net.iso", "--wait")
	if code != 0 || !strings.Contains(out, "stored local:iso/net.iso") || !strings.Contains(errOut, "finished: ok") {
		t.Fatalf("download --wait: %d %s %s", code, out, errOut)
	}
}
