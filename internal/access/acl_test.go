package access

import (
	"testing"

	"github.com/corral-project/corral/api"
)

func roles(r string) ([]string, bool) {
	switch r {
	case "Custom":
		return []string{"VM.Audit", "Sys.Audit"}, true
	}
	return BuiltinRole(r)
}

func TestEvaluator(t *testing.T) {
	acl := []api.ACLEntry{
		{Path: "/", Group: "ops", Role: "Auditor", Propagate: true},
		{Path: "/vms", Group: "ops", Role: "VMUser", Propagate: true},
		{Path: "/vms/100", User: "alice@corral", Role: "VMAdmin", Propagate: true},
		{Path: "/vms/101", User: "alice@corral", Role: "NoAccess", Propagate: true},
		{Path: "/vms/102", Group: "ops", Role: "NoAccess"},
		{Path: "/vms/102", User: "alice@corral", Role: "VMUser"},
		{Path: "/storage", User: "bob@corral", Role: "DatastoreAdmin", Propagate: false},
		{Path: "/", User: "carol@corral", Role: "Administrator", Propagate: true},
		{Path: "/vms", Token: "carol@corral!ro", Role: "Custom", Propagate: true},
	}
	tests := []struct {
		name   string
		p      Principal
		groups []string
		path   string
		priv   string
		want   bool
	}{
		{"group propagates from root", Principal{User: "alice@corral"}, []string{"ops"}, "/nodes/n1", "Sys.Audit", true},
		{"group role not beyond", Principal{User: "alice@corral"}, []string{"ops"}, "/nodes/n1", "Sys.Modify", false},
		{"deeper level replaces root", Principal{User: "dave@corral"}, []string{"ops"}, "/vms/200", "VM.PowerMgmt", true},
		{"user beats group same level", Principal{User: "alice@corral"}, []string{"ops"}, "/vms/102", "VM.PowerMgmt", true},
		{"group NoAccess for others", Principal{User: "dave@corral"}, []string{"ops"}, "/vms/102", "VM.Audit", false},
		{"user specific grant", Principal{User: "alice@corral"}, []string{"ops"}, "/vms/100", "VM.Allocate", true},
		{"NoAccess blocks", Principal{User: "alice@corral"}, []string{"ops"}, "/vms/101", "VM.Audit", false},
		{"non-propagating only exact", Principal{User: "bob@corral"}, nil, "/storage/local", "Datastore.Allocate", false},
		{"non-propagating exact ok", Principal{User: "bob@corral"}, nil, "/storage", "Datastore.Allocate", true},
		{"no entry denies", Principal{User: "eve@corral"}, nil, "/", "Sys.Audit", false},
		{"admin everywhere", Principal{User: "carol@corral"}, nil, "/access/users/x@corral", "User.Modify", true},
		{"token without privsep = user", Principal{User: "carol@corral", Token: "carol@corral!full"}, nil, "/vms/5", "VM.Allocate", true},
		{"privsep token limited to own entries", Principal{User: "carol@corral", Token: "carol@corral!ro", Privsep: true}, nil, "/vms/5", "VM.Allocate", false},
		{"privsep token gets its grant", Principal{User: "carol@corral", Token: "carol@corral!ro", Privsep: true}, nil, "/vms/5", "VM.Audit", true},
		{"privsep token no grant outside", Principal{User: "carol@corral", Token: "carol@corral!ro", Privsep: true}, nil, "/nodes/n1", "Sys.Audit", false},
		{"token never more than user", Principal{User: "eve@corral", Token: "carol@corral!ro", Privsep: true}, nil, "/vms/5", "VM.Audit", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := NewEvaluator(acl, roles, tt.p, tt.groups)
			if got := ev.Has(tt.path, tt.priv); got != tt.want {
				t.Fatalf("Has(%s,%s)=%v want %v (privs %v)", tt.path, tt.priv, got, tt.want, ev.Privs(tt.path))
			}
		})
	}
}

func TestAnyBelow(t *testing.T) {
	acl := []api.ACLEntry{{Path: "/vms/7", User: "u@corral", Role: "VMUser"}}
	ev := NewEvaluator(acl, roles, Principal{User: "u@corral"}, nil)
	if !ev.AnyBelow("/vms", "VM.Audit") {
		t.Fatal("grant on /vms/7 should make /vms listable")
	}
	if ev.AnyBelow("/storage", "Datastore.Audit") {
		t.Fatal("no grant below /storage")
	}
}

func TestValidatePath(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"/", "/", true},
		{"/vms/100", "/vms/100", true},
		{"/vms/100/", "/vms/100", true},
		{"/access/users/a@corral", "/access/users/a@corral", true},
		{"vms", "", false},
		{"/bogus/1", "", false},
		{"/vms/1/2", "", false},
		{"/sdn/zones/localnetwork/vmbr0", "/sdn/zones/localnetwork/vmbr0", true},
		{"/sdn/zones/z1/v1/x", "", false},
		{"/vms/../x", "", false},
		{"/vms/a b", "", false},
	}
	for _, tt := range tests {
		got, err := ValidatePath(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ValidatePath(%q) = %q, %v", tt.in, got, err)
		}
	}
}
