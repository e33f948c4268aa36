package client

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/corral-project/corral/api"
)

func TestVMRequests(t *testing.T) {
	var mu sync.Mutex
	var last storageRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		last = storageRequest{r.Method, r.URL.Path, r.URL.EscapedPath(), r.URL.RawQuery, string(b), r.Header.Get("If-Match"), r.Header.Get("Content-Type")}
		mu.Unlock()
		switch {
		case r.Method == http.MethodPost && (r.URL.Path == "/api/v1/vms" || strings.HasSuffix(r.URL.Path, "/clone")):
			w.WriteHeader(http.StatusAccepted)
			io.WriteString(w, `{"task":"UPID:n1:1:2:qmcreate:101:root@pam:","vmid":101}`)
		case strings.HasSuffix(r.URL.Path, "/vncproxy"):
			io.WriteString(w, `{"ticket":"t1","password":"p1"}`)
		case r.Method == http.MethodDelete || r.Method == http.MethodPost:
			w.WriteHeader(http.StatusAccepted)
			io.WriteString(w, `{"task":"UPID:n1:1:2:qmx:100:root@pam:"}`)
		case r.URL.Path == "/api/v1/vms" || strings.HasSuffix(r.URL.Path, "/snapshot"):
			io.WriteString(w, `[]`)
		default:
			w.Header().Set("ETag", `"d9"`)
			io.WriteString(w, `{}`)
		}
	}))
	defer srv.Close()
	c := newTestClient(t, srv, Options{})
	ctx := context.Background()
	mem, on := 96, true
	cdroms := []api.VMCDROM{{Volume: "none"}}

	tests := []struct {
		name                   string
		call                   func() error
		method, rawPath, query string
		body                   string
		ifMatch                string
	}{
		{"list all", func() error { _, err := c.VMs(ctx, ""); return err },
			"GET", "/api/v1/vms", "", "", ""},
		{"list one node", func() error { _, err := c.VMs(ctx, "n1"); return err },
			"GET", "/api/v1/vms", "node=n1", "", ""},
		{"config, digest from the ETag", func() error {
			vm, err := c.VM(ctx, 100)
			if err == nil && vm.Digest != "d9" {
				t.Errorf("digest = %q", vm.Digest)
			}
			return err
		}, "GET", "/api/v1/vms/100/config", "", "", ""},
		{"create", func() error {
			cr, err := c.CreateVM(ctx, api.VMCreate{Name: "web1", Memory: 64, Disks: []api.VMDisk{{Bus: "virtio", Storage: "local", Size: "1G"}}, Start: true})
			if err == nil && (cr.VMID != 101 || cr.Task == "") {
				t.Errorf("created %+v", cr)
			}
			return err
		}, "POST", "/api/v1/vms", "", `{"name":"web1","memory":64,"disks":[{"bus":"virtio","storage":"local","size":"1G"}],"start":true}`, ""},
		{"update sends only set fields and If-Match", func() error {
			_, err := c.UpdateVM(ctx, 100, api.VMUpdate{Memory: &mem, OnBoot: &on, CDROMs: &cdroms}, WithIfMatch("d9"))
			return err
		}, "PUT", "/api/v1/vms/100/config", "", `{"memory":96,"cdroms":[{"volume":"none"}],"onboot":true}`, "d9"},
		{"delete", func() error { _, err := c.DeleteVM(ctx, 100, false); return err },
			"DELETE", "/api/v1/vms/100", "", "", ""},
		{"delete and purge", func() error { _, err := c.DeleteVM(ctx, 100, true); return err },
			"DELETE", "/api/v1/vms/100", "purge=true", "", ""},
		{"start has no body", func() error { _, err := c.StartVM(ctx, 100); return err },
			"POST", "/api/v1/vms/100/status/start", "", "", ""},
		{"stop", func() error { _, err := c.StopVM(ctx, 100); return err },
			"POST", "/api/v1/vms/100/status/stop", "", "", ""},
		{"shutdown with parameters", func() error {
			_, err := c.ShutdownVM(ctx, 100, &api.VMShutdown{Timeout: 30, Force: func() *bool { b := true; return &b }()})
			return err
		}, "POST", "/api/v1/vms/100/status/shutdown", "", `{"timeout":30,"force":true}`, ""},
		{"resume", func() error { _, err := c.VMAction(ctx, 100, VMResume, nil); return err },
			"POST", "/api/v1/vms/100/status/resume", "", "", ""},
		{"status", func() error { _, err := c.VMStatus(ctx, 100); return err },
			"GET", "/api/v1/vms/100/status", "", "", ""},
		{"template", func() error { _, err := c.TemplateVM(ctx, 100); return err },
			"POST", "/api/v1/vms/100/template", "", "", ""},
		{"clone", func() error {
			cr, err := c.CloneVM(ctx, 100, api.VMClone{NewID: 101, Name: "web2", Full: true})
			if err == nil && cr.VMID != 101 {
				t.Errorf("clone %+v", cr)
			}
			return err
		}, "POST", "/api/v1/vms/100/clone", "", `{"newid":101,"name":"web2","full":true}`, ""},
		{"snapshots", func() error { _, err := c.VMSnapshots(ctx, 100); return err },
			"GET", "/api/v1/vms/100/snapshot", "", "", ""},
		{"snapshot", func() error {
			_, err := c.SnapshotVM(ctx, 100, api.VMSnapshotCreate{Name: "before", Description: "pre-upgrade"})
			return err
		}, "POST", "/api/v1/vms/100/snapshot", "", `{"name":"before","description":"pre-upgrade"}`, ""},
		{"rollback", func() error { _, err := c.RollbackVM(ctx, 100, "before"); return err },
			"POST", "/api/v1/vms/100/snapshot/before/rollback", "", "", ""},
		{"delete snapshot", func() error { _, err := c.DeleteVMSnapshot(ctx, 100, "before"); return err },
			"DELETE", "/api/v1/vms/100/snapshot/before", "", "", ""},
		{"resize disk", func() error { _, err := c.ResizeVMDisk(ctx, 100, 1, "+1G"); return err },
			"POST", "/api/v1/vms/100/disks/1/resize", "", `{"size":"+1G"}`, ""},
		{"move disk", func() error {
			_, err := c.MoveVMDisk(ctx, 100, 0, api.VMDiskMove{Storage: "fast", Format: "raw", Delete: true})
			return err
		}, "POST", "/api/v1/vms/100/disks/0/move", "", `{"storage":"fast","format":"raw","delete":true}`, ""},
		{"vncproxy", func() error {
			tk, err := c.VNCProxy(ctx, 100)
			if err == nil && (tk.Ticket != "t1" || tk.Password != "p1") {
				t.Errorf("ticket %+v", tk)
			}
			return err
		}, "POST", "/api/v1/vms/100/vncproxy", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			got := last
			mu.Unlock()
			if got.method != tt.method || got.rawPath != tt.rawPath || got.query != tt.query || got.body != tt.body || got.ifMatch != tt.ifMatch {
				t.Errorf("got %s %s ?%s body=%s If-Match=%q\nwant %s %s ?%s body=%s If-Match=%q",
					got.method, got.rawPath, got.query, got.body, got.ifMatch, tt.method, tt.rawPath, tt.query, tt.body, tt.ifMatch)
			}
		})
	}
}

func TestVMErrorsNameTheVM(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusConflict)
		io.WriteString(w, `{"title":"Conflict","status":409,"detail":"VM 100 is running; stop it first"}`)
	}))
	defer srv.Close()
	c := newTestClient(t, srv, Options{})
	_, err := c.DeleteVM(context.Background(), 100, false)
	var p *api.Problem
	if !errors.As(err, &p) || p.Status != 409 || !strings.HasPrefix(err.Error(), "destroy VM 100: 409 Conflict") {
		t.Errorf("err = %v", err)
	}
	_, err = c.VMAction(context.Background(), 100, VMShutdown, nil)
	if StatusOf(err) != 409 || !strings.HasPrefix(err.Error(), "shutdown VM 100:") {
		t.Errorf("err = %v", err)
	}
}

// consoleHandler is a fake console websocket: it checks the credentials,
// refuses VM 200 with a problem document, and echoes every frame back in
// upper case.
func consoleHandler(t *testing.T, wantAuth string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/vms/{vmid}/vncwebsocket", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("vncticket") != "t1" || r.Header.Get("Authorization") != wantAuth {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(403)
			io.WriteString(w, `{"title":"Forbidden","status":403,"detail":"invalid or expired VNC ticket"}`)
			return
		}
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		ws.Write(r.Context(), websocket.MessageBinary, []byte("RFB 003.008\n"))
		ws.Close(websocket.StatusNormalClosure, "")
	})
	mux.HandleFunc("GET /api/v1/vms/{vmid}/termwebsocket", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != wantAuth {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(401)
			io.WriteString(w, `{"title":"Unauthorized","status":401,"detail":"authentication required"}`)
			return
		}
		if r.PathValue("vmid") == "200" {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(409)
			io.WriteString(w, `{"title":"Conflict","status":409,"detail":"VM 200 is not running"}`)
			return
		}
		ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"binary"}})
		if err != nil {
			t.Errorf("accept: %v", err)
			return
		}
		defer ws.CloseNow()
		for {
			typ, data, err := ws.Read(r.Context())
			if err != nil {
				return
			}
			if typ != websocket.MessageBinary {
				t.Errorf("frame type %v, want binary", typ)
			}
			if err := ws.Write(r.Context(), websocket.MessageBinary, []byte(strings.ToUpper(string(data)))); err != nil {
				return
			}
			if strings.Contains(string(data), "drop") {
				ws.CloseNow() // no close frame, as the server does when a VM stops
				return
			}
			if strings.Contains(string(data), "bye") {
				ws.Close(websocket.StatusNormalClosure, "")
				return
			}
		}
	})
	return mux
}

// talk writes to a console connection and reads the echo, until the
// server closes it after "bye".
func talk(t *testing.T, conn net.Conn) {
	t.Helper()
	if _, err := conn.Write([]byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 6)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "HELLO\n" {
		t.Fatalf("echo %q, %v", buf, err)
	}
	conn.Write([]byte("bye"))
	rest, err := io.ReadAll(conn)
	if err != nil || string(rest) != "BYE" {
		t.Fatalf("after bye: %q, %v (want BYE and EOF)", rest, err)
	}
}

// TestSerialConsoleTLS dials through the client's TLS trust and token,
// against a server that offers HTTP/2 (where a websocket upgrade cannot
// happen), with a request timeout shorter than the session.
func TestSerialConsoleTLS(t *testing.T) {
	srv := httptest.NewUnstartedServer(consoleHandler(t, "CorralToken root@pam!t=s"))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	c := newTestClient(t, srv, Options{Token: "root@pam!t=s", Timeout: 300 * time.Millisecond})
	ctx := context.Background()
	conn, err := c.SerialConsole(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	time.Sleep(500 * time.Millisecond) // past the request timeout
	talk(t, conn)

	_, err = c.SerialConsole(ctx, 200)
	var p *api.Problem
	if !errors.As(err, &p) || p.Status != 409 || !strings.Contains(err.Error(), "console of VM 200: 409 Conflict: VM 200 is not running") {
		t.Errorf("stopped VM: %v", err)
	}
	other := newTestClient(t, srv, Options{Ticket: "wrong"})
	if _, err := other.SerialConsole(ctx, 100); StatusOf(err) != 401 {
		t.Errorf("bad credentials: %v", err)
	}
}

// TestSerialConsoleDropped: a connection dropped without a close frame
// reads as the end of the stream.
func TestSerialConsoleDropped(t *testing.T) {
	srv := httptest.NewTLSServer(consoleHandler(t, ""))
	defer srv.Close()
	c := newTestClient(t, srv, Options{})
	conn, err := c.SerialConsole(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte("drop"))
	rest, err := io.ReadAll(conn)
	if err != nil || string(rest) != "DROP" {
		t.Errorf("read %q, %v; want DROP and EOF", rest, err)
	}
}

func TestSerialConsoleUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "c.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: consoleHandler(t, "Bearer T1")}
	go srv.Serve(ln)
	defer srv.Close()
	c, err := New(Options{Server: "unix://" + sock, Ticket: "T1"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	conn, err := c.SerialConsole(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	talk(t, conn)
}

func TestVNCConsole(t *testing.T) {
	srv := httptest.NewTLSServer(consoleHandler(t, "Bearer T1"))
	defer srv.Close()
	c := newTestClient(t, srv, Options{Ticket: "T1"})
	conn, err := c.VNCConsole(context.Background(), 100, "t1")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if b, err := io.ReadAll(conn); err != nil || string(b) != "RFB 003.008\n" {
		t.Errorf("read %q, %v", b, err)
	}
	if _, err := c.VNCConsole(context.Background(), 100, "used"); StatusOf(err) != 403 || !strings.Contains(err.Error(), "open VNC display of VM 100: 403 Forbidden") {
		t.Errorf("bad ticket: %v", err)
	}
}

// TestSerialConsoleContext: ending the context ends the session.
func TestSerialConsoleContext(t *testing.T) {
	srv := httptest.NewTLSServer(consoleHandler(t, ""))
	defer srv.Close()
	c := newTestClient(t, srv, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	conn, err := c.SerialConsole(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	done := make(chan error, 1)
	go func() {
		_, err := conn.Read(make([]byte, 10))
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Error("read succeeded after cancel")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("read still blocked after the context ended")
	}
}
