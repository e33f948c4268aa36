package server

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/access"
	"github.com/corral-project/corral/internal/errs"
)

type ticketIn struct{ Body api.TicketRequest }
type ticketOut struct {
	SetCookie http.Cookie `header:"Set-Cookie"`
	Body      api.Ticket
}

type logoutOut struct {
	SetCookie http.Cookie `header:"Set-Cookie"`
}

type UserParam struct {
	UserID string `path:"userid" maxLength:"128"`
}
type IfMatchParam struct {
	IfMatch string `header:"If-Match" doc:"digest from the ETag of a previous GET; a stale one gets 412"`
}
type usersOut struct{ Body []api.User }
type userOut struct {
	ETag string `header:"ETag"`
	Body api.User
}
type userCreateIn struct{ Body api.UserCreate }
type userUpdateIn struct {
	UserParam
	IfMatchParam
	Body api.UserUpdate
}
type userDeleteIn struct {
	UserParam
	IfMatchParam
}
type GroupParam struct {
	GroupID string `path:"groupid" maxLength:"64"`
}
type groupsOut struct{ Body []api.Group }
type groupOut struct {
	ETag string `header:"ETag"`
	Body api.Group
}
type groupCreateIn struct{ Body api.Group }
type groupUpdateIn struct {
	GroupParam
	IfMatchParam
	Body struct {
		Comment string `json:"comment" maxLength:"1024"`
	}
}
type groupDeleteIn struct {
	GroupParam
	IfMatchParam
}
type RoleParam struct {
	RoleID string `path:"roleid" maxLength:"64"`
}
type rolesOut struct{ Body []api.Role }
type roleOut struct {
	ETag string `header:"ETag"`
	Body api.Role
}
type roleCreateIn struct{ Body api.Role }
type roleUpdateIn struct {
	RoleParam
	IfMatchParam
	Body struct {
		Privs []string `json:"privs" maxItems:"256"`
	}
}
type roleDeleteIn struct {
	RoleParam
	IfMatchParam
}
type aclOut struct {
	ETag string `header:"ETag"`
	Body []api.ACLEntry
}
type aclUpdateIn struct {
	IfMatchParam
	Body api.ACLUpdate
}
type RealmParam struct {
	Realm string `path:"realm" maxLength:"32"`
}
type realmsOut struct{ Body []api.Realm }
type realmOut struct {
	ETag string `header:"ETag"`
	Body api.Realm
}
type realmCreateIn struct{ Body api.Realm }
type realmUpdateIn struct {
	RealmParam
	IfMatchParam
	Body struct {
		Comment string `json:"comment,omitempty" maxLength:"1024"`
		Default bool   `json:"default,omitempty"`
		Service string `json:"service,omitempty" maxLength:"64" pattern:"^[A-Za-z0-9._-]*$"`
	}
}
type realmDeleteIn struct {
	RealmParam
	IfMatchParam
}
type TokenParam struct {
	UserParam
	Name string `path:"name" maxLength:"64"`
}
type tokensOut struct{ Body []api.Token }
type tokenOut struct {
	ETag string `header:"ETag"`
	Body api.Token
}
type tokenCreateIn struct {
	TokenParam
	Body api.TokenCreate
}
type tokenSecretOut struct{ Body api.TokenSecret }
type tokenUpdateIn struct {
	TokenParam
	IfMatchParam
	Body api.TokenCreate
}
type tokenDeleteIn struct {
	TokenParam
	IfMatchParam
}
type permsOut struct{ Body api.Permissions }

func (s *Server) ticketCookie(t string, exp time.Time) http.Cookie {
	return http.Cookie{Name: CookieName, Value: t, Path: "/", Expires: exp, Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode}
}

// selfOr lets a user act on their own account (or tokens) without
// holding the privilege on /access/users/{userid}.
func selfOr(ctx context.Context, userid string, privs ...string) error {
	c := caller(ctx)
	if c.User == userid && c.Token == "" {
		return nil
	}
	if c.User == userid && c.Token != "" && !c.Privsep {
		return nil
	}
	if c.Ev.Any("/access/users/"+userid, privs...) {
		return nil
	}
	return errs.Forbidden("permission denied: %v required on /access/users/%s", privs, userid)
}

func (s *Server) accessRoutes() {
	tags := []string{"access"}
	usersPath := "/access/users/{userid}"

	register(s, huma.Operation{OperationID: "create-ticket", Method: "POST", Path: "/access/ticket", Summary: "Log in: get a ticket", Tags: tags},
		Perm{Public: true}, func(ctx context.Context, in *ticketIn) (*ticketOut, error) {
			remote := "unknown"
			if r, ok := ctx.Value(remoteKey{}).(string); ok {
				remote = r
			}
			user, err := s.Access.Login(ctx, in.Body.Username, in.Body.Password, remote)
			if err != nil {
				return nil, err
			}
			t, csrf, exp := s.Access.Tickets.Issue(user)
			return &ticketOut{SetCookie: s.ticketCookie(t, exp), Body: api.Ticket{Ticket: t, CSRFToken: csrf, Username: user, Expires: exp.UTC()}}, nil
		})
	register(s, huma.Operation{OperationID: "delete-ticket", Method: "DELETE", Path: "/access/ticket", Summary: "Log out: clear the ticket cookie",
		Description: "Tickets are signed, not stored, so this can't revoke a copied ticket (it expires after two hours); " +
			"it ends the browser session by expiring the HttpOnly cookie, which scripts can't.", Tags: tags, DefaultStatus: http.StatusNoContent},
		Perm{Public: true}, func(ctx context.Context, _ *struct{}) (*logoutOut, error) {
			return &logoutOut{SetCookie: http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode}}, nil
		})
	register(s, huma.Operation{OperationID: "renew-ticket", Method: "POST", Path: "/access/ticket/renew", Summary: "Renew a valid ticket", Tags: tags},
		Perm{Authenticated: true}, func(ctx context.Context, _ *struct{}) (*ticketOut, error) {
			c := caller(ctx)
			if c.Ticket == "" {
				return nil, errs.Invalid("Authorization", "only a ticket can be renewed")
			}
			t, csrf, exp := s.Access.Tickets.Issue(c.User)
			return &ticketOut{SetCookie: s.ticketCookie(t, exp), Body: api.Ticket{Ticket: t, CSRFToken: csrf, Username: c.User, Expires: exp.UTC()}}, nil
		})
	register(s, huma.Operation{OperationID: "get-permissions", Method: "GET", Path: "/access/permissions", Summary: "The caller's effective privileges on the paths that have ACL entries", Tags: tags},
		Perm{Authenticated: true}, func(ctx context.Context, _ *struct{}) (*permsOut, error) {
			c := caller(ctx)
			entries, _ := s.Access.ACL()
			paths := []string{"/", "/nodes", "/vms", "/storage", "/pools", "/access", "/nodes/" + s.Node}
			for _, e := range entries {
				paths = append(paths, e.Path)
			}
			out := api.Permissions{}
			for _, p := range paths {
				if privs := c.Ev.Privs(p); len(privs) > 0 {
					out[p] = slices.Sorted(func(yield func(string) bool) {
						for k := range privs {
							if !yield(k) {
								return
							}
						}
					})
				}
			}
			return &permsOut{Body: out}, nil
		})

	// users
	register(s, huma.Operation{OperationID: "list-users", Method: "GET", Path: "/access/users", Summary: "List users", Tags: tags},
		Perm{Authenticated: true}, func(ctx context.Context, _ *struct{}) (*usersOut, error) {
			c := caller(ctx)
			out := []api.User{}
			for _, u := range s.Access.ListUsers() {
				if u.UserID == c.User || c.Ev.Any("/access/users/"+u.UserID, "Sys.Audit", "User.Modify") {
					out = append(out, u)
				}
			}
			return &usersOut{Body: out}, nil
		})
	register(s, huma.Operation{OperationID: "create-user", Method: "POST", Path: "/access/users", Summary: "Create a user", Tags: tags, DefaultStatus: 201},
		Perm{Path: "/access/users", Privs: []string{"User.Modify"}}, func(ctx context.Context, in *userCreateIn) (*userOut, error) {
			u, err := s.Access.CreateUser(ctx, in.Body)
			if err != nil {
				return nil, err
			}
			return &userOut{ETag: etag(u.Digest), Body: u}, nil
		})
	register(s, huma.Operation{OperationID: "get-user", Method: "GET", Path: usersPath, Summary: "Get a user", Tags: tags},
		Perm{Authenticated: true}, func(ctx context.Context, in *UserParam) (*userOut, error) {
			if err := selfOr(ctx, in.UserID, "Sys.Audit", "User.Modify"); err != nil {
				return nil, err
			}
			u, err := s.Access.GetUser(in.UserID)
			if err != nil {
				return nil, err
			}
			return &userOut{ETag: etag(u.Digest), Body: u}, nil
		})
	register(s, huma.Operation{OperationID: "update-user", Method: "PUT", Path: usersPath, Summary: "Update a user", Tags: tags},
		Perm{Authenticated: true}, func(ctx context.Context, in *userUpdateIn) (*userOut, error) {
			c := caller(ctx)
			// Users may change their own password and contact details,
			// never their own enabled flag, expiry or groups.
			self := c.User == in.UserID && c.Token == "" && in.Body.Enabled == nil && in.Body.Expire == nil && in.Body.Groups == nil
			if !self && !c.Ev.Has("/access/users/"+in.UserID, "User.Modify") {
				return nil, errs.Forbidden("permission denied: User.Modify required on /access/users/%s", in.UserID)
			}
			if in.Body.Groups != nil {
				for i, g := range *in.Body.Groups {
					if !c.Ev.Any("/access/groups/"+g, "User.Modify", "Group.Allocate") {
						return nil, &errs.Error{Kind: errs.KindForbidden, Msg: "permission denied", Fields: []errs.Field{{Field: fmt.Sprintf("groups[%d]", i), Message: "no User.Modify on /access/groups/" + g}}}
					}
				}
			}
			u, err := s.Access.UpdateUser(ctx, in.UserID, ifMatch(in.IfMatch), in.Body)
			if err != nil {
				return nil, err
			}
			return &userOut{ETag: etag(u.Digest), Body: u}, nil
		})
	register(s, huma.Operation{OperationID: "delete-user", Method: "DELETE", Path: usersPath, Summary: "Delete a user with its tokens and ACL entries", Tags: tags, DefaultStatus: 204},
		Perm{Path: usersPath, Privs: []string{"User.Modify"}}, func(ctx context.Context, in *userDeleteIn) (*struct{}, error) {
			if caller(ctx).User == in.UserID {
				return nil, errs.Conflict("you cannot delete your own account")
			}
			return nil, s.Access.DeleteUser(ctx, in.UserID, ifMatch(in.IfMatch))
		})

	// tokens
	tokPath := usersPath + "/tokens/{name}"
	register(s, huma.Operation{OperationID: "list-tokens", Method: "GET", Path: usersPath + "/tokens", Summary: "List a user's API tokens", Tags: tags},
		Perm{Authenticated: true}, func(ctx context.Context, in *UserParam) (*tokensOut, error) {
			if err := selfOr(ctx, in.UserID, "Sys.Audit", "User.Modify"); err != nil {
				return nil, err
			}
			out := s.Access.ListTokens(in.UserID)
			if out == nil {
				out = []api.Token{}
			}
			return &tokensOut{Body: out}, nil
		})
	register(s, huma.Operation{OperationID: "get-token", Method: "GET", Path: tokPath, Summary: "Get an API token", Tags: tags},
		Perm{Authenticated: true}, func(ctx context.Context, in *TokenParam) (*tokenOut, error) {
			if err := selfOr(ctx, in.UserID, "Sys.Audit", "User.Modify"); err != nil {
				return nil, err
			}
			t, err := s.Access.GetToken(in.UserID + "!" + in.Name)
			if err != nil {
				return nil, err
			}
			return &tokenOut{ETag: etag(t.Digest), Body: t}, nil
		})
	register(s, huma.Operation{OperationID: "create-token", Method: "POST", Path: tokPath, Summary: "Create an API token; the secret is shown only in this answer", Tags: tags, DefaultStatus: 201},
		Perm{Authenticated: true}, func(ctx context.Context, in *tokenCreateIn) (*tokenSecretOut, error) {
			if err := selfOr(ctx, in.UserID, "User.Modify"); err != nil {
				return nil, err
			}
			if c := caller(ctx); c.Token != "" && c.Privsep {
				return nil, errs.Forbidden("a privilege-separated token cannot create tokens")
			}
			sec, err := s.Access.CreateToken(ctx, in.UserID, in.Name, in.Body)
			if err != nil {
				return nil, err
			}
			return &tokenSecretOut{Body: sec}, nil
		})
	register(s, huma.Operation{OperationID: "update-token", Method: "PUT", Path: tokPath, Summary: "Update an API token", Tags: tags},
		Perm{Authenticated: true}, func(ctx context.Context, in *tokenUpdateIn) (*tokenOut, error) {
			if err := selfOr(ctx, in.UserID, "User.Modify"); err != nil {
				return nil, err
			}
			t, err := s.Access.UpdateToken(ctx, in.UserID+"!"+in.Name, ifMatch(in.IfMatch), in.Body)
			if err != nil {
				return nil, err
			}
			return &tokenOut{ETag: etag(t.Digest), Body: t}, nil
		})
	register(s, huma.Operation{OperationID: "delete-token", Method: "DELETE", Path: tokPath, Summary: "Delete an API token", Tags: tags, DefaultStatus: 204},
		Perm{Authenticated: true}, func(ctx context.Context, in *tokenDeleteIn) (*struct{}, error) {
			if err := selfOr(ctx, in.UserID, "User.Modify"); err != nil {
				return nil, err
			}
			return nil, s.Access.DeleteToken(ctx, in.UserID+"!"+in.Name, ifMatch(in.IfMatch))
		})

	// groups
	grpPath := "/access/groups/{groupid}"
	register(s, huma.Operation{OperationID: "list-groups", Method: "GET", Path: "/access/groups", Summary: "List groups", Tags: tags},
		Perm{Authenticated: true}, func(ctx context.Context, _ *struct{}) (*groupsOut, error) {
			c := caller(ctx)
			out := []api.Group{}
			for _, g := range s.Access.ListGroups() {
				if c.Ev.Any("/access/groups/"+g.GroupID, "Sys.Audit", "User.Modify", "Group.Allocate") {
					out = append(out, g)
				}
			}
			return &groupsOut{Body: out}, nil
		})
	register(s, huma.Operation{OperationID: "create-group", Method: "POST", Path: "/access/groups", Summary: "Create a group", Tags: tags, DefaultStatus: 201},
		Perm{Path: "/access/groups", Privs: []string{"Group.Allocate"}}, func(ctx context.Context, in *groupCreateIn) (*groupOut, error) {
			g, err := s.Access.CreateGroup(ctx, in.Body)
			if err != nil {
				return nil, err
			}
			return &groupOut{ETag: etag(g.Digest), Body: g}, nil
		})
	register(s, huma.Operation{OperationID: "get-group", Method: "GET", Path: grpPath, Summary: "Get a group", Tags: tags},
		Perm{Path: grpPath, Privs: []string{"Sys.Audit", "User.Modify", "Group.Allocate"}, Any: true}, func(ctx context.Context, in *GroupParam) (*groupOut, error) {
			g, err := s.Access.GetGroup(in.GroupID)
			if err != nil {
				return nil, err
			}
			return &groupOut{ETag: etag(g.Digest), Body: g}, nil
		})
	register(s, huma.Operation{OperationID: "update-group", Method: "PUT", Path: grpPath, Summary: "Update a group", Tags: tags},
		Perm{Path: grpPath, Privs: []string{"Group.Allocate"}}, func(ctx context.Context, in *groupUpdateIn) (*groupOut, error) {
			g, err := s.Access.UpdateGroup(ctx, in.GroupID, ifMatch(in.IfMatch), in.Body.Comment)
			if err != nil {
				return nil, err
			}
			return &groupOut{ETag: etag(g.Digest), Body: g}, nil
		})
	register(s, huma.Operation{OperationID: "delete-group", Method: "DELETE", Path: grpPath, Summary: "Delete a group, its memberships and ACL entries", Tags: tags, DefaultStatus: 204},
		Perm{Path: grpPath, Privs: []string{"Group.Allocate"}}, func(ctx context.Context, in *groupDeleteIn) (*struct{}, error) {
			return nil, s.Access.DeleteGroup(ctx, in.GroupID, ifMatch(in.IfMatch))
		})

	// roles
	rolesPath := "/access/roles/{roleid}"
	register(s, huma.Operation{OperationID: "list-roles", Method: "GET", Path: "/access/roles", Summary: "List roles", Tags: tags},
		Perm{Authenticated: true}, func(ctx context.Context, _ *struct{}) (*rolesOut, error) {
			return &rolesOut{Body: s.Access.ListRoles()}, nil
		})
	register(s, huma.Operation{OperationID: "create-role", Method: "POST", Path: "/access/roles", Summary: "Create a custom role", Tags: tags, DefaultStatus: 201},
		Perm{Path: "/access", Privs: []string{"Sys.Modify"}}, func(ctx context.Context, in *roleCreateIn) (*roleOut, error) {
			r, err := s.Access.CreateRole(ctx, in.Body)
			if err != nil {
				return nil, err
			}
			return &roleOut{ETag: etag(r.Digest), Body: r}, nil
		})
	register(s, huma.Operation{OperationID: "get-role", Method: "GET", Path: rolesPath, Summary: "Get a role", Tags: tags},
		Perm{Authenticated: true}, func(ctx context.Context, in *RoleParam) (*roleOut, error) {
			r, err := s.Access.GetRole(in.RoleID)
			if err != nil {
				return nil, err
			}
			return &roleOut{ETag: etag(r.Digest), Body: r}, nil
		})
	register(s, huma.Operation{OperationID: "update-role", Method: "PUT", Path: rolesPath, Summary: "Replace a custom role's privileges", Tags: tags},
		Perm{Path: "/access", Privs: []string{"Sys.Modify"}}, func(ctx context.Context, in *roleUpdateIn) (*roleOut, error) {
			r, err := s.Access.UpdateRole(ctx, in.RoleID, ifMatch(in.IfMatch), in.Body.Privs)
			if err != nil {
				return nil, err
			}
			return &roleOut{ETag: etag(r.Digest), Body: r}, nil
		})
	register(s, huma.Operation{OperationID: "delete-role", Method: "DELETE", Path: rolesPath, Summary: "Delete an unused custom role", Tags: tags, DefaultStatus: 204},
		Perm{Path: "/access", Privs: []string{"Sys.Modify"}}, func(ctx context.Context, in *roleDeleteIn) (*struct{}, error) {
			return nil, s.Access.DeleteRole(ctx, in.RoleID, ifMatch(in.IfMatch))
		})

	// ACL
	register(s, huma.Operation{OperationID: "get-acl", Method: "GET", Path: "/access/acl", Summary: "List ACL entries the caller may audit", Tags: tags},
		Perm{Authenticated: true}, func(ctx context.Context, _ *struct{}) (*aclOut, error) {
			c := caller(ctx)
			entries, digest := s.Access.ACL()
			out := []api.ACLEntry{}
			for _, e := range entries {
				if c.Ev.Any(e.Path, "Sys.Audit", "Permissions.Modify") {
					out = append(out, e)
				}
			}
			return &aclOut{ETag: etag(digest), Body: out}, nil
		})
	register(s, huma.Operation{OperationID: "update-acl", Method: "PUT", Path: "/access/acl", Summary: "Add or remove ACL entries atomically", Tags: tags},
		Perm{Authenticated: true}, func(ctx context.Context, in *aclUpdateIn) (*aclOut, error) {
			c := caller(ctx)
			var entries []api.ACLEntry
			for i, e := range in.Body.Entries {
				e, err := s.Access.ValidateACLEntry(i, e)
				if err != nil {
					return nil, err
				}
				if !c.Ev.Has(e.Path, "Permissions.Modify") {
					return nil, errs.Forbidden("permission denied: Permissions.Modify required on %s", e.Path)
				}
				// Nobody hands out privileges they do not hold themselves.
				if privs, _ := access.BuiltinRole(e.Role); e.Role != access.RoleNoAccess && !in.Body.Delete {
					if r, err := s.Access.GetRole(e.Role); err == nil {
						privs = r.Privs
					}
					if !c.Ev.Has(e.Path, privs...) {
						return nil, errs.Forbidden("cannot grant role %s on %s: you do not hold all its privileges there", e.Role, e.Path)
					}
				}
				entries = append(entries, e)
			}
			if _, err := s.Access.UpdateACL(ctx, entries, in.Body.Delete, ifMatch(in.IfMatch)); err != nil {
				return nil, err
			}
			all, digest := s.Access.ACL()
			return &aclOut{ETag: etag(digest), Body: all}, nil
		})

	// realms
	realmsPath := "/access/realms/{realm}"
	register(s, huma.Operation{OperationID: "list-realms", Method: "GET", Path: "/access/realms", Summary: "List authentication realms", Tags: tags},
		Perm{Public: true}, func(ctx context.Context, _ *struct{}) (*realmsOut, error) {
			// Public like Proxmox's realm list: the login form needs it.
			return &realmsOut{Body: s.Access.ListRealms()}, nil
		})
	register(s, huma.Operation{OperationID: "create-realm", Method: "POST", Path: "/access/realms", Summary: "Add a realm", Tags: tags, DefaultStatus: 201},
		Perm{Path: "/access/realms", Privs: []string{"Realm.Allocate"}}, func(ctx context.Context, in *realmCreateIn) (*realmOut, error) {
			r, err := s.Access.CreateRealm(ctx, in.Body)
			if err != nil {
				return nil, err
			}
			return &realmOut{ETag: etag(r.Digest), Body: r}, nil
		})
	register(s, huma.Operation{OperationID: "get-realm", Method: "GET", Path: realmsPath, Summary: "Get a realm", Tags: tags},
		Perm{Authenticated: true}, func(ctx context.Context, in *RealmParam) (*realmOut, error) {
			r, err := s.Access.GetRealm(in.Realm)
			if err != nil {
				return nil, err
			}
			return &realmOut{ETag: etag(r.Digest), Body: r}, nil
		})
	register(s, huma.Operation{OperationID: "update-realm", Method: "PUT", Path: realmsPath, Summary: "Update a realm", Tags: tags},
		Perm{Path: "/access/realms/{realm}", Privs: []string{"Realm.Allocate"}}, func(ctx context.Context, in *realmUpdateIn) (*realmOut, error) {
			r, err := s.Access.UpdateRealm(ctx, in.Realm, ifMatch(in.IfMatch), api.Realm{Comment: in.Body.Comment, Default: in.Body.Default, Service: in.Body.Service})
			if err != nil {
				return nil, err
			}
			return &realmOut{ETag: etag(r.Digest), Body: r}, nil
		})
	register(s, huma.Operation{OperationID: "delete-realm", Method: "DELETE", Path: realmsPath, Summary: "Delete a realm without users", Tags: tags, DefaultStatus: 204},
		Perm{Path: "/access/realms/{realm}", Privs: []string{"Realm.Allocate"}}, func(ctx context.Context, in *realmDeleteIn) (*struct{}, error) {
			return nil, s.Access.DeleteRealm(ctx, in.Realm, ifMatch(in.IfMatch))
		})
}
