package test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/server"
)

// The authorization matrix: every operation the server can register ×
// principals with one narrow grant each. The expected outcome comes from
// the access rule each operation declares (x-corral-access in the OpenAPI
// document) evaluated against an independent model of the principals'
// grants, not from the server's own evaluator.
//
// Every request names objects that do not exist (VM 101, node "nosuch",
// pool "nosuch", ...) and carries no valid body unless the table gives
// one, so an allowed request ends in 404/409/422 and changes nothing, and
// a denied one must end in 401/403. No answer may be a 5xx.

// matrixGrant is one ACL entry of a principal (roles propagate).
type matrixGrant struct{ path, role string }

type principal struct {
	name   string
	user   string // "" for anonymous
	grants []matrixGrant
	token  bool // a privilege-separated token of user without entries of its own
	admin  bool
}

// authnRule says what an operation registered as "authenticated" checks
// itself (the router only makes sure the caller is logged in).
type authnRule struct {
	any   bool      // every authenticated caller gets past authorization (lists filter)
	perm  *permRule // the handler checks this privilege
	body  any       // the request body that makes the handler reach its check
	query string
}

type permRule struct {
	path  string
	privs []string
	any   bool
}

// Objects named in every request: none of them exists.
var matrixParams = map[string]string{
	"vmid": "101", "node": "nosuch", "storage": "nosuch", "userid": "nosuch@corral", "groupid": "nosuch",
	"roleid": "NoSuchRole", "realm": "nosuch", "name": "nosuch", "snap": "nosuch", "volume": "nosuch:101/vm-101-disk-0.qcow2",
	"disk": "0", "pos": "0", "iface": "nosuch0", "zone": "nosuch", "vnet": "nosuch", "subnet": "nosuch-10.9.0.0-24",
	"id": "nosuch", "action": "start", "upid": "UPID:nosuch:0000AB12:0000AB12:sleep::root@pam:",
}

// matrixAuthn covers every operation whose rule is "authenticated". A new
// one fails TestAuthorizationMatrix until it is described here.
var matrixAuthn = map[string]authnRule{
	"get-acl": {any: true}, "update-acl": {any: true}, // body [] is refused before the grant checks
	"list-groups": {any: true}, "get-permissions": {any: true}, "get-realm": {any: true},
	"list-roles": {any: true}, "get-role": {any: true}, "renew-ticket": {any: true},
	"list-users": {any: true}, "update-user": {any: true}, "create-token": {any: true}, "update-token": {any: true},
	// Another user's account: readable with either privilege, changed with User.Modify.
	"get-user":     {perm: &permRule{path: "/access/users/nosuch@corral", privs: []string{"Sys.Audit", "User.Modify"}, any: true}},
	"list-tokens":  {perm: &permRule{path: "/access/users/nosuch@corral", privs: []string{"Sys.Audit", "User.Modify"}, any: true}},
	"get-token":    {perm: &permRule{path: "/access/users/nosuch@corral", privs: []string{"Sys.Audit", "User.Modify"}, any: true}},
	"delete-token": {perm: &permRule{path: "/access/users/nosuch@corral", privs: []string{"User.Modify"}}},
	"list-vms":     {any: true}, "list-available-templates": {any: true},
	"metrics-current": {any: true}, "list-resources": {any: true}, "list-containers": {any: true},
	"events": {any: true}, "prometheus-metrics": {any: true}, "list-nodes": {any: true},
	"list-node-storage": {any: true}, "list-storage": {any: true}, "list-tasks": {any: true},
	"stop-task": {any: true}, "get-task": {any: true}, "get-task-log": {any: true}, "follow-task-log": {any: true},
	"update-vm-config":        {perm: &permRule{path: "/vms/101", privs: []string{"VM.Config.CPU"}}, body: map[string]any{"vcpus": 2}},
	"update-container-config": {perm: &permRule{path: "/vms/101", privs: []string{"VM.Config.Memory"}}, body: map[string]any{"swap": 64}},
}

// matrixAlso lists what handlers check beyond an operation's declared
// rule, for the objects matrixParams names: operations on a volume that
// belongs to a guest (matrixParams' volume is VM 101's) need the guest's
// privilege as well as the pool's.
var matrixAlso = map[string]permRule{
	"free-volume":            {path: "/vms/101", privs: []string{"VM.Config.Disk"}},
	"delete-volume-snapshot": {path: "/vms/101", privs: []string{"VM.Config.Disk"}},
	"rollback-volume":        {path: "/vms/101", privs: []string{"VM.Config.Disk"}},
}

func TestAuthorizationMatrix(t *testing.T) {
	n := StartNode(t)
	admin := n.Admin()
	ctx := context.Background()

	roles := map[string][]string{}
	rs, err := admin.Roles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		roles[r.RoleID] = r.Privs
	}
	if _, err := admin.CreateRole(ctx, api.Role{RoleID: "RealmAllocOnly", Privs: []string{"Realm.Allocate"}}); err != nil {
		t.Fatal(err)
	}
	roles["RealmAllocOnly"] = []string{"Realm.Allocate"}

	principals := []principal{
		{name: "anonymous"},
		{name: "no-acl", user: "noacl@corral"},
		{name: "VMUser on one VM", user: "vmuser@corral", grants: []matrixGrant{{"/vms/101", "VMUser"}}},
		{name: "VMAdmin on one VM", user: "vmadmin@corral", grants: []matrixGrant{{"/vms/101", "VMAdmin"}}},
		{name: "DatastoreUser", user: "dsuser@corral", grants: []matrixGrant{{"/storage/nosuch", "DatastoreUser"}}},
		{name: "UserAdmin", user: "useradmin@corral", grants: []matrixGrant{{"/access/users", "UserAdmin"}}},
		{name: "Realm.Allocate only", user: "realm@corral", grants: []matrixGrant{{"/access/realms/nosuch", "RealmAllocOnly"}}},
		{name: "Auditor", user: "auditor@corral", grants: []matrixGrant{{"/", "Auditor"}}},
		{name: "privsep token", user: "tokenowner@corral", grants: []matrixGrant{{"/vms/101", "VMAdmin"}}, token: true},
		{name: "Administrator", user: "admin@corral", admin: true},
	}
	auth := map[string]string{} // principal name -> Authorization header
	for _, p := range principals {
		if p.user == "" {
			continue
		}
		if p.admin {
			tk, _ := admin.Ticket()
			auth[p.name] = "Bearer " + tk
			continue
		}
		if _, err := admin.CreateUser(ctx, api.UserCreate{UserID: p.user, Password: "matrix-pass-1"}); err != nil {
			t.Fatalf("create %s: %v", p.user, err)
		}
		for _, g := range p.grants {
			if _, err := admin.UpdateACL(ctx, api.ACLUpdate{Entries: []api.ACLEntry{{Path: g.path, Role: g.role, User: p.user, Propagate: true}}}); err != nil {
				t.Fatalf("grant %s %s on %s: %v", p.user, g.role, g.path, err)
			}
		}
		if p.token {
			sec, err := admin.CreateToken(ctx, p.user, "matrix", api.TokenCreate{})
			if err != nil {
				t.Fatal(err)
			}
			auth[p.name] = "CorralToken " + sec.TokenID + "=" + sec.Secret
			continue
		}
		c := n.Login(p.user, "matrix-pass-1")
		tk, _ := c.Ticket()
		auth[p.name] = "Bearer " + tk
	}

	// The table must describe every operation the server can register, not
	// only those this daemon registered.
	full, err := server.Document()
	if err != nil {
		t.Fatal(err)
	}
	ops := matrixOps(t, full)
	for _, op := range ops {
		if op.access.Rule == "authenticated" {
			if _, ok := matrixAuthn[op.id]; !ok {
				t.Errorf("%s %s (%s) is registered as authenticated but has no entry in matrixAuthn: say what its handler checks", op.method, op.path, op.id)
			}
		}
	}
	live := map[string]bool{}
	for _, op := range matrixOps(t, fetchDoc(t, n)) {
		live[op.id] = true
	}

	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 30 * time.Second}
	checked := 0
	for _, op := range ops {
		if !live[op.id] {
			continue // an optional subsystem this daemon doesn't run
		}
		for _, p := range principals {
			want := expectAllowed(op, p, roles)
			got := matrixCall(t, hc, n.URL, op, auth[p.name])
			checked++
			switch {
			case got >= 500:
				t.Errorf("%s %s as %s: %d (a server error)", op.method, op.path, p.name, got)
			case p.user == "" && op.access.Rule != "public":
				if got != 401 {
					t.Errorf("%s %s anonymous: %d, want 401", op.method, op.path, got)
				}
			case want && (got == 401 || got == 403):
				t.Errorf("%s %s as %s: %d, want allowed", op.method, op.path, p.name, got)
			case !want && got != 403:
				t.Errorf("%s %s as %s: %d, want 403", op.method, op.path, p.name, got)
			}
		}
	}
	t.Logf("%d operations × %d principals: %d requests checked", len(live), len(principals), checked)
}

type matrixOp struct {
	id, method, path string
	access           struct {
		Rule  string   `json:"rule"`
		Path  string   `json:"path"`
		Privs []string `json:"privs"`
		Any   bool     `json:"any"`
	}
	body bool
}

func matrixOps(t *testing.T, doc []byte) []matrixOp {
	t.Helper()
	var d struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatal(err)
	}
	var ops []matrixOp
	for path, item := range d.Paths {
		for method, raw := range item {
			var o struct {
				ID     string          `json:"operationId"`
				Access json.RawMessage `json:"x-corral-access"`
				Body   json.RawMessage `json:"requestBody"`
			}
			if json.Unmarshal(raw, &o) != nil || o.ID == "" {
				continue
			}
			op := matrixOp{id: o.ID, method: strings.ToUpper(method), path: path, body: o.Body != nil}
			if err := json.Unmarshal(o.Access, &op.access); err != nil || op.access.Rule == "" {
				t.Errorf("%s %s has no x-corral-access", op.method, path)
				continue
			}
			ops = append(ops, op)
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].id < ops[j].id })
	return ops
}

var paramRe = regexp.MustCompile(`\{(\w+)\}`)

func fill(t *testing.T, s string) string {
	return paramRe.ReplaceAllStringFunc(s, func(m string) string {
		v, ok := matrixParams[m[1:len(m)-1]]
		if !ok {
			t.Fatalf("no matrix value for parameter %s", m)
		}
		return url.PathEscape(v)
	})
}

// expectAllowed evaluates the operation's rule against the principal's
// grants: roles propagate from their path to everything below it.
func expectAllowed(op matrixOp, p principal, roles map[string][]string) bool {
	if op.access.Rule == "public" {
		return true
	}
	if p.user == "" {
		return false
	}
	rule := permRule{path: op.access.Path, privs: op.access.Privs, any: op.access.Any}
	if op.access.Rule == "authenticated" {
		a := matrixAuthn[op.id]
		if a.any || a.perm == nil {
			return a.any // a missing entry is reported once, above
		}
		rule = *a.perm
	} else {
		rule.path = fillNoT(rule.path)
	}
	if p.admin {
		return true
	}
	if p.token {
		return false // privilege-separated, no entries of its own
	}
	if also, ok := matrixAlso[op.id]; ok && !p.holds(also, roles) {
		return false
	}
	return p.holds(rule, roles)
}

// holds evaluates a rule against the principal's grants.
func (p principal) holds(rule permRule, roles map[string][]string) bool {
	var have []string
	best := -1
	for _, g := range p.grants {
		if (rule.path == g.path || g.path == "/" || strings.HasPrefix(rule.path, g.path+"/")) && len(g.path) > best {
			best, have = len(g.path), roles[g.role]
		}
	}
	n := 0
	for _, pr := range rule.privs {
		if slices.Contains(have, pr) {
			n++
		}
	}
	if rule.any {
		return n > 0
	}
	return n == len(rule.privs)
}

func fillNoT(s string) string {
	return paramRe.ReplaceAllStringFunc(s, func(m string) string { return matrixParams[m[1:len(m)-1]] })
}

// matrixCall sends one request and returns its status; streams are closed
// as soon as their headers arrive.
func matrixCall(t *testing.T, hc *http.Client, base string, op matrixOp, authz string) int {
	t.Helper()
	var body io.Reader
	a := matrixAuthn[op.id]
	if op.body || a.body != nil {
		b := []byte("[]") // the wrong type for every body: refused after authorization
		if a.body != nil {
			b, _ = json.Marshal(a.body)
		}
		body = bytes.NewReader(b)
	}
	u := base + fill(t, op.path)
	if a.query != "" {
		u += "?" + a.query
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, op.method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", op.method, u, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func fetchDoc(t *testing.T, n *Node) []byte {
	t.Helper()
	c := n.Client()
	var raw json.RawMessage
	if _, err := c.Do(context.Background(), "GET", "/openapi.json", nil, nil, &raw); err != nil {
		t.Fatal(err)
	}
	return raw
}
