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
	"nodes": 1, "vms": 1, "storage": 1, "pools": 1, "sdn": 2, "access": 2, "mapping": 2,
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
// It memoises per path because list endpoints ask about many objects.
type Evaluator struct {
	entries []api.ACLEntry
	roles   RoleResolver
	user    string
	groups  map[string]bool
	token   string // non-empty: evaluate the token's own entries too
	cache   map[string]map[string]bool
	tokenEv *Evaluator
}

// NewEvaluator builds the evaluator for principal p, who is in groups.
func NewEvaluator(entries []api.ACLEntry, roles RoleResolver, p Principal, groups []string) *Evaluator {
	g := map[string]bool{}
	for _, x := range groups {
		g[x] = true
	}
	ev := &Evaluator{entries: entries, roles: roles, user: p.User, groups: g, cache: map[string]map[string]bool{}}
	if p.Token != "" && p.Privsep {
		ev.tokenEv = &Evaluator{entries: entries, roles: roles, token: p.Token, cache: map[string]map[string]bool{}}
	}
	return ev
}

// ancestors returns "/", "/a", "/a/b" for "/a/b".
func ancestors(path string) []string {
	out := []string{"/"}
	if path == "/" {
		return out
	}
	segs := strings.Split(strings.Trim(path, "/"), "/")
	for i := range segs {
		out = append(out, "/"+strings.Join(segs[:i+1], "/"))
	}
	return out
}

// Privs returns the effective privileges on path. Walking from "/" down to
// path, each level that has matching entries replaces what came above
// (more specific wins); at one level, user entries replace group entries;
// entries on an ancestor count only when they propagate.
func (e *Evaluator) Privs(path string) map[string]bool {
	if got, ok := e.cache[path]; ok {
		return got
	}
	var result map[string]bool
	for _, level := range ancestors(path) {
		exact := level == path
		var userRoles, groupRoles []string
		for _, en := range e.entries {
			if en.Path != level || (!exact && !en.Propagate) {
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
		roles := userRoles
		if len(roles) == 0 {
			roles = groupRoles
		}
		if len(roles) == 0 {
			continue
		}
		result = map[string]bool{}
		noAccess := false
		for _, r := range roles {
			if r == RoleNoAccess {
				noAccess = true
			}
			privs, _ := e.roles(r)
			for _, p := range privs {
				result[p] = true
			}
		}
		if noAccess {
			result = map[string]bool{}
		}
	}
	if result == nil {
		result = map[string]bool{}
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
	e.cache[path] = result
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
