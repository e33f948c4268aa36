// Package access is corral's authentication and authorization: users,
// groups, realms, roles, ACLs, tickets and API tokens. The model follows
// Proxmox VE so administrators find what they expect: privileges are
// granted by roles on ACL paths; the most specific path wins; user entries
// beat group entries; NoAccess blocks.
package access

import "sort"

// Privileges known to corral. A role may hold only these.
var allPrivs = []string{
	"Datastore.Allocate", "Datastore.AllocateSpace", "Datastore.AllocateTemplate", "Datastore.Audit",
	"Group.Allocate", "Permissions.Modify", "Pool.Allocate", "Pool.Audit",
	"Realm.Allocate", "Realm.AllocateUser",
	"SDN.Allocate", "SDN.Audit", "SDN.Use",
	"Sys.Audit", "Sys.Console", "Sys.Incoming", "Sys.Modify", "Sys.PowerMgmt", "Sys.Syslog",
	"User.Modify",
	"VM.Allocate", "VM.Audit", "VM.Backup", "VM.Clone",
	"VM.Config.CDROM", "VM.Config.CPU", "VM.Config.Cloudinit", "VM.Config.Disk", "VM.Config.HWType",
	"VM.Config.Memory", "VM.Config.Network", "VM.Config.Options",
	"VM.Console", "VM.Migrate", "VM.Monitor", "VM.PowerMgmt", "VM.Snapshot", "VM.Snapshot.Rollback",
}

var privSet = func() map[string]bool {
	m := map[string]bool{}
	for _, p := range allPrivs {
		m[p] = true
	}
	return m
}()

// Privileges returns every known privilege, sorted.
func Privileges() []string { return append([]string(nil), allPrivs...) }

// ValidPriv reports whether p is a known privilege.
func ValidPriv(p string) bool { return privSet[p] }

func privsWithPrefix(prefixes ...string) []string {
	var out []string
	for _, p := range allPrivs {
		for _, pre := range prefixes {
			if len(p) >= len(pre) && p[:len(pre)] == pre {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

func privsEndingAudit() []string {
	var out []string
	for _, p := range allPrivs {
		if len(p) > 6 && p[len(p)-6:] == ".Audit" {
			out = append(out, p)
		}
	}
	return out
}

// Built-in role names.
const (
	RoleAdministrator = "Administrator"
	RoleNoAccess      = "NoAccess"
)

// builtinRoles cannot be changed or deleted.
var builtinRoles = map[string][]string{
	RoleAdministrator: allPrivs,
	RoleNoAccess:      {},
	"Auditor":         privsEndingAudit(),
	"VMAdmin":         append(privsWithPrefix("VM."), "Datastore.AllocateSpace", "Datastore.Audit", "SDN.Use"),
	"VMUser":          {"VM.Audit", "VM.Console", "VM.PowerMgmt", "VM.Backup", "VM.Config.CDROM", "VM.Config.Cloudinit"},
	"VMPowerUser":     {"VM.Audit", "VM.PowerMgmt"},
	"DatastoreAdmin":  privsWithPrefix("Datastore."),
	"DatastoreUser":   {"Datastore.AllocateSpace", "Datastore.Audit"},
	"UserAdmin":       {"User.Modify", "Group.Allocate", "Realm.AllocateUser", "Permissions.Modify", "Sys.Audit"},
	"SysAdmin":        privsWithPrefix("Sys."),
	"PoolAdmin":       {"Pool.Allocate", "Pool.Audit"},
	"PoolUser":        {"Pool.Audit"},
	// SDNUser puts NICs on the bridges and vnets it is granted on:
	// /sdn/zones/<zone>/<vnet>, host bridges /sdn/zones/localnetwork/<bridge>.
	"SDNUser": {"SDN.Audit", "SDN.Use"},
}

// BuiltinRoles returns the names of the built-in roles, sorted.
func BuiltinRoles() []string {
	out := make([]string, 0, len(builtinRoles))
	for r := range builtinRoles {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// BuiltinRole returns a built-in role's privileges.
func BuiltinRole(name string) ([]string, bool) {
	p, ok := builtinRoles[name]
	return p, ok
}
