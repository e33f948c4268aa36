package test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/client"
)

// simplestreams serves a minimal simplestreams image server over loopback
// for one template file: busybox/1.35 with its true checksum, and
// busybox/tampered whose published checksum does not match the file.
func simplestreams(t *testing.T, tmplFile string) string {
	t.Helper()
	data, err := os.ReadFile(tmplFile)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	item := func(sha string) map[string]any {
		return map[string]any{"items": map[string]any{
			"root.tar.xz": map[string]any{"ftype": "root.tar.xz", "sha256": sha, "size": len(data), "path": "images/busybox/rootfs.tar.gz"},
			"lxd.tar.xz":  map[string]any{"ftype": "lxd.tar.xz", "sha256": strings.Repeat("0", 64), "size": 1, "path": "images/busybox/lxd.tar.xz"},
		}}
	}
	images := map[string]any{"format": "products:1.0", "products": map[string]any{
		"busybox:1.35:amd64:default": map[string]any{"aliases": "busybox/1.35/default,busybox/1.35,busybox/stable", "arch": "amd64", "os": "BusyBox",
			"release": "1.35", "variant": "default", "versions": map[string]any{"20261101_00:00": item(strings.Repeat("1", 64)), "20261125_00:00": item(hex.EncodeToString(sum[:]))}},
		"busybox:tampered:amd64:default": map[string]any{"aliases": "busybox/tampered", "arch": "amd64", "os": "BusyBox",
			"release": "tampered", "variant": "default", "versions": map[string]any{"20261125_00:00": item(strings.Repeat("ab", 32))}},
		"busybox:1.35:arm64:default": map[string]any{"aliases": "busybox/1.35", "arch": "arm64", "os": "BusyBox",
			"release": "1.35", "variant": "default", "versions": map[string]any{"20261125_00:00": item(hex.EncodeToString(sum[:]))}},
	}}
	index := map[string]any{"format": "index:1.0", "index": map[string]any{"images": map[string]any{"datatype": "image-downloads", "path": "streams/v1/images.json"}}}
	mux := http.NewServeMux()
	js := func(v any) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) { json.NewEncoder(w).Encode(v) }
	}
	mux.Handle("/streams/v1/index.json", js(index))
	mux.Handle("/streams/v1/images.json", js(images))
	mux.HandleFunc("/images/busybox/rootfs.tar.gz", func(w http.ResponseWriter, r *http.Request) { w.Write(data) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestContainerTemplateDownload: a simplestreams index of a locally built
// template, served over loopback; download by name with the published
// checksum verified; a tampered image refused and nothing stored.
func TestContainerTemplateDownload(t *testing.T) {
	needLXC(t)
	n := ctNode(t)
	c := n.Admin()
	busyboxTemplate(t, n, c)
	cache := filepath.Join(n.DataDir, "storage", "template", "cache")
	server := simplestreams(t, filepath.Join(cache, "busybox-test.tar.gz"))

	list, err := c.AvailableTemplates(bg, server)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "busybox/1.35" || list[0].Version != "20261125_00:00" || list[0].Arch != "amd64" {
		t.Fatalf("available: %+v", list)
	}
	upid, err := c.DownloadTemplate(bg, n.Name, "local", api.TemplateDownload{Name: "images:busybox/stable", Server: server})
	if err != nil {
		t.Fatal(err)
	}
	waitOK(t, c, upid)
	file := list[0].Filename
	if !strings.HasSuffix(file, ".tar.gz") {
		t.Fatalf("file name %q", file)
	}
	id := createCT(t, c, api.CTCreate{OSTemplate: "local:vztmpl/" + file, Hostname: "from-stream", Memory: 64, Start: true})
	if got := mustOut(t, c, id, "hostname"); got != "from-stream" {
		t.Fatalf("container from the downloaded template: %q", got)
	}
	ctAct(t, c, id, "stop")

	upid, err = c.DownloadTemplate(bg, n.Name, "local", api.TemplateDownload{Name: "busybox/tampered", Server: server, Filename: "tampered.tar.gz"})
	if err != nil {
		t.Fatal(err)
	}
	tk, err := c.WaitTask(bg, upid)
	if err != nil {
		t.Fatal(err)
	}
	if tk.Status != api.TaskFailed || !strings.Contains(tk.ExitMsg, "sha256 mismatch") {
		t.Fatalf("tampered download: %s %q", tk.Status, tk.ExitMsg)
	}
	if _, err := os.Stat(filepath.Join(cache, "tampered.tar.gz")); !os.IsNotExist(err) {
		t.Fatalf("tampered template stored: %v", err)
	}
	if _, err := c.DownloadTemplate(bg, n.Name, "local", api.TemplateDownload{Name: "nosuch/1", Server: server}); client.StatusOf(err) != 404 {
		t.Fatalf("unknown image: %v", err)
	}
	// The CLI, with a plain URL and its checksum.
	sum := sha256.Sum256(mustRead(t, filepath.Join(cache, "busybox-test.tar.gz")))
	env := []string{"CORRAL_SERVER=unix://" + n.Socket}
	if out, errOut, code := n.CLI(env, "", "template", "download", server+"/images/busybox/rootfs.tar.gz", "--filename", "by-url.tar.gz", "--sha256", hex.EncodeToString(sum[:])); code != 0 {
		t.Fatalf("template download URL: %d %s %s", code, out, errOut)
	}
	if out, _, code := n.CLI(env, "", "template", "available", "--server", server); code != 0 || !strings.Contains(out, "images:busybox/1.35") {
		t.Fatalf("template available: %d %s", code, out)
	}
	if out, _, _ := n.CLI(env, "", "template", "list"); !strings.Contains(out, "local:vztmpl/by-url.tar.gz") {
		t.Fatalf("template list: %s", out)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
