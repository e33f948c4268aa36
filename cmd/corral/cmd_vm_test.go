package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/client"
)

// vmFake imitates the VM endpoints and task records on https://127.0.0.1,
// recording every request. VM 100 runs with a pending memory change and
// a pending second CD-ROM; VM 101 is a stopped template.
type vmFake struct {
	*httptest.Server
	mu         sync.Mutex
	reqs       []storageRequest
	taskStatus string // final status of every task
}

func fakeVMs() []api.VM {
	web := api.VMConfig{VMID: 100, Name: "web1", Node: "n1", Cores: 2, Sockets: 1, CPU: "host", Memory: 64, Machine: "q35", BIOS: "seabios",
		Boot: []string{"disk0"}, Disks: []api.VMDisk{{Bus: "virtio", Volume: "local:100/vm-100-disk-0.qcow2", Cache: "none", Discard: true}},
		CDROMs: []api.VMCDROM{{Volume: "none"}}, Serial: true, VGA: "std", Tags: []string{"prod"}, UUID: "u-100"}
	pending := web
	pending.Memory = 96
	pending.CDROMs = []api.VMCDROM{{Volume: "none"}, {Volume: "local:iso/debian.iso"}}
	tmpl := api.VMConfig{VMID: 101, Name: "base", Node: "n1", Cores: 1, Sockets: 2, CPU: "qemu64", Memory: 2048, Machine: "pc", BIOS: "ovmf", VGA: "std", Template: true}
	return []api.VM{
		{Config: web, Pending: &pending, Status: "running", Digest: "d100"},
		{Config: tmpl, Status: "stopped", Digest: "d101"},
	}
}

func newVMFake(t *testing.T) *vmFake {
	f := &vmFake{taskStatus: api.TaskOK}
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	upid := func(typ, vmid string) string { return "UPID:n1:1:2:" + typ + ":" + vmid + ":root@pam:" }
	find := func(w http.ResponseWriter, r *http.Request) *api.VM {
		for _, v := range fakeVMs() {
			if fmt.Sprint(v.Config.VMID) == r.PathValue("vmid") {
				return &v
			}
		}
		problem(w, 404, "VM "+r.PathValue("vmid")+" does not exist")
		return nil
	}
	mux.HandleFunc("GET /api/v1/vms", func(w http.ResponseWriter, r *http.Request) { reply(w, 200, fakeVMs()) })
	mux.HandleFunc("GET /api/v1/vms/{vmid}/config", func(w http.ResponseWriter, r *http.Request) {
		if v := find(w, r); v != nil {
			w.Header().Set("ETag", `"`+v.Digest+`"`)
			reply(w, 200, v)
		}
	})
	mux.HandleFunc("POST /api/v1/vms", func(w http.ResponseWriter, r *http.Request) {
		var in api.VMCreate
		json.NewDecoder(r.Body).Decode(&in)
		if in.VMID == 0 {
			in.VMID = 102
		}
		reply(w, 202, client.VMCreated{Task: upid("qmcreate", fmt.Sprint(in.VMID)), VMID: in.VMID})
	})
	mux.HandleFunc("PUT /api/v1/vms/{vmid}/config", func(w http.ResponseWriter, r *http.Request) {
		var u api.VMUpdate
		json.NewDecoder(r.Body).Decode(&u)
		if v := find(w, r); v != nil {
			if u.Memory == nil {
				v.Pending = nil
			}
			reply(w, 200, v)
		}
	})
	mux.HandleFunc("DELETE /api/v1/vms/{vmid}", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 202, api.TaskRef{Task: upid("qmdestroy", r.PathValue("vmid"))})
	})
	mux.HandleFunc("POST /api/v1/vms/{vmid}/status/{action}", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 202, api.TaskRef{Task: upid("qm"+r.PathValue("action"), r.PathValue("vmid"))})
	})
	task := func(typ string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			reply(w, 202, api.TaskRef{Task: upid(typ, r.PathValue("vmid"))})
		}
	}
	mux.HandleFunc("POST /api/v1/vms/{vmid}/template", task("qmtemplate"))
	mux.HandleFunc("POST /api/v1/vms/{vmid}/clone", func(w http.ResponseWriter, r *http.Request) {
		var in api.VMClone
		json.NewDecoder(r.Body).Decode(&in)
		if in.NewID == 0 {
			in.NewID = 103
		}
		reply(w, 202, client.VMCreated{Task: upid("qmclone", r.PathValue("vmid")), VMID: in.NewID})
	})
	mux.HandleFunc("GET /api/v1/vms/{vmid}/snapshot", func(w http.ResponseWriter, r *http.Request) {
		at := func(h int) time.Time { return time.Date(2025, 1, 1, h, 0, 0, 0, time.UTC) }
		// Not in tree order, as the server may list them.
		reply(w, 200, []api.VMSnapshot{
			{Name: "upgrade", Parent: "base", Time: at(3), VMState: true, Current: true, Description: "before the upgrade"},
			{Name: "try2", Parent: "base", Time: at(2)},
			{Name: "base", Time: at(1)},
			{Name: "orphan", Parent: "gone", Time: at(4)},
		})
	})
	mux.HandleFunc("POST /api/v1/vms/{vmid}/snapshot", task("qmsnapshot"))
	mux.HandleFunc("POST /api/v1/vms/{vmid}/snapshot/{name}/rollback", task("qmrollback"))
	mux.HandleFunc("DELETE /api/v1/vms/{vmid}/snapshot/{name}", task("qmdelsnapshot"))
	mux.HandleFunc("POST /api/v1/vms/{vmid}/disks/{disk}/{op}", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 202, api.TaskRef{Task: upid("qm"+r.PathValue("op"), r.PathValue("vmid"))})
	})
	vncSessions := 0
	mux.HandleFunc("POST /api/v1/vms/{vmid}/vncproxy", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("vmid") != "100" {
			problem(w, 409, "VM "+r.PathValue("vmid")+" is not running")
			return
		}
		f.mu.Lock()
		vncSessions++
		n := vncSessions
		f.mu.Unlock()
		reply(w, 200, client.VNCTicket{Ticket: fmt.Sprintf("tk%d", n), Password: fmt.Sprintf("pw%d", n)})
	})
	mux.HandleFunc("GET /api/v1/vms/{vmid}/vncwebsocket", func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Query().Get("vncticket"), "tk") {
			problem(w, 403, "invalid or expired VNC ticket")
			return
		}
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		ws.Write(r.Context(), websocket.MessageBinary, []byte("RFB 003.008\n"))
		for {
			_, data, err := ws.Read(r.Context())
			if err != nil {
				return
			}
			ws.Write(r.Context(), websocket.MessageBinary, bytes.ToUpper(data))
		}
	})
	mux.HandleFunc("GET /api/v1/vms/{vmid}/status", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, api.VMStatus{VMID: 100, Node: "n1", Status: "running", QMPStatus: "running", PID: 4242, Uptime: 3720,
			CPU: 0.125, Mem: 80 << 20, MaxMem: 64 << 20, Accel: "kvm", Started: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)})
	})
	mux.HandleFunc("GET /api/v1/tasks/{upid}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		st := f.taskStatus
		f.mu.Unlock()
		task := api.Task{ID: r.PathValue("upid"), Node: "n1", Status: st}
		if st == api.TaskFailed {
			task.ExitMsg = "QEMU exited: cannot set up guest memory"
		}
		reply(w, 200, task)
	})
	mux.HandleFunc("GET /api/v1/vms/{vmid}/termwebsocket", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("vmid") != "100" {
			problem(w, 409, "VM "+r.PathValue("vmid")+" is not running")
			return
		}
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		for {
			_, data, err := ws.Read(r.Context())
			if err != nil {
				return
			}
			ws.Write(r.Context(), websocket.MessageBinary, bytes.ToUpper(data))
			if bytes.Contains(data, []byte("bye")) {
				ws.Close(websocket.StatusNormalClosure, "")
				return
			}
		}
	})
	f.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer T1" {
			problem(w, http.StatusUnauthorized, "authentication required")
			return
		}
		b, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(b))
		f.mu.Lock()
		f.reqs = append(f.reqs, storageRequest{method: r.Method, rawPath: r.URL.EscapedPath(), query: r.URL.RawQuery, body: string(b),
			contentType: r.Header.Get("Content-Type"), ifMatch: r.Header.Get("If-Match")})
		f.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	f.TLS = &tls.Config{Certificates: []tls.Certificate{selfSignedCert(t)}}
	f.StartTLS()
	t.Cleanup(f.Close)
	return f
}

func (f *vmFake) requests() []storageRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.reqs
	f.reqs = nil
	return r
}

func (f *vmFake) setTaskStatus(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.taskStatus = s
}

func (f *vmFake) loggedIn(t *testing.T) *cliEnv {
	e := newCLIEnv(t)
	server, err := client.NormalizeServer(f.URL)
	if err != nil {
		t.Fatal(err)
	}
	e.saveSession(&savedSession{Server: server, Ticket: "T1", Username: "root@pam", Expires: time.Now().Add(time.Hour),
		CA: string(client.EncodeCertPEM(f.Certificate()))})
	return e
}

// TestVMCommands checks the request each command sends, that commands
// starting a task wait for it by default (GET /tasks/UPID), and what they
// print.
func TestVMCommands(t *testing.T) {
	srv := newVMFake(t)
	e := srv.loggedIn(t)
	const startUPID = "UPID:n1:1:2:qmstart:100:root@pam:"
	tests := []struct {
		name   string
		args   []string
		want   storageRequest // method, rawPath, query, body (exact), ifMatch
		waits  bool           // a GET of the task follows
		out    []string       // substrings of stdout
		absent []string       // not in stdout
	}{
		{"list", []string{"vm", "list"},
			storageRequest{method: "GET", rawPath: "/api/v1/vms"}, false,
			[]string{"VMID  NAME  NODE  STATUS    CPUS  MEMORY  LOCK  PENDING  TAGS\n",
				"100   web1  n1    running   2     64 MiB  -     yes      prod\n",
				"101   base  n1    template  2     2 GiB   -     -        -\n"}, nil},
		{"list one node", []string{"vm", "list", "--node", "n1"},
			storageRequest{method: "GET", rawPath: "/api/v1/vms", query: "node=n1"}, false, []string{"web1"}, nil},
		{"status", []string{"vm", "status", "100"},
			storageRequest{method: "GET", rawPath: "/api/v1/vms/100/status"}, false,
			[]string{"status     running\n", "pid        4242\n", "uptime     1h 2m\n", "cpu        12.5%\n", "memory     80.0 MiB\n", "accel      kvm\n"}, nil},
		{"config is the current one", []string{"vm", "config", "100"},
			storageRequest{method: "GET", rawPath: "/api/v1/vms/100/config"}, false,
			[]string{"vmid     100\n", "memory   64\n", `disks    [{"bus":"virtio","volume":"local:100/vm-100-disk-0.qcow2","cache":"none","discard":true}]`},
			[]string{"96", "debian"}},
		{"config --pending", []string{"vm", "config", "100", "--pending"},
			storageRequest{method: "GET", rawPath: "/api/v1/vms/100/config"}, false,
			[]string{"memory   96\n", "local:iso/debian.iso"}, nil},
		{"create from disk specs", []string{"vm", "create", "--vmid", "200", "--name", "db1", "--memory", "2048", "--cores", "2", "--sockets", "2",
			"--cpu", "host", "--machine", "pc", "--bios", "ovmf",
			"--disk", "bus=virtio,storage=local,size=10g", "--disk", "bus=scsi,volume=local:100/vm-100-disk-0.qcow2,cache=writeback,discard,iothread=false",
			"--cdrom", "local:iso/x.iso", "--cdrom", "none", "--boot", "cdrom0,disk0", "--serial=false", "--vga", "std", "--tags", "a,b", "--start"},
			storageRequest{method: "POST", rawPath: "/api/v1/vms", body: `{"vmid":200,"name":"db1","tags":["a","b"],"cores":2,"sockets":2,"cpu":"host","memory":2048,` +
				`"machine":"pc","bios":"ovmf","boot":["cdrom0","disk0"],"disks":[{"bus":"virtio","storage":"local","size":"10G"},` +
				`{"bus":"scsi","volume":"local:100/vm-100-disk-0.qcow2","cache":"writeback","discard":true}],` +
				`"cdroms":[{"volume":"local:iso/x.iso"},{"volume":"none"}],"serial":false,"vga":"std","start":true}`}, true,
			[]string{"VM 200 created and started.\n"}, nil},
		{"create with defaults, bus defaults to virtio", []string{"vm", "create", "--disk", "storage=local,size=16M", "--no-wait"},
			storageRequest{method: "POST", rawPath: "/api/v1/vms", body: `{"disks":[{"bus":"virtio","storage":"local","size":"16M"}]}`}, false,
			[]string{"vmid  102\n", "task  UPID:n1:1:2:qmcreate:102:root@pam:\n"}, nil},
		{"set sends only the given fields, with If-Match", []string{"vm", "set", "100", "--memory", "96", "--onboot", "--description", "", "--digest", "d100"},
			storageRequest{method: "PUT", rawPath: "/api/v1/vms/100/config", body: `{"description":"","memory":96,"onboot":true}`, ifMatch: "d100"}, false,
			[]string{"VM 100 updated; changes pending until its next start"}, nil},
		{"set replaces the CD-ROMs and clears the boot order", []string{"vm", "set", "100", "--cdrom", "local:iso/y.iso", "--boot", "", "--protection=false", "--serial"},
			storageRequest{method: "PUT", rawPath: "/api/v1/vms/100/config", body: `{"boot":[],"cdroms":[{"volume":"local:iso/y.iso"}],"serial":true,"protection":false}`}, false,
			[]string{"VM 100 updated.\n"}, nil},
		{"set removes all CD-ROMs", []string{"vm", "set", "100", "--cdrom", ""},
			storageRequest{method: "PUT", rawPath: "/api/v1/vms/100/config", body: `{"cdroms":[]}`}, false, []string{"updated"}, nil},
		{"set --revert", []string{"vm", "set", "100", "--revert"},
			storageRequest{method: "PUT", rawPath: "/api/v1/vms/100/config", body: `{"revert":true}`}, false,
			[]string{"VM 100: pending changes dropped.\n"}, nil},
		{"start waits", []string{"vm", "start", "100"},
			storageRequest{method: "POST", rawPath: "/api/v1/vms/100/status/start"}, true, []string{"VM 100 started.\n"}, nil},
		{"start --no-wait prints the UPID", []string{"vm", "start", "100", "--no-wait"},
			storageRequest{method: "POST", rawPath: "/api/v1/vms/100/status/start"}, false, []string{startUPID + "\n"}, nil},
		{"shutdown without parameters sends no body", []string{"vm", "shutdown", "100"},
			storageRequest{method: "POST", rawPath: "/api/v1/vms/100/status/shutdown"}, true, []string{"VM 100 shut down.\n"}, nil},
		{"shutdown with a timeout", []string{"vm", "shutdown", "100", "--timeout", "2m"},
			storageRequest{method: "POST", rawPath: "/api/v1/vms/100/status/shutdown", body: `{"timeout":120}`}, true, []string{"shut down"}, nil},
		{"shutdown without force", []string{"vm", "shutdown", "100", "--force=false"},
			storageRequest{method: "POST", rawPath: "/api/v1/vms/100/status/shutdown", body: `{"force":false}`}, true, []string{"shut down"}, nil},
		{"reboot", []string{"vm", "reboot", "100", "--timeout", "30", "--force=false"},
			storageRequest{method: "POST", rawPath: "/api/v1/vms/100/status/reboot", body: `{"timeout":30,"force":false}`}, true, []string{"VM 100 rebooted.\n"}, nil},
		{"stop", []string{"vm", "stop", "100"},
			storageRequest{method: "POST", rawPath: "/api/v1/vms/100/status/stop"}, true, []string{"VM 100 stopped.\n"}, nil},
		{"reset", []string{"vm", "reset", "100"},
			storageRequest{method: "POST", rawPath: "/api/v1/vms/100/status/reset"}, true, []string{"VM 100 reset.\n"}, nil},
		{"suspend", []string{"vm", "suspend", "100"},
			storageRequest{method: "POST", rawPath: "/api/v1/vms/100/status/suspend"}, true, []string{"VM 100 suspended.\n"}, nil},
		{"resume", []string{"vm", "resume", "100", "--wait"},
			storageRequest{method: "POST", rawPath: "/api/v1/vms/100/status/resume"}, true, []string{"VM 100 resumed.\n"}, nil},
		{"template", []string{"vm", "template", "101"},
			storageRequest{method: "POST", rawPath: "/api/v1/vms/101/template"}, true, []string{"VM 101 is now a template.\n"}, nil},
		{"clone", []string{"vm", "clone", "101", "--newid", "120", "--name", "web9", "--full"},
			storageRequest{method: "POST", rawPath: "/api/v1/vms/101/clone", body: `{"newid":120,"name":"web9","full":true}`}, true,
			[]string{"VM 120 created as a clone of VM 101.\n"}, nil},
		{"clone --no-wait names the new VM", []string{"vm", "clone", "101", "--no-wait"},
			storageRequest{method: "POST", rawPath: "/api/v1/vms/101/clone", body: `{}`}, false,
			[]string{"vmid  103\n", "task  UPID:n1:1:2:qmclone:101:root@pam:\n"}, nil},
		{"snapshot create", []string{"vm", "snapshot", "create", "100", "before", "--description", "pre-upgrade"},
			storageRequest{method: "POST", rawPath: "/api/v1/vms/100/snapshot", body: `{"name":"before","description":"pre-upgrade"}`}, true,
			[]string{"VM 100 snapshot before taken.\n"}, nil},
		{"snapshot rollback", []string{"vm", "snapshot", "rollback", "100", "before"},
			storageRequest{method: "POST", rawPath: "/api/v1/vms/100/snapshot/before/rollback"}, true,
			[]string{"VM 100 rolled back to snapshot before.\n"}, nil},
		{"snapshot delete", []string{"vm", "snap", "delete", "100", "before", "--no-wait"},
			storageRequest{method: "DELETE", rawPath: "/api/v1/vms/100/snapshot/before"}, false,
			[]string{"UPID:n1:1:2:qmdelsnapshot:100:root@pam:\n"}, nil},
		{"resize", []string{"vm", "resize", "100", "disk1", "+2g"},
			storageRequest{method: "POST", rawPath: "/api/v1/vms/100/disks/1/resize", body: `{"size":"+2G"}`}, true,
			[]string{"VM 100 disk1 resized.\n"}, nil},
		{"move-disk", []string{"vm", "move-disk", "100", "0", "fast", "--format", "raw", "--delete"},
			storageRequest{method: "POST", rawPath: "/api/v1/vms/100/disks/0/move", body: `{"storage":"fast","format":"raw","delete":true}`}, true,
			[]string{"VM 100 disk0 moved to fast.\n"}, nil},
		{"destroy --yes", []string{"vm", "destroy", "101", "--yes"},
			storageRequest{method: "DELETE", rawPath: "/api/v1/vms/101"}, true, []string{"VM 101 destroyed.\n"}, nil},
		{"destroy --purge --no-wait", []string{"vm", "destroy", "101", "--purge", "-y", "--no-wait"},
			storageRequest{method: "DELETE", rawPath: "/api/v1/vms/101", query: "purge=true"}, false, []string{"UPID:n1:1:2:qmdestroy:101:root@pam:\n"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.requests()
			out, stderr, code := e.run("", tt.args...)
			if code != 0 {
				t.Fatalf("code=%d stderr=%q", code, stderr)
			}
			reqs := srv.requests()
			if len(reqs) == 0 {
				t.Fatal("no request")
			}
			got := reqs[0]
			if got.method != tt.want.method || got.rawPath != tt.want.rawPath || got.query != tt.want.query || got.body != tt.want.body || got.ifMatch != tt.want.ifMatch {
				t.Errorf("sent %v If-Match=%q\nwant %v If-Match=%q", got, got.ifMatch, tt.want, tt.want.ifMatch)
			}
			rest := reqs[1:]
			if tt.waits {
				if len(rest) == 0 || rest[0].method != "GET" || !strings.HasPrefix(rest[0].rawPath, "/api/v1/tasks/UPID:n1:") {
					t.Errorf("then %v: want the task polled", rest)
				}
			} else if len(rest) != 0 {
				t.Errorf("then %v: want nothing more", rest)
			}
			for _, s := range tt.out {
				if !strings.Contains(out, s) {
					t.Errorf("stdout lacks %q:\n%s", s, out)
				}
			}
			for _, s := range tt.absent {
				if strings.Contains(out, s) {
					t.Errorf("stdout has %q:\n%s", s, out)
				}
			}
		})
	}
}

// TestVMShowPending: the table marks pending changes, including a device
// only the pending config has; JSON keeps config and pending apart.
func TestVMShowPending(t *testing.T) {
	srv := newVMFake(t)
	e := srv.loggedIn(t)
	out, stderr, code := e.run("", "vm", "show", "100")
	if code != 0 {
		t.Fatalf("code=%d stderr=%q", code, stderr)
	}
	for _, want := range []string{
		"vmid         100\n",
		"status       running\n",
		"cores        2\n",
		"memory       64 MiB → 96 MiB (pending)\n",
		"disk0        bus=virtio,volume=local:100/vm-100-disk-0.qcow2,cache=none,discard\n",
		"cdrom0       none\n",
		"cdrom1       - → local:iso/debian.iso (pending)\n",
		"balloon      off\n",
		"digest       d100\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "(pending)") != 2 {
		t.Errorf("want exactly two pending rows:\n%s", out)
	}
	// The pending drive comes right after the current one.
	if !strings.Contains(out, "cdrom0       none\ncdrom1       - → local:iso/debian.iso (pending)\nserial") {
		t.Errorf("device order:\n%s", out)
	}

	out, _, code = e.run("", "vm", "show", "101")
	if code != 0 || strings.Contains(out, "pending") || !strings.Contains(out, "template     yes\n") || !strings.Contains(out, "memory       2 GiB\n") {
		t.Errorf("show without pending: %d\n%s", code, out)
	}

	out, _, code = e.run("", "vm", "show", "100", "-o", "json")
	var v api.VM
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil || v.Config.Memory != 64 || v.Pending == nil || v.Pending.Memory != 96 || v.Digest != "d100" {
		t.Errorf("show json: %d %s", code, out)
	}
	_, stderr, code = e.run("", "vm", "show", "999")
	if code != exitError || !strings.Contains(stderr, "get VM 999: 404 Not Found: VM 999 does not exist") {
		t.Errorf("missing VM: %d %q", code, stderr)
	}
}

func TestVMOutputFormats(t *testing.T) {
	srv := newVMFake(t)
	e := srv.loggedIn(t)
	out, _, code := e.run("", "vm", "list", "-o", "json")
	var vms []api.VM
	if code != 0 || json.Unmarshal([]byte(out), &vms) != nil || len(vms) != 2 || vms[1].Status != "stopped" || !vms[1].Config.Template {
		t.Errorf("list json: %d %s", code, out)
	}
	out, _, code = e.run("", "vm", "status", "100", "-o", "yaml")
	if code != 0 || !strings.HasPrefix(out, "vmid: 100\nnode: n1\nstatus: running\n") {
		t.Errorf("status yaml: %d %q", code, out)
	}
	out, _, code = e.run("", "vm", "config", "100", "-o", "json")
	var conf api.VMConfig
	if code != 0 || json.Unmarshal([]byte(out), &conf) != nil || conf.VMID != 100 || conf.Memory != 64 {
		t.Errorf("config json: %d %s", code, out)
	}
	tests := []struct {
		args []string
		want vmTaskResult
	}{
		{[]string{"vm", "create", "--no-wait"}, vmTaskResult{VMID: 102, Task: "UPID:n1:1:2:qmcreate:102:root@pam:"}},
		{[]string{"vm", "create", "--vmid", "300"}, vmTaskResult{VMID: 300, Task: "UPID:n1:1:2:qmcreate:300:root@pam:", Status: "ok"}},
		{[]string{"vm", "stop", "100"}, vmTaskResult{VMID: 100, Task: "UPID:n1:1:2:qmstop:100:root@pam:", Status: "ok"}},
		{[]string{"vm", "stop", "100", "--no-wait"}, vmTaskResult{VMID: 100, Task: "UPID:n1:1:2:qmstop:100:root@pam:"}},
	}
	for _, tt := range tests {
		out, stderr, code := e.run("", append(tt.args, "-o", "json")...)
		var got vmTaskResult
		if code != 0 || json.Unmarshal([]byte(out), &got) != nil || got != tt.want {
			t.Errorf("%v: code=%d %s %s; want %+v", tt.args, code, out, stderr, tt.want)
		}
	}
	out, _, code = e.run("", "vm", "set", "100", "--memory", "128", "-o", "yaml")
	if code != 0 || !strings.HasPrefix(out, "config:\n  vmid: 100\n") || !strings.Contains(out, "pending:\n") {
		t.Errorf("set yaml: %d %s", code, out)
	}
}

// TestVMTaskFailure: a task that fails makes the command fail with the
// task's message; with -o json the outcome is still printed.
func TestVMTaskFailure(t *testing.T) {
	srv := newVMFake(t)
	e := srv.loggedIn(t)
	srv.setTaskStatus(api.TaskFailed)
	out, stderr, code := e.run("", "vm", "start", "100")
	if code != exitError || out != "" || !strings.Contains(stderr, "Error: task UPID:n1:1:2:qmstart:100:root@pam: failed: QEMU exited: cannot set up guest memory") {
		t.Errorf("code=%d out=%q stderr=%q", code, out, stderr)
	}
	out, _, code = e.run("", "vm", "start", "100", "-o", "json")
	var got vmTaskResult
	if code != exitError || json.Unmarshal([]byte(out), &got) != nil || got.Status != api.TaskFailed || got.ExitMsg == "" {
		t.Errorf("json: code=%d %s", code, out)
	}
}

// TestVMDestroyNeedsConfirmation: without a terminal to ask on, destroy
// refuses without --yes before sending anything.
func TestVMDestroyNeedsConfirmation(t *testing.T) {
	srv := newVMFake(t)
	e := srv.loggedIn(t)
	srv.requests()
	_, stderr, code := e.run("100\n", "vm", "destroy", "100")
	if code != exitUsage || !strings.Contains(stderr, "refusing to destroy VM 100 without --yes") {
		t.Errorf("code=%d stderr=%q", code, stderr)
	}
	if reqs := srv.requests(); len(reqs) != 0 {
		t.Errorf("sent %v", reqs)
	}
}

func TestConfirmDestroy(t *testing.T) {
	v := &fakeVMs()[0]
	tests := []struct {
		input string
		ok    bool
	}{
		{"100\n", true},
		{" 100 \r\n", true},
		{"10\n", false},
		{"web1\n", false},
		{"", false},
	}
	for _, tt := range tests {
		var w bytes.Buffer
		err := confirmDestroy(strings.NewReader(tt.input), &w, v)
		if (err == nil) != tt.ok {
			t.Errorf("input %q: err=%v", tt.input, err)
		}
		if want := "This destroys VM 100 (web1) and frees its disks local:100/vm-100-disk-0.qcow2.\nType the VM ID to confirm: "; w.String() != want {
			t.Errorf("prompt %q", w.String())
		}
	}
}

// TestVMConsolePipe: without a terminal, standard input goes to the
// console as is and its output to standard output, until the server
// closes the connection.
func TestVMConsolePipe(t *testing.T) {
	srv := newVMFake(t)
	e := srv.loggedIn(t)
	out, stderr, code := e.run("hello\nbye\n", "vm", "console", "100")
	if code != 0 || out != "HELLO\nBYE\n" || stderr != "" {
		t.Errorf("code=%d out=%q stderr=%q", code, out, stderr)
	}
	_, stderr, code = e.run("", "vm", "console", "101")
	if code != exitError || !strings.Contains(stderr, "open console of VM 101: 409 Conflict: VM 101 is not running") {
		t.Errorf("stopped VM: code=%d stderr=%q", code, stderr)
	}
}

func TestParseDiskSpec(t *testing.T) {
	tests := []struct {
		spec    string
		want    api.VMDisk
		wantErr string
	}{
		{"bus=virtio,storage=local,size=10G", api.VMDisk{Bus: "virtio", Storage: "local", Size: "10G"}, ""},
		{"storage=local,size=512m,format=raw", api.VMDisk{Bus: "virtio", Storage: "local", Size: "512M", Format: "raw"}, ""},
		{"bus=sata,volume=local:100/vm-100-disk-0.qcow2,readonly,discard=1,iothread=no",
			api.VMDisk{Bus: "sata", Volume: "local:100/vm-100-disk-0.qcow2", ReadOnly: true, Discard: true}, ""},
		{"bus=virtio,volume=local:100/a.raw,size=1G", api.VMDisk{}, "either volume="},
		{"bus=virtio,storage=local", api.VMDisk{}, "needs storage= and size="},
		{"bus=virtio,pool=local,size=1G", api.VMDisk{}, `unknown key "pool"`},
		{"storage=local,size=1G,discard=maybe", api.VMDisk{}, "discard=maybe is not a boolean"},
	}
	for _, tt := range tests {
		got, err := parseDiskSpec(tt.spec)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: err=%v, want %q", tt.spec, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%q: %+v %v, want %+v", tt.spec, got, err, tt.want)
		}
		// What show prints parses back to the same disk.
		if back, err := parseDiskSpec(diskText(got)); err != nil || back != got {
			t.Errorf("%q: round trip %q gives %+v %v", tt.spec, diskText(got), back, err)
		}
	}
}

func TestParseNetSpec(t *testing.T) {
	got, err := parseNetSpec("bridge=vmbr0,tag=10,rate=12.5,firewall,mac=02:00:00:00:00:01")
	want := api.VMNet{Model: "virtio", Bridge: "vmbr0", Tag: 10, Rate: 12.5, Firewall: true, MAC: "02:00:00:00:00:01"}
	if err != nil || got != want {
		t.Errorf("got %+v %v", got, err)
	}
	if back, err := parseNetSpec(netText(got)); err != nil || back != got {
		t.Errorf("round trip %q: %+v %v", netText(got), back, err)
	}
	if _, err := parseNetSpec("model=e1000,tag=x"); err == nil || !strings.Contains(err.Error(), "tag=x is not a number") {
		t.Errorf("bad tag: %v", err)
	}
}

func TestVMUsageErrors(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"vm", "show"}, "accepts 1 arg"},
		{[]string{"vm", "show", "web1"}, `invalid VM ID "web1"`},
		{[]string{"vm", "start", "-5"}, "unknown shorthand flag"},
		{[]string{"vm", "start", "0"}, `invalid VM ID "0"`},
		{[]string{"vm", "set", "100"}, "nothing to change"},
		{[]string{"vm", "set", "100", "--revert", "--memory", "128"}, "--revert drops the pending changes"},
		{[]string{"vm", "set", "100", "--net", "model=virtio,vlan=3"}, `unknown key "vlan"`},
		{[]string{"vm", "create", "--disk", "storage=local"}, "needs storage= and size="},
		{[]string{"vm", "create", "--memory", "1G"}, `invalid argument "1G" for "--memory"`},
		{[]string{"vm", "create", "--wait", "--no-wait"}, "mutually exclusive"},
		{[]string{"vm", "create", "extra"}, "unknown command"},
		{[]string{"vm", "shutdown", "100", "--timeout", "1.5s"}, "want whole seconds"},
		{[]string{"vm", "stop", "100", "--timeout", "30"}, `invalid argument "30" for "--timeout"`},
		{[]string{"vm", "destroy", "100"}, "without --yes"},
		{[]string{"vm", "bogus"}, `unknown command "bogus" for "corral vm"`},
		{[]string{"vm", "resize", "100", "sda", "+1G"}, `invalid disk "sda"`},
		{[]string{"vm", "resize", "100", "disk30", "+1G"}, `invalid disk "disk30"`},
		{[]string{"vm", "move-disk", "100", "disk0"}, "accepts 3 arg"},
		{[]string{"vm", "snapshot", "create", "100"}, "accepts 2 arg"},
		{[]string{"vm", "snapshot", "rollback", "100", "x", "--description", "y"}, "unknown flag: --description"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args[1:], " "), func(t *testing.T) {
			_, stderr, code := newCLIEnv(t).run("", tt.args...)
			if code != exitUsage || !strings.Contains(stderr, tt.wantErr) {
				t.Errorf("code=%d stderr=%q; want %d and %q", code, stderr, exitUsage, tt.wantErr)
			}
		})
	}
}

// TestAttachConsole runs the interactive loop on a pipe: Ctrl-] detaches
// (what precedes it is still sent, what follows is not), and the server
// closing the console ends the session without an error.
func TestAttachConsole(t *testing.T) {
	t.Run("detach key", func(t *testing.T) {
		local, remote := net.Pipe()
		got := make(chan string, 1)
		go func() {
			b, _ := io.ReadAll(remote)
			got <- string(b)
		}()
		var out bytes.Buffer
		a := &cliApp{stdin: strings.NewReader("ls\r\x1dreboot\r"), stdout: &out}
		detached, err := a.attachConsole(context.Background(), local)
		if !detached || err != nil {
			t.Errorf("detached=%v err=%v", detached, err)
		}
		if s := <-got; s != "ls\r" {
			t.Errorf("sent %q", s)
		}
	})
	t.Run("server closes", func(t *testing.T) {
		local, remote := net.Pipe()
		go func() {
			remote.Write([]byte("login: "))
			remote.Close()
		}()
		keys, keysW := io.Pipe() // no key is ever pressed
		defer keysW.Close()
		var out bytes.Buffer
		a := &cliApp{stdin: keys, stdout: &out}
		detached, err := a.attachConsole(context.Background(), local)
		if detached || err != nil || out.String() != "login: " {
			t.Errorf("detached=%v err=%v out=%q", detached, err, out.String())
		}
	})
}

func TestVMSnapshotList(t *testing.T) {
	srv := newVMFake(t)
	e := srv.loggedIn(t)
	out, stderr, code := e.run("", "vm", "snapshot", "list", "100")
	want := "NAME       TIME                  RAM  CURRENT  DESCRIPTION\n" +
		"base       2025-01-01T01:00:00Z  no   -        -\n" +
		"  try2     2025-01-01T02:00:00Z  no   -        -\n" +
		"  upgrade  2025-01-01T03:00:00Z  yes  yes      before the upgrade\n" +
		"orphan     2025-01-01T04:00:00Z  no   -        -\n"
	if code != 0 || out != want {
		t.Errorf("code=%d stderr=%q\n%s\nwant\n%s", code, stderr, out, want)
	}
	out, _, code = e.run("", "vm", "snapshot", "list", "100", "-o", "json")
	var snaps []api.VMSnapshot
	if code != 0 || json.Unmarshal([]byte(out), &snaps) != nil || len(snaps) != 4 || snaps[0].Name != "base" || snaps[2].Parent != "base" {
		t.Errorf("json: %d %s", code, out)
	}
}

func TestSnapshotTreeCycle(t *testing.T) {
	got := snapshotTree([]api.VMSnapshot{{Name: "a", Parent: "b"}, {Name: "b", Parent: "a"}, {Name: "c"}})
	var names []string
	for _, n := range got {
		names = append(names, n.snap.Name)
	}
	if strings.Join(names, ",") != "c,a,b" {
		t.Errorf("order %v", names)
	}
}

// TestVMVNC forwards two viewers in turn: the first uses the ticket taken
// at start, the second gets its own session and password.
func TestVMVNC(t *testing.T) {
	srv := newVMFake(t)
	e := srv.loggedIn(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	a, out, errb := e.app("")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan int, 1)
	go func() { done <- a.run(ctx, []string{"vm", "vnc", "100", "--listen", addr}) }()
	viewer := func() {
		t.Helper()
		var conn net.Conn
		for i := 0; ; i++ {
			if conn, err = net.Dial("tcp", addr); err == nil {
				break
			}
			if i == 100 {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		defer conn.Close()
		buf := make([]byte, 12)
		if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "RFB 003.008\n" {
			t.Fatalf("greeting %q %v", buf, err)
		}
		conn.Write([]byte("hi"))
		if _, err := io.ReadFull(conn, buf[:2]); err != nil || string(buf[:2]) != "HI" {
			t.Fatalf("echo %q %v", buf[:2], err)
		}
	}
	viewer()
	viewer()
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("code=%d stderr=%q", code, errb.String())
	}
	for _, want := range []string{"Forwarding " + addr + " to the display of VM 100", "VNC password: pw1\n", "VNC password: pw2\n", "disconnected"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, out.String())
		}
	}

	_, stderr, code := e.run("", "vm", "vnc", "101")
	if code != exitError || !strings.Contains(stderr, "open VNC session on VM 101: 409 Conflict") {
		t.Errorf("stopped VM: %d %q", code, stderr)
	}
}
