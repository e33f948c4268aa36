package test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/client"
)

var bg = context.Background()

// raw sends a request with full control over body and headers.
func raw(t *testing.T, n *Node, method, path, body string, hdr map[string]string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, n.URL+"/api/v1"+path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func problem(t *testing.T, b []byte) api.Problem {
	t.Helper()
	var p api.Problem
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatalf("not a problem document: %s", b)
	}
	return p
}

func hasField(p api.Problem, field string) bool {
	for _, e := range p.Errors {
		if e.Field == field {
			return true
		}
	}
	return false
}

func TestPublicAndUnauthenticated(t *testing.T) {
	n := StartNode(t)
	c := n.Client()
	v, err := c.Version(bg)
	if err != nil || v.API != "v1" {
		t.Fatalf("version: %+v %v", v, err)
	}
	if _, err := c.ClusterResources(bg, ""); client.StatusOf(err) != 401 {
		t.Fatalf("resources without auth: %v, want 401", err)
	}
	code, hdr, body := raw(t, n, "GET", "/access/users", "", nil)
	if code != 401 || !strings.HasPrefix(hdr.Get("Content-Type"), "application/problem+json") {
		t.Fatalf("users without auth: %d %s", code, hdr.Get("Content-Type"))
	}
	if p := problem(t, body); p.Status != 401 || p.Title == "" {
		t.Fatalf("problem: %+v", p)
	}
	code, _, body = raw(t, n, "GET", "/openapi.json", "", nil)
	var doc struct {
		OpenAPI string         `json:"openapi"`
		Paths   map[string]any `json:"paths"`
	}
	if code != 200 || json.Unmarshal(body, &doc) != nil || !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Fatalf("openapi: %d %.200s", code, body)
	}
	for _, p := range []string{"/api/v1/access/ticket", "/api/v1/cluster/resources", "/api/v1/tasks/{upid}/log"} {
		if doc.Paths[p] == nil {
			t.Errorf("openapi lacks %s", p)
		}
	}
}

func TestLoginFailuresAndRateLimit(t *testing.T) {
	n := StartNode(t)
	c := n.Client()
	_, errWrong := c.Login(bg, "admin@corral", "wrong-password")
	_, errUnknown := c.Login(bg, "nobody@corral", "wrong-password")
	if client.StatusOf(errWrong) != 401 || client.StatusOf(errUnknown) != 401 {
		t.Fatalf("want 401s: %v / %v", errWrong, errUnknown)
	}
	var p1, p2 *api.Problem
	errors.As(errWrong, &p1)
	errors.As(errUnknown, &p2)
	if p1.Detail != p2.Detail {
		t.Fatalf("responses reveal whether the user exists: %q vs %q", p1.Detail, p2.Detail)
	}
	for range 5 {
		c.Login(bg, "admin@corral", "wrong-password")
	}
	if _, err := c.Login(bg, "admin@corral", n.Password); client.StatusOf(err) != 429 {
		t.Fatalf("after repeated failures the right password must be refused with 429, got %v", err)
	}
}

func TestUserCRUDValidationAndPermissions(t *testing.T) {
	n := StartNode(t)
	admin := n.Admin()
	tk, _ := admin.Ticket()
	auth := map[string]string{"Authorization": "Bearer " + tk}

	before, err := admin.Users(bg)
	if err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		name, body string
		status     int
		field      string
	}{
		{"malformed json", `{"userid": "x@corral",`, 400, ""},
		{"unknown field", `{"userid":"bob@corral","password":"password1","bogus":1}`, 422, "bogus"},
		{"wrong type", `{"userid":"bob@corral","password":12345678}`, 422, "password"},
		{"bad userid", `{"userid":"bo b@corral","password":"password1"}`, 422, "userid"},
		{"unknown realm", `{"userid":"bob@nowhere","password":"password1"}`, 422, "userid"},
		{"short password", `{"userid":"bob@corral","password":"short"}`, 422, "password"},
		{"missing password", `{"userid":"bob@corral"}`, 422, "password"},
		{"unknown group", `{"userid":"bob@corral","password":"password1","groups":["nope"]}`, 422, "groups[0]"},
	}
	for _, tt := range bad {
		code, hdr, body := raw(t, n, "POST", "/access/users", tt.body, auth)
		if code != tt.status {
			t.Errorf("%s: status %d want %d: %s", tt.name, code, tt.status, body)
			continue
		}
		if !strings.HasPrefix(hdr.Get("Content-Type"), "application/problem+json") {
			t.Errorf("%s: content type %s", tt.name, hdr.Get("Content-Type"))
		}
		if p := problem(t, body); tt.field != "" && !hasField(p, tt.field) {
			t.Errorf("%s: field %q not named in %+v", tt.name, tt.field, p.Errors)
		}
	}
	after, _ := admin.Users(bg)
	if len(after) != len(before) {
		t.Fatalf("bad input wrote users: %d -> %d", len(before), len(after))
	}

	if _, err := admin.CreateGroup(bg, api.Group{GroupID: "ops"}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CreateUser(bg, api.UserCreate{UserID: "bob@corral", Password: "bob-password", Groups: []string{"ops"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CreateUser(bg, api.UserCreate{UserID: "bob@corral", Password: "bob-password"}); client.StatusOf(err) != 409 {
		t.Fatalf("duplicate user: %v, want 409", err)
	}
	bob := n.Login("bob", "bob-password") // realm defaults to corral
	if _, err := bob.NodeStatus(bg, "n1"); client.StatusOf(err) != 403 {
		t.Fatalf("bob node status: %v, want 403", err)
	}
	if _, err := bob.CreateUser(bg, api.UserCreate{UserID: "eve@corral", Password: "eve-password"}); client.StatusOf(err) != 403 {
		t.Fatalf("bob creating users: %v, want 403", err)
	}
	// Grant to the group, then NoAccess to bob directly on the node wins.
	if _, err := admin.UpdateACL(bg, api.ACLUpdate{Entries: []api.ACLEntry{{Path: "/nodes", Group: "ops", Role: "Auditor", Propagate: true}}}); err != nil {
		t.Fatal(err)
	}
	st, err := bob.NodeStatus(bg, "n1")
	if err != nil || st.CPUs < 1 || st.Memory.Total == 0 {
		t.Fatalf("bob node status after grant: %+v %v", st, err)
	}
	if _, err := admin.UpdateACL(bg, api.ACLUpdate{Entries: []api.ACLEntry{{Path: "/nodes/n1", User: "bob@corral", Role: "NoAccess"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.NodeStatus(bg, "n1"); client.StatusOf(err) != 403 {
		t.Fatalf("NoAccess on user must win over group grant: %v", err)
	}
	// bob cannot grant himself more.
	if _, err := bob.UpdateACL(bg, api.ACLUpdate{Entries: []api.ACLEntry{{Path: "/", User: "bob@corral", Role: "Administrator", Propagate: true}}}); client.StatusOf(err) != 403 {
		t.Fatalf("self-escalation: %v, want 403", err)
	}
	// Bad ACL input names the field and writes nothing.
	aclBefore, _ := admin.ACL(bg)
	_, err = admin.UpdateACL(bg, api.ACLUpdate{Entries: []api.ACLEntry{{Path: "/vms/1", User: "bob@corral", Role: "VMUser"}, {Path: "/bogus", User: "bob@corral", Role: "VMUser"}}})
	var p *api.Problem
	if !errors.As(err, &p) || p.Status != 422 || !hasField(*p, "entries[1].path") {
		t.Fatalf("bad ACL path: %v", err)
	}
	aclAfter, _ := admin.ACL(bg)
	if len(aclAfter) != len(aclBefore) {
		t.Fatal("a rejected ACL update wrote entries")
	}

	// ETag / If-Match.
	code, hdr, _ := raw(t, n, "GET", "/access/users/bob@corral", "", auth)
	tag := hdr.Get("ETag")
	if code != 200 || tag == "" {
		t.Fatalf("get user: %d etag %q", code, tag)
	}
	if _, err := admin.UpdateUser(bg, "bob@corral", api.UserUpdate{Comment: ptr("first")}, client.WithIfMatch(strings.Trim(tag, `"`))); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.UpdateUser(bg, "bob@corral", api.UserUpdate{Comment: ptr("second")}, client.WithIfMatch(strings.Trim(tag, `"`))); client.StatusOf(err) != 412 {
		t.Fatalf("stale If-Match: %v, want 412", err)
	}
	u, _ := admin.User(bg, "bob@corral")
	if u.Comment != "first" {
		t.Fatalf("comment %q", u.Comment)
	}

	// Deleting a user removes their ACL entries atomically.
	if err := admin.DeleteUser(bg, "bob@corral"); err != nil {
		t.Fatal(err)
	}
	acl, _ := admin.ACL(bg)
	for _, e := range acl {
		if e.User == "bob@corral" {
			t.Fatalf("ACL entry of deleted user left: %+v", e)
		}
	}
	if _, err := bob.Nodes(bg); client.StatusOf(err) != 401 {
		t.Fatalf("ticket of deleted user: %v, want 401", err)
	}
}

func ptr[T any](v T) *T { return &v }

func TestTokensPrivilegeSeparation(t *testing.T) {
	n := StartNode(t)
	admin := n.Admin()
	if _, err := admin.CreateUser(bg, api.UserCreate{UserID: "ci@corral", Password: "ci-password"}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.UpdateACL(bg, api.ACLUpdate{Entries: []api.ACLEntry{{Path: "/", User: "ci@corral", Role: "Administrator", Propagate: true}}}); err != nil {
		t.Fatal(err)
	}
	sec, err := admin.CreateToken(bg, "ci@corral", "deploy", api.TokenCreate{})
	if err != nil || sec.Secret == "" || !sec.Token.Privsep {
		t.Fatalf("create token: %+v %v", sec, err)
	}
	tc, err := client.New(client.Options{Server: n.URL, CACertPEM: n.CA(), Token: sec.TokenID + "=" + sec.Secret})
	if err != nil {
		t.Fatal(err)
	}
	// privsep token without its own ACL entries: nothing.
	if _, err := tc.NodeStatus(bg, "n1"); client.StatusOf(err) != 403 {
		t.Fatalf("privsep token w/o ACL: %v, want 403", err)
	}
	if _, err := admin.UpdateACL(bg, api.ACLUpdate{Entries: []api.ACLEntry{{Path: "/nodes", Token: sec.TokenID, Role: "Auditor", Propagate: true}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := tc.NodeStatus(bg, "n1"); err != nil {
		t.Fatalf("token with Auditor: %v", err)
	}
	if _, err := tc.StartSleepTask(bg, "n1", 0); client.StatusOf(err) != 403 {
		t.Fatalf("token must not have Sys.Modify: %v", err)
	}
	// The user losing privileges takes them from the token too.
	if _, err := admin.UpdateACL(bg, api.ACLUpdate{Delete: true, Entries: []api.ACLEntry{{Path: "/", User: "ci@corral", Role: "Administrator"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := tc.NodeStatus(bg, "n1"); client.StatusOf(err) != 403 {
		t.Fatalf("token has more than its user: %v", err)
	}
	// A wrong secret is 401; the secret is never listed.
	bad, _ := client.New(client.Options{Server: n.URL, CACertPEM: n.CA(), Token: sec.TokenID + "=nope"})
	if _, err := bad.Nodes(bg); client.StatusOf(err) != 401 {
		t.Fatalf("bad token secret: %v", err)
	}
	toks, _ := admin.Tokens(bg, "ci@corral")
	b, _ := json.Marshal(toks)
	if len(toks) != 1 || bytes.Contains(b, []byte(sec.Secret)) {
		t.Fatalf("token list: %s", b)
	}
	// An admin token does everything an admin session does (no session-only operations).
	asec, err := admin.CreateToken(bg, "admin@corral", "full", api.TokenCreate{Privsep: ptr(false)})
	if err != nil {
		t.Fatal(err)
	}
	ac, _ := client.New(client.Options{Server: n.URL, CACertPEM: n.CA(), Token: asec.TokenID + "=" + asec.Secret})
	if _, err := ac.CreateUser(bg, api.UserCreate{UserID: "made-by-token@corral", Password: "password-1"}); err != nil {
		t.Fatalf("admin token creating a user: %v", err)
	}
}

func TestCookieNeedsCSRF(t *testing.T) {
	n := StartNode(t)
	admin := n.Admin()
	tk, csrf := admin.Ticket()
	body := `{"groupid":"g1"}`
	code, _, b := raw(t, n, "POST", "/access/groups", body, map[string]string{"Cookie": "CorralAuth=" + tk})
	if code != 401 {
		t.Fatalf("cookie without CSRF: %d %s", code, b)
	}
	code, _, b = raw(t, n, "POST", "/access/groups", body, map[string]string{"Cookie": "CorralAuth=" + tk, "X-CSRF-Token": csrf})
	if code != 201 {
		t.Fatalf("cookie with CSRF: %d %s", code, b)
	}
	code, _, _ = raw(t, n, "GET", "/access/groups", "", map[string]string{"Cookie": "CorralAuth=" + tk})
	if code != 200 {
		t.Fatalf("GET with cookie: %d", code)
	}
	// Logout expires the HttpOnly cookie (which the UI's scripts can't).
	code, hdr, b := raw(t, n, "DELETE", "/access/ticket", "", map[string]string{"Cookie": "CorralAuth=" + tk, "X-CSRF-Token": csrf})
	if sc := hdr.Get("Set-Cookie"); code != 204 || !strings.Contains(sc, "CorralAuth=;") || !strings.Contains(sc, "Max-Age=0") {
		t.Fatalf("logout: %d %q %s", code, sc, b)
	}
	// Renewal gives a working new ticket.
	nt, err := admin.Renew(bg)
	if err != nil || nt.Ticket == "" {
		t.Fatalf("renew: %+v %v", nt, err)
	}
}

func TestTasksFollowStopAndCrash(t *testing.T) {
	n := StartNode(t)
	admin := n.Admin()
	upid, err := admin.StartSleepTask(bg, "n1", 3)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	var times []time.Time
	final, err := admin.FollowTaskLog(bg, upid, func(l api.TaskLogLine) {
		lines = append(lines, l.Text)
		times = append(times, time.Now())
	})
	if err != nil || final.Status != api.TaskOK {
		t.Fatalf("follow: %+v %v", final, err)
	}
	if len(lines) != 5 || lines[0] != "sleeping 3 seconds" || lines[4] != "TASK OK" {
		t.Fatalf("lines: %q", lines)
	}
	if times[3].Sub(times[1]) < 1500*time.Millisecond {
		t.Fatalf("log did not stream while running (lines arrived together): %v", times)
	}
	// Stop a running task.
	upid, _ = admin.StartSleepTask(bg, "n1", 60)
	time.Sleep(1200 * time.Millisecond)
	if err := admin.StopTask(bg, upid); err != nil {
		t.Fatal(err)
	}
	tk, _ := admin.Task(bg, upid)
	if tk.Status != api.TaskStopped || tk.EndTime == nil {
		t.Fatalf("stopped task: %+v", tk)
	}
	// Filters.
	list, err := admin.Tasks(bg, client.TaskFilter{Type: "sleep", Status: "stopped"})
	if err != nil || len(list) != 1 || list[0].ID != upid {
		t.Fatalf("task filter: %+v %v", list, err)
	}
	// Bad UPIDs are 422, unknown ones 404.
	if _, err := admin.Task(bg, "UPID:n1:../../x"); client.StatusOf(err) != 422 {
		t.Fatalf("bad upid: %v", err)
	}
	// A crash leaves no task "running" forever.
	upid, _ = admin.StartSleepTask(bg, "n1", 60)
	n.Kill()
	n.Start()
	admin = n.Admin()
	tk, err = admin.Task(bg, upid)
	if err != nil || tk.Status != api.TaskFailed || !strings.Contains(tk.ExitMsg, "interrupted") {
		t.Fatalf("task after crash: %+v %v", tk, err)
	}
}

func TestRestartKeepsEverything(t *testing.T) {
	n := StartNode(t)
	admin := n.Admin()
	if _, err := admin.CreateRole(bg, api.Role{RoleID: "Watcher", Privs: []string{"Sys.Audit", "VM.Audit"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CreateUser(bg, api.UserCreate{UserID: "kept@corral", Password: "kept-password"}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.UpdateACL(bg, api.ACLUpdate{Entries: []api.ACLEntry{{Path: "/nodes/n1", User: "kept@corral", Role: "Watcher"}}}); err != nil {
		t.Fatal(err)
	}
	tk, _ := admin.Ticket()
	n.Stop()
	n.Start()
	c := n.Login("kept@corral", "kept-password")
	if _, err := c.NodeStatus(bg, "n1"); err != nil {
		t.Fatalf("after restart: %v", err)
	}
	// Tickets survive a restart too (the key is in the store).
	old := n.Client()
	old.SetTicket(tk, "")
	if _, err := old.Users(bg); err != nil {
		t.Fatalf("old ticket after restart: %v", err)
	}
	// The admin password is not regenerated and no file appears.
	if _, err := c.Login(bg, "admin@corral", n.Password); err != nil {
		t.Fatal(err)
	}
}

func TestNextIDRaceFree(t *testing.T) {
	n := StartNode(t)
	admin := n.Admin()
	var mu sync.Mutex
	seen := map[int]bool{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := admin.NextID(bg)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if seen[id.VMID] || id.VMID < 100 {
				t.Errorf("duplicate or invalid id %d", id.VMID)
			}
			seen[id.VMID] = true
		}()
	}
	wg.Wait()
	res, err := admin.ClusterResources(bg, "")
	if err != nil || len(res) != 2 || res[0].Type != "node" || res[0].Status != "online" || res[1].ID != "storage/n1/local" || res[1].Status != "available" {
		t.Fatalf("resources: %+v %v", res, err)
	}
}

func TestUnixSocketRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIP reason: the unix socket grants root@pam only to uid 0; tests are not running as root")
	}
	n := StartNode(t)
	c, err := client.New(client.Options{Server: "unix://" + n.Socket})
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.NodeStatus(bg, "n1")
	if err != nil {
		t.Fatalf("root over the socket: %v", err)
	}
	if st.Node != "n1" {
		t.Fatalf("status: %+v", st)
	}
}
