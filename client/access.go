package client

import (
	"context"
	"fmt"
	"net/http"

	"github.com/corral-project/corral/api"
)

// Version returns the server's release and API version. It needs no
// credentials, which makes it the cheapest reachability check.
func (c *Client) Version(ctx context.Context) (*api.VersionInfo, error) {
	var v api.VersionInfo
	if _, err := c.Do(ctx, http.MethodGet, "/version", nil, nil, &v); err != nil {
		return nil, fmt.Errorf("get version: %w", err)
	}
	return &v, nil
}

// Health returns the node's health summary.
func (c *Client) Health(ctx context.Context) (*api.Health, error) {
	var h api.Health
	if _, err := c.Do(ctx, http.MethodGet, "/health", nil, nil, &h); err != nil {
		return nil, fmt.Errorf("get health: %w", err)
	}
	return &h, nil
}

// Login exchanges a password for a ticket. On success the client uses the
// new ticket for its later requests. user is user@realm (no realm means the
// corral realm).
func (c *Client) Login(ctx context.Context, user, password string) (*api.Ticket, error) {
	var t api.Ticket
	req := api.TicketRequest{Username: user, Password: password}
	if _, err := c.Do(ctx, http.MethodPost, "/access/ticket", nil, req, &t, withoutAuth()); err != nil {
		return nil, fmt.Errorf("login as %s: %w", user, err)
	}
	c.SetTicket(t.Ticket, t.CSRFToken)
	return &t, nil
}

// Renew trades the client's current ticket for a fresh one and starts
// using it.
func (c *Client) Renew(ctx context.Context) (*api.Ticket, error) {
	var t api.Ticket
	if _, err := c.Do(ctx, http.MethodPost, "/access/ticket/renew", nil, nil, &t); err != nil {
		return nil, fmt.Errorf("renew ticket: %w", err)
	}
	c.SetTicket(t.Ticket, t.CSRFToken)
	return &t, nil
}

// Permissions returns the caller's effective privileges per path.
func (c *Client) Permissions(ctx context.Context) (api.Permissions, error) {
	var p api.Permissions
	if _, err := c.Do(ctx, http.MethodGet, "/access/permissions", nil, nil, &p); err != nil {
		return nil, fmt.Errorf("get permissions: %w", err)
	}
	return p, nil
}

// ---- users ----

// Users lists the users the caller may see.
func (c *Client) Users(ctx context.Context) ([]api.User, error) {
	var out []api.User
	if _, err := c.Do(ctx, http.MethodGet, "/access/users", nil, nil, &out); err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return out, nil
}

// User returns one user; its Digest can be passed to WithIfMatch.
func (c *Client) User(ctx context.Context, userid string) (*api.User, error) {
	var u api.User
	if _, err := c.Do(ctx, http.MethodGet, PathJoin("access", "users", userid), nil, nil, &u); err != nil {
		return nil, fmt.Errorf("get user %s: %w", userid, err)
	}
	return &u, nil
}

// CreateUser creates a user and returns it as stored.
func (c *Client) CreateUser(ctx context.Context, u api.UserCreate) (*api.User, error) {
	var out api.User
	if _, err := c.Do(ctx, http.MethodPost, "/access/users", nil, u, &out); err != nil {
		return nil, fmt.Errorf("create user %s: %w", u.UserID, err)
	}
	return &out, nil
}

// UpdateUser changes the fields set in u and returns the updated user.
func (c *Client) UpdateUser(ctx context.Context, userid string, u api.UserUpdate, opts ...RequestOption) (*api.User, error) {
	var out api.User
	if _, err := c.Do(ctx, http.MethodPut, PathJoin("access", "users", userid), nil, u, &out, opts...); err != nil {
		return nil, fmt.Errorf("update user %s: %w", userid, err)
	}
	return &out, nil
}

// DeleteUser deletes a user.
func (c *Client) DeleteUser(ctx context.Context, userid string, opts ...RequestOption) error {
	if _, err := c.Do(ctx, http.MethodDelete, PathJoin("access", "users", userid), nil, nil, nil, opts...); err != nil {
		return fmt.Errorf("delete user %s: %w", userid, err)
	}
	return nil
}

// ---- groups ----

// Groups lists groups.
func (c *Client) Groups(ctx context.Context) ([]api.Group, error) {
	var out []api.Group
	if _, err := c.Do(ctx, http.MethodGet, "/access/groups", nil, nil, &out); err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	return out, nil
}

// Group returns one group with its members.
func (c *Client) Group(ctx context.Context, groupid string) (*api.Group, error) {
	var g api.Group
	if _, err := c.Do(ctx, http.MethodGet, PathJoin("access", "groups", groupid), nil, nil, &g); err != nil {
		return nil, fmt.Errorf("get group %s: %w", groupid, err)
	}
	return &g, nil
}

// CreateGroup creates a group (GroupID and Comment are used).
func (c *Client) CreateGroup(ctx context.Context, g api.Group) (*api.Group, error) {
	body := api.Group{GroupID: g.GroupID, Comment: g.Comment}
	var out api.Group
	if _, err := c.Do(ctx, http.MethodPost, "/access/groups", nil, body, &out); err != nil {
		return nil, fmt.Errorf("create group %s: %w", g.GroupID, err)
	}
	return &out, nil
}

// UpdateGroup sets a group's comment, its only writable field. Only that
// field is sent: the server rejects unknown properties.
func (c *Client) UpdateGroup(ctx context.Context, groupid, comment string, opts ...RequestOption) (*api.Group, error) {
	body := struct {
		Comment string `json:"comment"`
	}{comment}
	var out api.Group
	if _, err := c.Do(ctx, http.MethodPut, PathJoin("access", "groups", groupid), nil, body, &out, opts...); err != nil {
		return nil, fmt.Errorf("update group %s: %w", groupid, err)
	}
	return &out, nil
}

// DeleteGroup deletes a group.
func (c *Client) DeleteGroup(ctx context.Context, groupid string, opts ...RequestOption) error {
	if _, err := c.Do(ctx, http.MethodDelete, PathJoin("access", "groups", groupid), nil, nil, nil, opts...); err != nil {
		return fmt.Errorf("delete group %s: %w", groupid, err)
	}
	return nil
}

// ---- roles ----

// Roles lists built-in and custom roles.
func (c *Client) Roles(ctx context.Context) ([]api.Role, error) {
	var out []api.Role
	if _, err := c.Do(ctx, http.MethodGet, "/access/roles", nil, nil, &out); err != nil {
		return nil, fmt.Errorf("list roles: %w", err)
	}
	return out, nil
}

// Role returns one role.
func (c *Client) Role(ctx context.Context, roleid string) (*api.Role, error) {
	var r api.Role
	if _, err := c.Do(ctx, http.MethodGet, PathJoin("access", "roles", roleid), nil, nil, &r); err != nil {
		return nil, fmt.Errorf("get role %s: %w", roleid, err)
	}
	return &r, nil
}

// CreateRole creates a custom role (RoleID and Privs are used).
func (c *Client) CreateRole(ctx context.Context, r api.Role) (*api.Role, error) {
	body := struct {
		RoleID string   `json:"roleid"`
		Privs  []string `json:"privs"`
	}{r.RoleID, r.Privs}
	if body.Privs == nil {
		body.Privs = []string{}
	}
	var out api.Role
	if _, err := c.Do(ctx, http.MethodPost, "/access/roles", nil, body, &out); err != nil {
		return nil, fmt.Errorf("create role %s: %w", r.RoleID, err)
	}
	return &out, nil
}

// UpdateRole replaces a custom role's privileges.
func (c *Client) UpdateRole(ctx context.Context, roleid string, privs []string, opts ...RequestOption) (*api.Role, error) {
	if privs == nil {
		privs = []string{} // the field is required; null would be rejected
	}
	body := struct {
		Privs []string `json:"privs"`
	}{privs}
	var out api.Role
	if _, err := c.Do(ctx, http.MethodPut, PathJoin("access", "roles", roleid), nil, body, &out, opts...); err != nil {
		return nil, fmt.Errorf("update role %s: %w", roleid, err)
	}
	return &out, nil
}

// DeleteRole deletes a custom role.
func (c *Client) DeleteRole(ctx context.Context, roleid string, opts ...RequestOption) error {
	if _, err := c.Do(ctx, http.MethodDelete, PathJoin("access", "roles", roleid), nil, nil, nil, opts...); err != nil {
		return fmt.Errorf("delete role %s: %w", roleid, err)
	}
	return nil
}

// ---- ACL ----

// ACL returns every ACL entry the caller may see.
func (c *Client) ACL(ctx context.Context) ([]api.ACLEntry, error) {
	var out []api.ACLEntry
	if _, err := c.Do(ctx, http.MethodGet, "/access/acl", nil, nil, &out); err != nil {
		return nil, fmt.Errorf("get ACL: %w", err)
	}
	return out, nil
}

// UpdateACL adds (or, with u.Delete, removes) entries atomically and
// returns the resulting ACL.
func (c *Client) UpdateACL(ctx context.Context, u api.ACLUpdate, opts ...RequestOption) ([]api.ACLEntry, error) {
	var out []api.ACLEntry
	if _, err := c.Do(ctx, http.MethodPut, "/access/acl", nil, u, &out, opts...); err != nil {
		return nil, fmt.Errorf("update ACL: %w", err)
	}
	return out, nil
}

// ---- realms ----

// Realms lists authentication realms.
func (c *Client) Realms(ctx context.Context) ([]api.Realm, error) {
	var out []api.Realm
	if _, err := c.Do(ctx, http.MethodGet, "/access/realms", nil, nil, &out); err != nil {
		return nil, fmt.Errorf("list realms: %w", err)
	}
	return out, nil
}

// Realm returns one realm.
func (c *Client) Realm(ctx context.Context, realm string) (*api.Realm, error) {
	var r api.Realm
	if _, err := c.Do(ctx, http.MethodGet, PathJoin("access", "realms", realm), nil, nil, &r); err != nil {
		return nil, fmt.Errorf("get realm %s: %w", realm, err)
	}
	return &r, nil
}

// CreateRealm creates a realm.
func (c *Client) CreateRealm(ctx context.Context, r api.Realm) (*api.Realm, error) {
	r.Digest = ""
	var out api.Realm
	if _, err := c.Do(ctx, http.MethodPost, "/access/realms", nil, r, &out); err != nil {
		return nil, fmt.Errorf("create realm %s: %w", r.Realm, err)
	}
	return &out, nil
}

// RealmUpdate holds a realm's writable fields; its name and type are fixed
// at creation.
type RealmUpdate struct {
	Comment string `json:"comment,omitempty"`
	Default bool   `json:"default,omitempty"`
	Service string `json:"service,omitempty"`
}

// UpdateRealm changes a realm's writable fields.
func (c *Client) UpdateRealm(ctx context.Context, realm string, r RealmUpdate, opts ...RequestOption) (*api.Realm, error) {
	var out api.Realm
	if _, err := c.Do(ctx, http.MethodPut, PathJoin("access", "realms", realm), nil, r, &out, opts...); err != nil {
		return nil, fmt.Errorf("update realm %s: %w", realm, err)
	}
	return &out, nil
}

// DeleteRealm deletes a realm.
func (c *Client) DeleteRealm(ctx context.Context, realm string, opts ...RequestOption) error {
	if _, err := c.Do(ctx, http.MethodDelete, PathJoin("access", "realms", realm), nil, nil, nil, opts...); err != nil {
		return fmt.Errorf("delete realm %s: %w", realm, err)
	}
	return nil
}

// ---- tokens ----

// Tokens lists a user's API tokens (never their secrets).
func (c *Client) Tokens(ctx context.Context, userid string) ([]api.Token, error) {
	var out []api.Token
	if _, err := c.Do(ctx, http.MethodGet, PathJoin("access", "users", userid, "tokens"), nil, nil, &out); err != nil {
		return nil, fmt.Errorf("list tokens of %s: %w", userid, err)
	}
	return out, nil
}

// Token returns one token of a user.
func (c *Client) Token(ctx context.Context, userid, name string) (*api.Token, error) {
	var t api.Token
	if _, err := c.Do(ctx, http.MethodGet, PathJoin("access", "users", userid, "tokens", name), nil, nil, &t); err != nil {
		return nil, fmt.Errorf("get token %s!%s: %w", userid, name, err)
	}
	return &t, nil
}

// CreateToken creates a token; the returned secret is shown only this once.
func (c *Client) CreateToken(ctx context.Context, userid, name string, t api.TokenCreate) (*api.TokenSecret, error) {
	var out api.TokenSecret
	if _, err := c.Do(ctx, http.MethodPost, PathJoin("access", "users", userid, "tokens", name), nil, t, &out); err != nil {
		return nil, fmt.Errorf("create token %s!%s: %w", userid, name, err)
	}
	return &out, nil
}

// UpdateToken changes a token's settings; its secret stays the same.
func (c *Client) UpdateToken(ctx context.Context, userid, name string, t api.TokenCreate, opts ...RequestOption) (*api.Token, error) {
	var out api.Token
	if _, err := c.Do(ctx, http.MethodPut, PathJoin("access", "users", userid, "tokens", name), nil, t, &out, opts...); err != nil {
		return nil, fmt.Errorf("update token %s!%s: %w", userid, name, err)
	}
	return &out, nil
}

// DeleteToken revokes a token.
func (c *Client) DeleteToken(ctx context.Context, userid, name string, opts ...RequestOption) error {
	if _, err := c.Do(ctx, http.MethodDelete, PathJoin("access", "users", userid, "tokens", name), nil, nil, nil, opts...); err != nil {
		return fmt.Errorf("delete token %s!%s: %w", userid, name, err)
	}
	return nil
}
