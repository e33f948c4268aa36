package firewall

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
	"github.com/corral-project/corral/internal/network"
	"github.com/corral-project/corral/internal/store"
)

// Level keys of the rule collection.
const LevelCluster = "cluster"

// NodeLevel and GuestLevel name the other levels.
func NodeLevel(node string) string { return "node-" + node }

// GuestLevel is the level of a VM or container (they share the ID space).
func GuestLevel(id int) string { return fmt.Sprintf("guest-%d", id) }

// Service keeps the firewall definitions in the cluster store.
type Service struct {
	st      *store.Store
	levels  *store.Collection[api.FwRules]
	groups  *store.Collection[api.FwGroup]
	ipsets  *store.Collection[api.FwIPSet]
	aliases *store.Collection[api.FwAlias]
}

// NewService returns the firewall definitions service.
func NewService(st *store.Store) *Service {
	return &Service{st: st, levels: store.NewCollection[api.FwRules](st, "firewall/levels"),
		groups:  store.NewCollection[api.FwGroup](st, "firewall/groups"),
		ipsets:  store.NewCollection[api.FwIPSet](st, "firewall/ipsets"),
		aliases: store.NewCollection[api.FwAlias](st, "firewall/aliases")}
}

// Prefix is the store prefix of everything the firewall is compiled from.
func (s *Service) Prefix() string { return store.Prefix + "firewall/" }

// Level returns a level's options and rules (empty if never set).
func (s *Service) Level(level string) api.FwRules {
	o, err := s.levels.Get(level)
	if err != nil {
		return api.FwRules{Rules: []api.FwRule{}}
	}
	r := o.Value
	r.Digest = o.Digest
	if r.Rules == nil {
		r.Rules = []api.FwRule{}
	}
	return r
}

func (s *Service) defs() *Config {
	c := &Config{Groups: map[string]api.FwGroup{}, IPSets: map[string]api.FwIPSet{}, Aliases: map[string]api.FwAlias{}}
	for _, o := range s.groups.List() {
		c.Groups[o.Value.Group] = o.Value
	}
	for _, o := range s.ipsets.List() {
		c.IPSets[o.Value.Name] = o.Value
	}
	for _, o := range s.aliases.List() {
		c.Aliases[o.Value.Name] = o.Value
	}
	return c
}

// editLevel changes a level with CAS; a new level starts empty.
func (s *Service) editLevel(ctx context.Context, level, ifMatch string, fn func(*api.FwRules) error) (api.FwRules, error) {
	if _, err := s.levels.Get(level); err != nil {
		if _, err := s.levels.Create(ctx, level, api.FwRules{Rules: []api.FwRule{}}); err != nil && !errors.Is(err, store.ErrExists) {
			return api.FwRules{}, err
		}
	}
	_, err := s.levels.Update(ctx, level, ifMatch, func(r *api.FwRules) error {
		r.Digest = ""
		return fn(r)
	})
	if err != nil {
		return api.FwRules{}, network.StoreErr(err, "the firewall of "+level)
	}
	return s.Level(level), nil
}

func checkOptions(o api.FwOptions) error {
	for f, p := range map[string]string{"policy_in": o.PolicyIn, "policy_out": o.PolicyOut} {
		if p != "" && p != "ACCEPT" && p != "DROP" && p != "REJECT" {
			return errs.Invalid(f, "must be ACCEPT, DROP or REJECT")
		}
	}
	return nil
}

// SetOptions replaces a level's options.
func (s *Service) SetOptions(ctx context.Context, level, ifMatch string, o api.FwOptions) (api.FwRules, error) {
	if err := checkOptions(o); err != nil {
		return api.FwRules{}, err
	}
	return s.editLevel(ctx, level, ifMatch, func(r *api.FwRules) error { r.Options = o; return nil })
}

// AddRule inserts a rule at pos (-1: at the end) after checking it compiles.
func (s *Service) AddRule(ctx context.Context, level, ifMatch string, pos int, rule api.FwRule) (api.FwRules, error) {
	if err := CheckRule(rule, s.defs(), false); err != nil {
		return api.FwRules{}, err
	}
	return s.editLevel(ctx, level, ifMatch, func(r *api.FwRules) error {
		if pos < 0 || pos > len(r.Rules) {
			pos = len(r.Rules)
		}
		r.Rules = slices.Insert(r.Rules, pos, rule)
		return nil
	})
}

// UpdateRule replaces the rule at pos.
func (s *Service) UpdateRule(ctx context.Context, level, ifMatch string, pos int, rule api.FwRule) (api.FwRules, error) {
	if err := CheckRule(rule, s.defs(), false); err != nil {
		return api.FwRules{}, err
	}
	return s.editLevel(ctx, level, ifMatch, func(r *api.FwRules) error {
		if pos < 0 || pos >= len(r.Rules) {
			return errs.NotFound("%s has no rule %d", level, pos)
		}
		r.Rules[pos] = rule
		return nil
	})
}

// DeleteRule removes the rule at pos.
func (s *Service) DeleteRule(ctx context.Context, level, ifMatch string, pos int) (api.FwRules, error) {
	return s.editLevel(ctx, level, ifMatch, func(r *api.FwRules) error {
		if pos < 0 || pos >= len(r.Rules) {
			return errs.NotFound("%s has no rule %d", level, pos)
		}
		r.Rules = slices.Delete(r.Rules, pos, pos+1)
		return nil
	})
}

// DeleteLevel forgets a guest's firewall (the guest was destroyed).
func (s *Service) DeleteLevel(ctx context.Context, level string) error {
	err := s.levels.Delete(ctx, level, "")
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// Groups lists security groups.
func (s *Service) Groups() []api.FwGroup {
	return network.List(s.groups, func(g *api.FwGroup, d string) { g.Digest = d })
}

// IPSets lists IP sets.
func (s *Service) IPSets() []api.FwIPSet {
	return network.List(s.ipsets, func(g *api.FwIPSet, d string) { g.Digest = d })
}

// Aliases lists aliases.
func (s *Service) Aliases() []api.FwAlias {
	return network.List(s.aliases, func(g *api.FwAlias, d string) { g.Digest = d })
}

// PutGroup creates (create) or replaces a security group.
func (s *Service) PutGroup(ctx context.Context, g api.FwGroup, create bool, ifMatch string) error {
	g.Digest = ""
	for i, r := range g.Rules {
		if err := CheckRule(r, s.defs(), true); err != nil {
			var e *errs.Error
			if errors.As(err, &e) && len(e.Fields) > 0 {
				return errs.Invalid(fmt.Sprintf("rules[%d].%s", i, e.Fields[0].Field), "%s", e.Fields[0].Message)
			}
			return err
		}
	}
	return put(ctx, s.groups, g.Group, g, create, ifMatch, "security group")
}

// PutIPSet creates or replaces an IP set.
func (s *Service) PutIPSet(ctx context.Context, set api.FwIPSet, create bool, ifMatch string) error {
	set.Digest = ""
	for i, c := range set.CIDRs {
		if _, err := ParsePrefix(c); err != nil {
			return errs.Invalid(fmt.Sprintf("cidrs[%d]", i), "%q is not an address or CIDR", c)
		}
	}
	return put(ctx, s.ipsets, set.Name, set, create, ifMatch, "IP set")
}

// PutAlias creates or replaces an alias.
func (s *Service) PutAlias(ctx context.Context, a api.FwAlias, create bool, ifMatch string) error {
	a.Digest = ""
	if _, err := ParsePrefix(a.CIDR); err != nil {
		return errs.Invalid("cidr", "%q is not an address or CIDR", a.CIDR)
	}
	return put(ctx, s.aliases, a.Name, a, create, ifMatch, "alias")
}

func put[T any](ctx context.Context, c *store.Collection[T], id string, v T, create bool, ifMatch, what string) error {
	var err error
	if create {
		_, err = c.Create(ctx, id, v)
	} else {
		_, err = c.Update(ctx, id, ifMatch, func(cur *T) error { *cur = v; return nil })
	}
	return network.StoreErr(err, what+" "+id)
}

func del[T any](ctx context.Context, c *store.Collection[T], id, ifMatch, what string) error {
	return network.StoreErr(c.Delete(ctx, id, ifMatch), what+" "+id)
}

// usedBy names the first level or group with a rule matching f.
func (s *Service) usedBy(f func(api.FwRule) bool) string {
	for _, o := range s.levels.List() {
		if slices.ContainsFunc(o.Value.Rules, f) {
			return strings.TrimPrefix(o.Key, s.levels.Prefix())
		}
	}
	for _, g := range s.Groups() {
		if slices.ContainsFunc(g.Rules, f) {
			return "security group " + g.Group
		}
	}
	return ""
}

// Config assembles what this node compiles: cluster and node levels,
// definitions, and the given guests' levels.
func (s *Service) Config(node string, guests []Guest) Config {
	c := *s.defs()
	c.Cluster = s.Level(LevelCluster)
	c.Node = s.Level(NodeLevel(node))
	for i := range guests {
		guests[i].Rules = s.Level(GuestLevel(guests[i].ID))
	}
	c.Guests = guests
	return c
}

// DeleteGroup removes a security group no rule uses.
func (s *Service) DeleteGroup(ctx context.Context, name, ifMatch string) error {
	if lvl := s.usedBy(func(r api.FwRule) bool { return r.Group == name }); lvl != "" {
		return errs.Conflict("security group %s is used by %s", name, lvl)
	}
	return del(ctx, s.groups, name, ifMatch, "security group")
}

// DeleteIPSet removes an IP set no rule uses.
func (s *Service) DeleteIPSet(ctx context.Context, name, ifMatch string) error {
	if lvl := s.usedBy(func(r api.FwRule) bool { return r.Source == "+"+name || r.Dest == "+"+name }); lvl != "" {
		return errs.Conflict("IP set %s is used by %s", name, lvl)
	}
	return del(ctx, s.ipsets, name, ifMatch, "IP set")
}

// DeleteAlias removes an alias no rule uses.
func (s *Service) DeleteAlias(ctx context.Context, name, ifMatch string) error {
	uses := func(list string) bool {
		return slices.ContainsFunc(strings.Split(list, ","), func(p string) bool { return strings.TrimSpace(p) == name })
	}
	if lvl := s.usedBy(func(r api.FwRule) bool { return uses(r.Source) || uses(r.Dest) }); lvl != "" {
		return errs.Conflict("alias %s is used by %s", name, lvl)
	}
	return del(ctx, s.aliases, name, ifMatch, "alias")
}
