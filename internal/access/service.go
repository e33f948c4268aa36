package access

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
	"github.com/corral-project/corral/internal/store"
)

// Authenticator checks a password for a user name within one realm.
// LDAP, OpenID and the like plug in here by registering a RealmType.
type Authenticator interface {
	Authenticate(ctx context.Context, name, password string) error
}

// AuthFunc adapts a function to Authenticator.
type AuthFunc func(ctx context.Context, name, password string) error

// Authenticate implements Authenticator.
func (f AuthFunc) Authenticate(ctx context.Context, name, password string) error {
	return f(ctx, name, password)
}

// RealmType builds the authenticator for a realm config.
type RealmType func(r api.Realm) (Authenticator, error)

var (
	userNameRe  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	realmRe     = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)
	tokenNameRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9._-]{0,63}$`)
	groupRe     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
)

// SplitUserID splits name@realm, validating both halves.
func SplitUserID(id string) (name, realm string, err error) {
	i := strings.LastIndex(id, "@")
	if i < 0 {
		return "", "", fmt.Errorf("must be name@realm")
	}
	name, realm = id[:i], id[i+1:]
	if !userNameRe.MatchString(name) {
		return "", "", fmt.Errorf("invalid user name %q", name)
	}
	if !realmRe.MatchString(realm) {
		return "", "", fmt.Errorf("invalid realm %q", realm)
	}
	return name, realm, nil
}

// SplitTokenID splits user@realm!name.
func SplitTokenID(id string) (user, name string, err error) {
	i := strings.LastIndex(id, "!")
	if i < 0 {
		return "", "", fmt.Errorf("must be user@realm!name")
	}
	user, name = id[:i], id[i+1:]
	if _, _, err := SplitUserID(user); err != nil {
		return "", "", err
	}
	if !tokenNameRe.MatchString(name) {
		return "", "", fmt.Errorf("invalid token name %q", name)
	}
	return user, name, nil
}

type aclDoc struct {
	Entries []api.ACLEntry `json:"entries"`
}

type secret struct {
	Hash string `json:"hash"`
}

// Service is the store-backed access model.
type Service struct {
	st      *store.Store
	users   *store.Collection[api.User]
	groups  *store.Collection[api.Group]
	roles   *store.Collection[api.Role]
	acl     *store.Collection[aclDoc]
	realms  *store.Collection[api.Realm]
	tokens  *store.Collection[api.Token]
	pwds    *store.Collection[secret]
	tsecret *store.Collection[secret]
	keys    *store.Collection[secret]
	meta    *store.Collection[map[string]string]
	log     *slog.Logger

	Tickets *Tickets
	limiter *failureLimiter

	mu         sync.Mutex
	realmTypes map[string]RealmType
}

// New returns the access service over st. Call Bootstrap before use.
func New(st *store.Store, log *slog.Logger) *Service {
	return &Service{
		st:         st,
		users:      store.NewCollection[api.User](st, "access/users"),
		groups:     store.NewCollection[api.Group](st, "access/groups"),
		roles:      store.NewCollection[api.Role](st, "access/roles"),
		acl:        store.NewCollection[aclDoc](st, "access/acl"),
		realms:     store.NewCollection[api.Realm](st, "access/realms"),
		tokens:     store.NewCollection[api.Token](st, "access/tokens"),
		pwds:       store.NewCollection[secret](st, "secret/passwords"),
		tsecret:    store.NewCollection[secret](st, "secret/tokens"),
		keys:       store.NewCollection[secret](st, "secret/keys"),
		meta:       store.NewCollection[map[string]string](st, "cluster/meta"),
		log:        log,
		limiter:    newFailureLimiter(5, time.Minute),
		realmTypes: map[string]RealmType{},
	}
}

// RegisterRealmType makes a realm type (e.g. "pam", later "ldap") available.
func (s *Service) RegisterRealmType(name string, t RealmType) {
	s.mu.Lock()
	s.realmTypes[name] = t
	s.mu.Unlock()
}

func (s *Service) realmType(name string) (RealmType, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.realmTypes[name]
	return t, ok
}

// BootstrapOptions configure a new cluster's first start.
type BootstrapOptions struct {
	AdminPassword  string // empty: generate one
	PAM            bool   // grant root@pam Administrator on /
	TicketLifetime time.Duration
}

// Bootstrap makes sure the built-in realms and the ticket key exist and,
// on a brand-new cluster, creates admin@corral. It returns the generated
// admin password, or "" when none was generated. Safe to call on every
// start and from several nodes at once: creation is guarded by CAS.
func (s *Service) Bootstrap(ctx context.Context, o BootstrapOptions) (string, error) {
	if o.TicketLifetime == 0 {
		o.TicketLifetime = 2 * time.Hour
	}
	if _, err := s.keys.Get("ticket"); errors.Is(err, store.ErrNotFound) {
		if _, err := s.keys.Create(ctx, "ticket", secret{Hash: randomHex(32)}); err != nil && !errors.Is(err, store.ErrExists) {
			return "", fmt.Errorf("create ticket key: %w", err)
		}
	}
	key, err := s.keys.Get("ticket")
	if err != nil {
		return "", fmt.Errorf("read ticket key: %w", err)
	}
	s.Tickets = NewTickets([]byte(key.Value.Hash), o.TicketLifetime)

	if _, err := s.meta.Get("access"); err == nil {
		return "", nil // already bootstrapped
	}
	generated := ""
	pw := o.AdminPassword
	if pw == "" {
		pw = randomHex(12)
		generated = pw
	}
	hash, err := HashPassword(pw)
	if err != nil {
		return "", err
	}
	var ops []store.Op
	add := func(op store.Op, err error) {
		if err == nil {
			ops = append(ops, op)
		}
	}
	add(s.meta.PutOp("access", map[string]string{"bootstrapped": time.Now().UTC().Format(time.RFC3339)}, 0))
	add(s.realms.PutOp("corral", api.Realm{Realm: "corral", Type: "corral", Comment: "corral built-in users", Default: true}, 0))
	entries := []api.ACLEntry{{Path: "/", User: "admin@corral", Role: RoleAdministrator, Propagate: true}}
	if o.PAM {
		add(s.realms.PutOp("pam", api.Realm{Realm: "pam", Type: "pam", Comment: "Linux PAM (host accounts)", Service: "corral"}, 0))
		add(s.users.PutOp("root@pam", api.User{UserID: "root@pam", Enabled: true, Comment: "host root"}, 0))
		entries = append(entries, api.ACLEntry{Path: "/", User: "root@pam", Role: RoleAdministrator, Propagate: true})
	}
	add(s.users.PutOp("admin@corral", api.User{UserID: "admin@corral", Enabled: true, Comment: "initial administrator"}, 0))
	add(s.pwds.PutOp("admin@corral", secret{Hash: hash}, 0))
	add(s.acl.PutOp("acl", aclDoc{Entries: entries}, 0))
	if _, err := s.st.Apply(ctx, ops...); err != nil {
		if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrExists) {
			return "", nil // another node bootstrapped first
		}
		return "", fmt.Errorf("bootstrap access: %w", err)
	}
	return generated, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // the kernel RNG does not fail
	}
	return hex.EncodeToString(b)
}

// NormalizeUser adds the default realm to a bare user name.
func NormalizeUser(u string) string {
	if !strings.Contains(u, "@") {
		return u + "@corral"
	}
	return u
}

// hashSlots bounds concurrent password checks: each argon2id check takes
// 19 MiB, so a burst of logins must queue rather than balloon memory.
var hashSlots = make(chan struct{}, max(2, runtime.NumCPU()))

// errAuthFailed never says whether the user exists.
var errAuthFailed = errs.Unauthorized("authentication failure")

// Login checks credentials from remote and returns the canonical user ID.
func (s *Service) Login(ctx context.Context, username, password, remote string) (string, error) {
	userid := NormalizeUser(username)
	ukey, rkey := "u:"+strings.ToLower(userid), "r:"+remote
	if s.limiter.Blocked(ukey, rkey) {
		return "", errs.TooMany("too many failed logins; try again later")
	}
	select {
	case hashSlots <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	err := s.checkLogin(ctx, userid, password)
	<-hashSlots
	if err != nil {
		s.limiter.Fail(ukey, rkey)
		s.log.Warn("login failed", "user", userid, "remote", remote, "err", err)
		return "", errAuthFailed
	}
	s.limiter.Reset(ukey)
	return userid, nil
}

func (s *Service) checkLogin(ctx context.Context, userid, password string) error {
	name, realm, err := SplitUserID(userid)
	if err != nil {
		CheckPassword(dummyHash, password)
		return err
	}
	if err := s.CheckUser(userid); err != nil {
		CheckPassword(dummyHash, password)
		return err
	}
	r, err := s.realms.Get(realm)
	if err != nil {
		return fmt.Errorf("realm %s: %w", realm, err)
	}
	switch r.Value.Type {
	case "corral":
		sec, err := s.pwds.Get(userid)
		if err != nil {
			CheckPassword(dummyHash, password)
			return fmt.Errorf("no password set")
		}
		if !CheckPassword(sec.Value.Hash, password) {
			return fmt.Errorf("wrong password")
		}
		return nil
	default:
		t, ok := s.realmType(r.Value.Type)
		if !ok {
			return fmt.Errorf("realm type %s not available on this node", r.Value.Type)
		}
		a, err := t(r.Value)
		if err != nil {
			return err
		}
		actx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		return a.Authenticate(actx, name, password)
	}
}

// CheckUser fails if the user doesn't exist, is disabled or expired.
func (s *Service) CheckUser(userid string) error {
	u, err := s.users.Get(userid)
	if err != nil {
		return fmt.Errorf("no such user")
	}
	if !u.Value.Enabled {
		return fmt.Errorf("user disabled")
	}
	if u.Value.Expire != nil && time.Now().After(*u.Value.Expire) {
		return fmt.Errorf("user expired")
	}
	return nil
}

// VerifyToken checks "user@realm!name" and its secret.
func (s *Service) VerifyToken(tokenID, sec string) (Principal, error) {
	user, _, err := SplitTokenID(tokenID)
	if err != nil {
		return Principal{}, errs.Unauthorized("invalid API token")
	}
	tok, err1 := s.tokens.Get(tokenID)
	h, err2 := s.tsecret.Get(tokenID)
	sum := sha256.Sum256([]byte(sec))
	if err1 != nil || err2 != nil || subtle.ConstantTimeCompare([]byte(hex.EncodeToString(sum[:])), []byte(h.Value.Hash)) != 1 {
		return Principal{}, errs.Unauthorized("invalid API token")
	}
	if tok.Value.Expire != nil && time.Now().After(*tok.Value.Expire) {
		return Principal{}, errs.Unauthorized("API token expired")
	}
	if err := s.CheckUser(user); err != nil {
		return Principal{}, errs.Unauthorized("invalid API token")
	}
	return Principal{User: user, Token: tokenID, Privsep: tok.Value.Privsep}, nil
}

// roleResolver resolves built-in and custom roles from the cache.
func (s *Service) roleResolver(name string) ([]string, bool) {
	if p, ok := BuiltinRole(name); ok {
		return p, true
	}
	r, err := s.roles.Get(name)
	if err != nil {
		return nil, false
	}
	return r.Value.Privs, true
}

// Evaluator returns the permission evaluator for p.
func (s *Service) Evaluator(p Principal) *Evaluator {
	var groups []string
	if u, err := s.users.Get(p.User); err == nil {
		groups = u.Value.Groups
	}
	doc, _ := s.acl.Get("acl")
	return NewEvaluator(doc.Value.Entries, s.roleResolver, p, groups)
}

// ---- users ----

func (s *Service) fillUser(o store.Object[api.User]) api.User {
	u := o.Value
	u.Digest = o.Digest
	u.Groups = slices.Clone(u.Groups)
	return u
}

// ListUsers returns every user.
func (s *Service) ListUsers() []api.User {
	var out []api.User
	for _, o := range s.users.List() {
		out = append(out, s.fillUser(o))
	}
	return out
}

// GetUser returns one user.
func (s *Service) GetUser(id string) (api.User, error) {
	o, err := s.users.Get(id)
	if err != nil {
		return api.User{}, notFound(err, "user %s", id)
	}
	return s.fillUser(o), nil
}

func notFound(err error, format string, args ...any) error {
	if errors.Is(err, store.ErrNotFound) {
		return errs.NotFound(format+" does not exist", args...)
	}
	return err
}

// mapWriteErr turns store CAS errors into API-meaningful ones.
func mapWriteErr(err error, what string) error {
	switch {
	case errors.Is(err, store.ErrExists):
		return errs.Conflict("%s already exists", what)
	case errors.Is(err, store.ErrConflict):
		return &errs.Error{Kind: errs.KindPrecondition, Msg: what + " was changed by someone else; reload and retry"}
	case errors.Is(err, store.ErrNotFound):
		return errs.NotFound("%s does not exist", what)
	}
	return err
}

func (s *Service) checkGroups(groups []string) error {
	for i, g := range groups {
		if _, err := s.groups.Get(g); err != nil {
			return errs.Invalid(fmt.Sprintf("groups[%d]", i), "group %q does not exist", g)
		}
	}
	return nil
}

// CreateUser adds a user; the password is required for the corral realm
// and refused for others (their realm checks passwords).
func (s *Service) CreateUser(ctx context.Context, in api.UserCreate) (api.User, error) {
	_, realm, err := SplitUserID(in.UserID)
	if err != nil {
		return api.User{}, errs.Invalid("userid", "%v", err)
	}
	r, err := s.realms.Get(realm)
	if err != nil {
		return api.User{}, errs.Invalid("userid", "realm %q does not exist", realm)
	}
	if r.Value.Type == "corral" && in.Password == "" {
		return api.User{}, errs.Invalid("password", "required for the corral realm")
	}
	if r.Value.Type != "corral" && in.Password != "" {
		return api.User{}, errs.Invalid("password", "realm %s checks passwords itself", realm)
	}
	if err := s.checkGroups(in.Groups); err != nil {
		return api.User{}, err
	}
	u := api.User{UserID: in.UserID, Enabled: in.Enabled == nil || *in.Enabled, Expire: in.Expire,
		FirstName: in.FirstName, LastName: in.LastName, Email: in.Email, Comment: in.Comment, Groups: dedupe(in.Groups)}
	op, err := s.users.PutOp(u.UserID, u, 0)
	if err != nil {
		return api.User{}, err
	}
	ops := []store.Op{op}
	if in.Password != "" {
		h, err := HashPassword(in.Password)
		if err != nil {
			return api.User{}, err
		}
		pop, _ := s.pwds.PutOp(u.UserID, secret{Hash: h}, -1)
		ops = append(ops, pop)
	}
	if _, err := s.st.Apply(ctx, ops...); err != nil {
		return api.User{}, mapWriteErr(err, "user "+u.UserID)
	}
	return s.GetUser(u.UserID)
}

func dedupe(in []string) []string {
	if in == nil {
		return nil
	}
	out := slices.Clone(in)
	sort.Strings(out)
	return slices.Compact(out)
}

// UpdateUser changes fields of a user; ifMatch is an optional digest.
func (s *Service) UpdateUser(ctx context.Context, id, ifMatch string, in api.UserUpdate) (api.User, error) {
	cur, err := s.users.Get(id)
	if err != nil {
		return api.User{}, notFound(err, "user %s", id)
	}
	if ifMatch != "" && ifMatch != cur.Digest {
		return api.User{}, mapWriteErr(store.ErrConflict, "user "+id)
	}
	if in.Groups != nil {
		if err := s.checkGroups(*in.Groups); err != nil {
			return api.User{}, err
		}
	}
	var pwOp *store.Op
	if in.Password != nil {
		_, realm, _ := SplitUserID(id)
		r, _ := s.realms.Get(realm)
		if r.Value.Type != "corral" {
			return api.User{}, errs.Invalid("password", "realm %s checks passwords itself", realm)
		}
		h, err := HashPassword(*in.Password)
		if err != nil {
			return api.User{}, err
		}
		op, _ := s.pwds.PutOp(id, secret{Hash: h}, -1)
		pwOp = &op
	}
	u := cur.Value
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	if in.Enabled != nil {
		u.Enabled = *in.Enabled
	}
	if in.Expire != nil {
		u.Expire = in.Expire
		if in.Expire.IsZero() {
			u.Expire = nil
		}
	}
	set(&u.FirstName, in.FirstName)
	set(&u.LastName, in.LastName)
	set(&u.Email, in.Email)
	set(&u.Comment, in.Comment)
	if in.Groups != nil {
		u.Groups = dedupe(*in.Groups)
	}
	u.Digest = ""
	op, err := s.users.PutOp(id, u, cur.Rev)
	if err != nil {
		return api.User{}, err
	}
	ops := []store.Op{op}
	if pwOp != nil {
		ops = append(ops, *pwOp)
	}
	if _, err := s.st.Apply(ctx, ops...); err != nil {
		return api.User{}, mapWriteErr(err, "user "+id)
	}
	return s.GetUser(id)
}

// DeleteUser removes a user with its password, tokens and ACL entries in
// one atomic write.
func (s *Service) DeleteUser(ctx context.Context, id, ifMatch string) error {
	cur, err := s.users.Get(id)
	if err != nil {
		return notFound(err, "user %s", id)
	}
	if ifMatch != "" && ifMatch != cur.Digest {
		return mapWriteErr(store.ErrConflict, "user "+id)
	}
	ops := []store.Op{s.users.DeleteOp(id, cur.Rev), s.pwds.DeleteOp(id, -1)}
	for _, t := range s.tokens.List() {
		if strings.HasPrefix(t.Value.TokenID, id+"!") {
			ops = append(ops, s.tokens.DeleteOp(t.Value.TokenID, t.Rev), s.tsecret.DeleteOp(t.Value.TokenID, -1))
		}
	}
	aclOp, changed, err := s.aclWithout(func(e api.ACLEntry) bool {
		return e.User == id || strings.HasPrefix(e.Token, id+"!")
	})
	if err != nil {
		return err
	}
	if changed {
		ops = append(ops, aclOp)
	}
	_, err = s.st.Apply(ctx, ops...)
	return mapWriteErr(err, "user "+id)
}

// aclWithout builds a CAS write of the ACL minus entries matching drop.
func (s *Service) aclWithout(drop func(api.ACLEntry) bool) (store.Op, bool, error) {
	doc, err := s.acl.Get("acl")
	rev := doc.Rev
	if errors.Is(err, store.ErrNotFound) {
		return store.Op{}, false, nil
	}
	var keep []api.ACLEntry
	changed := false
	for _, e := range doc.Value.Entries {
		if drop(e) {
			changed = true
			continue
		}
		keep = append(keep, e)
	}
	op, err := s.acl.PutOp("acl", aclDoc{Entries: keep}, rev)
	return op, changed, err
}

// ---- groups ----

// ListGroups returns every group with its members.
func (s *Service) ListGroups() []api.Group {
	members := map[string][]string{}
	for _, u := range s.users.List() {
		for _, g := range u.Value.Groups {
			members[g] = append(members[g], u.Value.UserID)
		}
	}
	var out []api.Group
	for _, o := range s.groups.List() {
		g := o.Value
		g.Members = members[g.GroupID]
		g.Digest = o.Digest
		out = append(out, g)
	}
	return out
}

// GetGroup returns one group.
func (s *Service) GetGroup(id string) (api.Group, error) {
	for _, g := range s.ListGroups() {
		if g.GroupID == id {
			return g, nil
		}
	}
	return api.Group{}, errs.NotFound("group %s does not exist", id)
}

// CreateGroup adds a group.
func (s *Service) CreateGroup(ctx context.Context, g api.Group) (api.Group, error) {
	if !groupRe.MatchString(g.GroupID) {
		return api.Group{}, errs.Invalid("groupid", "invalid group name")
	}
	g.Members, g.Digest = nil, ""
	if _, err := s.groups.Create(ctx, g.GroupID, g); err != nil {
		return api.Group{}, mapWriteErr(err, "group "+g.GroupID)
	}
	return s.GetGroup(g.GroupID)
}

// UpdateGroup changes a group's comment.
func (s *Service) UpdateGroup(ctx context.Context, id, ifMatch, comment string) (api.Group, error) {
	_, err := s.groups.Update(ctx, id, ifMatch, func(g *api.Group) error { g.Comment = comment; return nil })
	if err != nil {
		return api.Group{}, mapWriteErr(err, "group "+id)
	}
	return s.GetGroup(id)
}

// DeleteGroup removes a group, its memberships and ACL entries atomically.
func (s *Service) DeleteGroup(ctx context.Context, id, ifMatch string) error {
	cur, err := s.groups.Get(id)
	if err != nil {
		return notFound(err, "group %s", id)
	}
	if ifMatch != "" && ifMatch != cur.Digest {
		return mapWriteErr(store.ErrConflict, "group "+id)
	}
	ops := []store.Op{s.groups.DeleteOp(id, cur.Rev)}
	for _, u := range s.users.List() {
		if slices.Contains(u.Value.Groups, id) {
			nu := u.Value
			nu.Groups = slices.DeleteFunc(slices.Clone(nu.Groups), func(g string) bool { return g == id })
			op, err := s.users.PutOp(nu.UserID, nu, u.Rev)
			if err != nil {
				return err
			}
			ops = append(ops, op)
		}
	}
	aclOp, changed, err := s.aclWithout(func(e api.ACLEntry) bool { return e.Group == id })
	if err != nil {
		return err
	}
	if changed {
		ops = append(ops, aclOp)
	}
	_, err = s.st.Apply(ctx, ops...)
	return mapWriteErr(err, "group "+id)
}

// ---- roles ----

// ListRoles returns built-in and custom roles.
func (s *Service) ListRoles() []api.Role {
	var out []api.Role
	for _, name := range BuiltinRoles() {
		p, _ := BuiltinRole(name)
		out = append(out, api.Role{RoleID: name, Privs: slices.Sorted(slices.Values(p)), Builtin: true})
	}
	for _, o := range s.roles.List() {
		r := o.Value
		r.Digest = o.Digest
		out = append(out, r)
	}
	return out
}

// GetRole returns one role.
func (s *Service) GetRole(id string) (api.Role, error) {
	for _, r := range s.ListRoles() {
		if r.RoleID == id {
			return r, nil
		}
	}
	return api.Role{}, errs.NotFound("role %s does not exist", id)
}

func validatePrivs(privs []string) ([]string, error) {
	for i, p := range privs {
		if !ValidPriv(p) {
			return nil, errs.Invalid(fmt.Sprintf("privs[%d]", i), "unknown privilege %q", p)
		}
	}
	return dedupe(privs), nil
}

// CreateRole adds a custom role.
func (s *Service) CreateRole(ctx context.Context, r api.Role) (api.Role, error) {
	if _, ok := BuiltinRole(r.RoleID); ok {
		return api.Role{}, errs.Conflict("role %s is built in", r.RoleID)
	}
	privs, err := validatePrivs(r.Privs)
	if err != nil {
		return api.Role{}, err
	}
	r = api.Role{RoleID: r.RoleID, Privs: privs}
	if _, err := s.roles.Create(ctx, r.RoleID, r); err != nil {
		return api.Role{}, mapWriteErr(err, "role "+r.RoleID)
	}
	return s.GetRole(r.RoleID)
}

// UpdateRole replaces a custom role's privileges.
func (s *Service) UpdateRole(ctx context.Context, id, ifMatch string, privs []string) (api.Role, error) {
	if _, ok := BuiltinRole(id); ok {
		return api.Role{}, errs.Forbidden("built-in role %s cannot be changed", id)
	}
	privs, err := validatePrivs(privs)
	if err != nil {
		return api.Role{}, err
	}
	if _, err := s.roles.Update(ctx, id, ifMatch, func(r *api.Role) error { r.Privs = privs; return nil }); err != nil {
		return api.Role{}, mapWriteErr(err, "role "+id)
	}
	return s.GetRole(id)
}

// DeleteRole removes a custom role that no ACL entry uses.
func (s *Service) DeleteRole(ctx context.Context, id, ifMatch string) error {
	if _, ok := BuiltinRole(id); ok {
		return errs.Forbidden("built-in role %s cannot be deleted", id)
	}
	cur, err := s.roles.Get(id)
	if err != nil {
		return notFound(err, "role %s", id)
	}
	doc, _ := s.acl.Get("acl")
	for _, e := range doc.Value.Entries {
		if e.Role == id {
			return errs.Conflict("role %s is used by an ACL entry on %s; remove it first", id, e.Path)
		}
	}
	if ifMatch != "" && ifMatch != cur.Digest {
		return mapWriteErr(store.ErrConflict, "role "+id)
	}
	// Rewriting the ACL unchanged guards against an entry naming the role
	// being added between our check and the delete.
	guard, err := s.acl.PutOp("acl", doc.Value, doc.Rev)
	if err != nil {
		return err
	}
	_, err = s.st.Apply(ctx, s.roles.DeleteOp(id, cur.Rev), guard)
	return mapWriteErr(err, "role "+id)
}

// ---- ACL ----

// ACL returns all entries and the ACL's digest.
func (s *Service) ACL() ([]api.ACLEntry, string) {
	doc, _ := s.acl.Get("acl")
	return slices.Clone(doc.Value.Entries), doc.Digest
}

// ValidateACLEntry normalises an entry and checks that its subject and role exist.
func (s *Service) ValidateACLEntry(i int, e api.ACLEntry) (api.ACLEntry, error) {
	f := func(name string) string { return fmt.Sprintf("entries[%d].%s", i, name) }
	p, err := ValidatePath(e.Path)
	if err != nil {
		return e, errs.Invalid(f("path"), "%v", err)
	}
	e.Path = p
	n := 0
	for _, x := range []string{e.User, e.Group, e.Token} {
		if x != "" {
			n++
		}
	}
	if n != 1 {
		return e, errs.Invalid(f("user"), "exactly one of user, group or token must be set")
	}
	switch {
	case e.User != "":
		if _, err := s.users.Get(e.User); err != nil {
			return e, errs.Invalid(f("user"), "user %q does not exist", e.User)
		}
	case e.Group != "":
		if _, err := s.groups.Get(e.Group); err != nil {
			return e, errs.Invalid(f("group"), "group %q does not exist", e.Group)
		}
	case e.Token != "":
		if _, err := s.tokens.Get(e.Token); err != nil {
			return e, errs.Invalid(f("token"), "token %q does not exist", e.Token)
		}
	}
	if _, ok := s.roleResolver(e.Role); !ok {
		return e, errs.Invalid(f("role"), "role %q does not exist", e.Role)
	}
	return e, nil
}

func sameEntry(a, b api.ACLEntry) bool {
	return a.Path == b.Path && a.User == b.User && a.Group == b.Group && a.Token == b.Token && a.Role == b.Role
}

// UpdateACL adds or removes entries atomically. Entries must already be
// validated (the server also checks Permissions.Modify on each path).
func (s *Service) UpdateACL(ctx context.Context, entries []api.ACLEntry, del bool, ifMatch string) (string, error) {
	doc, err := s.acl.Get("acl")
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return "", err
	}
	if ifMatch != "" && ifMatch != doc.Digest {
		return "", mapWriteErr(store.ErrConflict, "the ACL")
	}
	cur := slices.Clone(doc.Value.Entries)
	for _, e := range entries {
		idx := slices.IndexFunc(cur, func(c api.ACLEntry) bool { return sameEntry(c, e) })
		switch {
		case del && idx >= 0:
			cur = slices.Delete(cur, idx, idx+1)
		case !del && idx >= 0:
			cur[idx].Propagate = e.Propagate
		case !del:
			cur = append(cur, e)
		}
	}
	op, err := s.acl.PutOp("acl", aclDoc{Entries: cur}, doc.Rev)
	if err != nil {
		return "", err
	}
	if _, err := s.st.Apply(ctx, op); err != nil {
		return "", mapWriteErr(err, "the ACL")
	}
	return store.Digest(op.Value), nil
}

// ---- realms ----

// ListRealms returns all realms.
func (s *Service) ListRealms() []api.Realm {
	var out []api.Realm
	for _, o := range s.realms.List() {
		r := o.Value
		r.Digest = o.Digest
		out = append(out, r)
	}
	return out
}

// GetRealm returns one realm.
func (s *Service) GetRealm(id string) (api.Realm, error) {
	o, err := s.realms.Get(id)
	if err != nil {
		return api.Realm{}, notFound(err, "realm %s", id)
	}
	r := o.Value
	r.Digest = o.Digest
	return r, nil
}

// CreateRealm adds a realm of a registered type.
func (s *Service) CreateRealm(ctx context.Context, r api.Realm) (api.Realm, error) {
	if !realmRe.MatchString(r.Realm) {
		return api.Realm{}, errs.Invalid("realm", "invalid realm name")
	}
	if r.Type == "corral" {
		return api.Realm{}, errs.Invalid("type", "there is only one corral realm")
	}
	if _, ok := s.realmType(r.Type); !ok {
		return api.Realm{}, errs.Invalid("type", "realm type %q is not available on this node", r.Type)
	}
	r.Digest = ""
	if _, err := s.realms.Create(ctx, r.Realm, r); err != nil {
		return api.Realm{}, mapWriteErr(err, "realm "+r.Realm)
	}
	return s.GetRealm(r.Realm)
}

// UpdateRealm changes a realm's comment, default flag and service.
func (s *Service) UpdateRealm(ctx context.Context, id, ifMatch string, in api.Realm) (api.Realm, error) {
	_, err := s.realms.Update(ctx, id, ifMatch, func(r *api.Realm) error {
		if in.Type != "" && in.Type != r.Type {
			return errs.Invalid("type", "a realm's type cannot change")
		}
		r.Comment, r.Default = in.Comment, in.Default
		if r.Type == "pam" && in.Service != "" {
			r.Service = in.Service
		}
		return nil
	})
	if err != nil {
		return api.Realm{}, mapWriteErr(err, "realm "+id)
	}
	return s.GetRealm(id)
}

// DeleteRealm removes a realm that has no users.
func (s *Service) DeleteRealm(ctx context.Context, id, ifMatch string) error {
	if id == "corral" {
		return errs.Forbidden("the corral realm cannot be deleted")
	}
	for _, u := range s.users.List() {
		if strings.HasSuffix(u.Value.UserID, "@"+id) {
			return errs.Conflict("realm %s still has users (%s); delete them first", id, u.Value.UserID)
		}
	}
	return mapWriteErr(s.realms.Delete(ctx, id, ifMatch), "realm "+id)
}

// ---- tokens ----

// ListTokens returns a user's tokens.
func (s *Service) ListTokens(user string) []api.Token {
	var out []api.Token
	for _, o := range s.tokens.List() {
		if strings.HasPrefix(o.Value.TokenID, user+"!") {
			t := o.Value
			t.Digest = o.Digest
			out = append(out, t)
		}
	}
	return out
}

// GetToken returns one token.
func (s *Service) GetToken(id string) (api.Token, error) {
	o, err := s.tokens.Get(id)
	if err != nil {
		return api.Token{}, notFound(err, "token %s", id)
	}
	t := o.Value
	t.Digest = o.Digest
	return t, nil
}

// CreateToken adds a token for user and returns its secret once.
func (s *Service) CreateToken(ctx context.Context, user, name string, in api.TokenCreate) (api.TokenSecret, error) {
	if !tokenNameRe.MatchString(name) {
		return api.TokenSecret{}, errs.Invalid("name", "token names start with a letter and use letters, digits, . _ -")
	}
	if _, err := s.users.Get(user); err != nil {
		return api.TokenSecret{}, errs.NotFound("user %s does not exist", user)
	}
	id := user + "!" + name
	t := api.Token{TokenID: id, Privsep: in.Privsep == nil || *in.Privsep, Expire: in.Expire, Comment: in.Comment}
	sec := randomHex(24)
	sum := sha256.Sum256([]byte(sec))
	op1, _ := s.tokens.PutOp(id, t, 0)
	op2, _ := s.tsecret.PutOp(id, secret{Hash: hex.EncodeToString(sum[:])}, -1)
	if _, err := s.st.Apply(ctx, op1, op2); err != nil {
		return api.TokenSecret{}, mapWriteErr(err, "token "+id)
	}
	got, _ := s.GetToken(id)
	return api.TokenSecret{TokenID: id, Secret: sec, Token: got}, nil
}

// UpdateToken changes a token's comment, expiry and privsep.
func (s *Service) UpdateToken(ctx context.Context, id, ifMatch string, in api.TokenCreate) (api.Token, error) {
	_, err := s.tokens.Update(ctx, id, ifMatch, func(t *api.Token) error {
		if in.Privsep != nil {
			t.Privsep = *in.Privsep
		}
		if in.Expire != nil {
			t.Expire = in.Expire
		}
		t.Comment = in.Comment
		return nil
	})
	if err != nil {
		return api.Token{}, mapWriteErr(err, "token "+id)
	}
	return s.GetToken(id)
}

// DeleteToken removes a token, its secret and its ACL entries.
func (s *Service) DeleteToken(ctx context.Context, id, ifMatch string) error {
	cur, err := s.tokens.Get(id)
	if err != nil {
		return notFound(err, "token %s", id)
	}
	if ifMatch != "" && ifMatch != cur.Digest {
		return mapWriteErr(store.ErrConflict, "token "+id)
	}
	ops := []store.Op{s.tokens.DeleteOp(id, cur.Rev), s.tsecret.DeleteOp(id, -1)}
	aclOp, changed, err := s.aclWithout(func(e api.ACLEntry) bool { return e.Token == id })
	if err != nil {
		return err
	}
	if changed {
		ops = append(ops, aclOp)
	}
	_, err = s.st.Apply(ctx, ops...)
	return mapWriteErr(err, "token "+id)
}

// RemovePath drops every ACL entry on path (a purged guest, a deleted pool).
func (s *Service) RemovePath(ctx context.Context, path string) error {
	op, changed, err := s.aclWithout(func(e api.ACLEntry) bool { return e.Path == path })
	if err != nil || !changed {
		return err
	}
	_, err = s.st.Apply(ctx, op)
	return mapWriteErr(err, "the ACL")
}
