package access

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/corral-project/corral/api"
)

var segRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@!-]{0,127}$`)

// aclRoots are the first segments an ACL path may start with.
var aclRoots = map[string]int{ // value: max depth below the root segment
	// sdn: /sdn/zones/<zone>/<vnet or bridge>, the paths SDN.Use is checked on.
	"nodes": 1, "vms": 1, "storage": 1, "pools": 1, "sdn": 3, "access": 2, "mapping": 2,
}

// ValidatePath checks that p is a well-formed ACL path and returns it
// normalised (no trailing slash).
func ValidatePath(p string) (string, error) {
	if p == "/" {
		return p, nil
	}
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("must start with /")
	}
	p = strings.TrimSuffix(p, "/")
	segs := strings.Split(p[1:], "/")
	depth, ok := aclRoots[segs[0]]
	if !ok {
		return "", fmt.Errorf("unknown top level %q (want one of /nodes, /vms, /storage, /pools, /sdn, /access, /mapping)", segs[0])
	}
	if len(segs)-1 > depth {
		return "", fmt.Errorf("too deep")
	}
	for _, s := range segs {
		if !segRe.MatchString(s) {
			return "", fmt.Errorf("invalid path segment %q", s)
		}
	}
	return p, nil
}

// Principal is who is calling: a user, or a user's API token.
type Principal struct {
	User    string // user@realm
	Token   string // user@realm!name when authenticated by token
	Privsep bool   // token privileges are limited to its own ACL entries
}

// String names the principal for audit logs and task IDs.
func (p Principal) String() string {
	if p.Token != "" {
		return p.Token
	}
	return p.User
}

// RoleResolver returns a role's privileges.
type RoleResolver func(role string) ([]string, bool)

// Evaluator computes effective privileges of one subject over an ACL.
// Entries are indexed by path, and a path without entries of its own
// shares its parent's result, so checking 10,000 guests under one grant
// costs a few map lookups each (the resource list does exactly that).
type Evaluator struct {
	byPath  map[string][]api.ACLEntry
	entries []api.ACLEntry
	roles   RoleResolver
	user    string
	groups  map[string]bool
	token   string // non-empty: evaluate the token's own entries
	cache   map[string]map[string]bool
	tokenEv *Evaluator
}

// NewEvaluator builds the evaluator for principal p, who is in groups.
func NewEvaluator(entries []api.ACLEntry, roles RoleResolver, p Principal, groups []string) *Evaluator {
	g := map[string]bool{}
	for _, x := range groups {
		g[x] = true
	}
	byPath := map[string][]api.ACLEntry{}
	for _, e := range entries {
		byPath[e.Path] = append(byPath[e.Path], e)
	}
	ev := &Evaluator{byPath: byPath, entries: entries, roles: roles, user: p.User, groups: g, cache: map[string]map[string]bool{}}
	if p.Token != "" && p.Privsep {
		ev.tokenEv = &Evaluator{byPath: byPath, entries: entries, roles: roles, token: p.Token, cache: map[string]map[string]bool{}}
	}
	return ev
}

var noPrivs = map[string]bool{}

// levelRoles returns the roles that apply at one level, or nil: user (or
// token) entries replace group entries at the same level; an entry on an
// ancestor counts only if it propagates.
func (e *Evaluator) levelRoles(level string, exact bool) []string {
	var userRoles, groupRoles []string
	for _, en := range e.byPath[level] {
		if !exact && !en.Propagate {
			continue
		}
		switch {
		case e.token != "" && en.Token == e.token:
			userRoles = append(userRoles, en.Role)
		case e.token == "" && en.User != "" && en.User == e.user:
			userRoles = append(userRoles, en.Role)
		case e.token == "" && en.Group != "" && e.groups[en.Group]:
			groupRoles = append(groupRoles, en.Role)
		}
	}
	if len(userRoles) > 0 {
		return userRoles
	}
	return groupRoles
}

func (e *Evaluator) rolePrivs(roles []string) map[string]bool {
	out := map[string]bool{}
	for _, r := range roles {
		if r == RoleNoAccess {
			return noPrivs
		}
		privs, _ := e.roles(r)
		for _, p := range privs {
			out[p] = true
		}
	}
	return out
}

// Privs returns the effective privileges on path (read-only map). Walking
// from "/" down to path, each level that has matching entries replaces
// what came above: the most specific path wins.
func (e *Evaluator) Privs(path string) map[string]bool {
	if got, ok := e.cache[path]; ok {
		return got
	}
	var result map[string]bool
	if path == "/" {
		result = noPrivs
		if roles := e.levelRoles("/", true); roles != nil {
			result = e.rolePrivs(roles)
		}
	} else {
		parent := "/"
		if i := strings.LastIndexByte(strings.TrimSuffix(path, "/"), '/'); i > 0 {
			parent = path[:i]
		}
		// What propagates from above, then this level's exact entries.
		result = e.inherited(parent)
		if roles := e.levelRoles(path, true); roles != nil {
			result = e.rolePrivs(roles)
		}
	}
	if e.tokenEv != nil {
		tp := e.tokenEv.Privs(path)
		inter := map[string]bool{}
		for p := range result {
			if tp[p] {
				inter[p] = true
			}
		}
		result = inter
	}
	if _, own := e.byPath[path]; own || len(e.cache) < 4096 {
		e.cache[path] = result
	}
	return result
}

// inherited returns what propagates down from path to its children.
func (e *Evaluator) inherited(path string) map[string]bool {
	key := "\x00" + path
	if got, ok := e.cache[key]; ok {
		return got
	}
	var result map[string]bool = noPrivs
	if path != "/" {
		parent := "/"
		if i := strings.LastIndexByte(path, '/'); i > 0 {
			parent = path[:i]
		}
		result = e.inherited(parent)
	}
	if roles := e.levelRoles(path, false); roles != nil {
		result = e.rolePrivs(roles)
	}
	e.cache[key] = result
	return result
}

// Has reports whether all privs are held on path.
func (e *Evaluator) Has(path string, privs ...string) bool {
	got := e.Privs(path)
	for _, p := range privs {
		if !got[p] {
			return false
		}
	}
	return true
}

// Any reports whether at least one of privs is held on path.
func (e *Evaluator) Any(path string, privs ...string) bool {
	got := e.Privs(path)
	for _, p := range privs {
		if got[p] {
			return true
		}
	}
	return false
}

// AnyBelow reports whether any of privs is held on path or on any ACL
// path below it; used to decide whether a caller may see a list at all.
func (e *Evaluator) AnyBelow(path string, privs ...string) bool {
	if e.Any(path, privs...) {
		return true
	}
	prefix := strings.TrimSuffix(path, "/") + "/"
	for _, en := range e.entries {
		if strings.HasPrefix(en.Path, prefix) && e.Any(en.Path, privs...) {
			return true
		}
	}
	return false
}
