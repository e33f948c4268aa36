package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
	"github.com/corral-project/corral/internal/store"
)

var nodeNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,62}$`)

// Service holds the cluster's pool definitions and this node's open pools.
type Service struct {
	node  string
	st    *store.Store
	coll  *store.Collection[api.Storage]
	meta  *store.Collection[map[string]string]
	log   *slog.Logger
	mu    sync.Mutex
	open  map[string]opened
	locks sync.Map // pool ID -> *sync.Mutex serialising allocations per pool

	statusMu sync.Mutex
	statuses map[string]cachedStatus
}

type cachedStatus struct {
	digest string
	at     time.Time
	st     api.StorageStatus
}

type opened struct {
	digest string
	pool   Pool
	err    error
}

// NewService returns the storage service of node.
func NewService(st *store.Store, node string, log *slog.Logger) *Service {
	return &Service{node: node, st: st, coll: store.NewCollection[api.Storage](st, "storage"),
		meta: store.NewCollection[map[string]string](st, "cluster/meta"), log: log, open: map[string]opened{}}
}

// EnsureDefault creates the "local" dir pool at path on a new cluster,
// once: a later deletion by the administrator is respected.
func (s *Service) EnsureDefault(ctx context.Context, path string) error {
	if _, err := s.meta.Get("storage"); err == nil {
		return nil
	}
	if err := os.MkdirAll(path, 0o755); err != nil {
		return fmt.Errorf("default storage: %w", err)
	}
	cfg := api.Storage{Storage: "local", Type: "dir", Path: path, Comment: "this node's local directory",
		Content: []string{api.ContentImages, api.ContentRootdir, api.ContentISO, api.ContentVZTmpl, api.ContentBackup, api.ContentSnippets}}
	op1, _ := s.meta.PutOp("storage", map[string]string{"default": "local"}, 0)
	op2, _ := s.coll.PutOp("local", cfg, 0)
	if _, err := s.st.Apply(ctx, op1, op2); err != nil && !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrExists) {
		return fmt.Errorf("default storage: %w", err)
	}
	return nil
}

func fill(o store.Object[api.Storage]) api.Storage {
	c := o.Value
	c.Digest = o.Digest
	c.Content = slices.Clone(c.Content)
	c.Nodes = slices.Clone(c.Nodes)
	return c
}

// List returns every pool definition.
func (s *Service) List() []api.Storage {
	var out []api.Storage
	for _, o := range s.coll.List() {
		out = append(out, fill(o))
	}
	return out
}

// Get returns one pool definition.
func (s *Service) Get(id string) (api.Storage, error) {
	o, err := s.coll.Get(id)
	if err != nil {
		return api.Storage{}, errs.NotFound("storage %s does not exist", id)
	}
	return fill(o), nil
}

// validate checks the parts common to every type, then the plugin's.
func validate(cfg *api.Storage) error {
	if !ValidPoolID(cfg.Storage) {
		return errs.Invalid("storage", "pool IDs are lower-case letters, digits, - and _, starting with a letter")
	}
	p, ok := Lookup(cfg.Type)
	if !ok {
		return errs.Invalid("type", "unknown storage type %q (have %v)", cfg.Type, Types())
	}
	if len(cfg.Content) == 0 {
		return errs.Invalid("content", "at least one content type")
	}
	seen := map[string]bool{}
	for i, c := range cfg.Content {
		if seen[c] {
			return errs.Invalid(fmt.Sprintf("content[%d]", i), "duplicate %q", c)
		}
		seen[c] = true
		if !slices.Contains(p.Caps().Content, c) {
			return errs.Invalid(fmt.Sprintf("content[%d]", i), "%s storage cannot hold %q", cfg.Type, c)
		}
	}
	for i, n := range cfg.Nodes {
		if !nodeNameRe.MatchString(n) {
			return errs.Invalid(fmt.Sprintf("nodes[%d]", i), "invalid node name %q", n)
		}
	}
	slices.Sort(cfg.Content)
	if p.Caps().Shared {
		cfg.Shared = true
	}
	return p.Validate(cfg)
}

// Create adds a pool definition.
func (s *Service) Create(ctx context.Context, cfg api.Storage) (api.Storage, error) {
	cfg.Digest = ""
	if err := validate(&cfg); err != nil {
		return api.Storage{}, err
	}
	if _, err := s.coll.Create(ctx, cfg.Storage, cfg); err != nil {
		if errors.Is(err, store.ErrExists) {
			return api.Storage{}, errs.Conflict("storage %s already exists", cfg.Storage)
		}
		return api.Storage{}, err
	}
	return s.Get(cfg.Storage)
}

// Update changes a pool definition.
func (s *Service) Update(ctx context.Context, id, ifMatch string, u api.StorageUpdate) (api.Storage, error) {
	_, err := s.coll.Update(ctx, id, ifMatch, func(c *api.Storage) error {
		if u.Content != nil {
			c.Content = *u.Content
		}
		if u.Nodes != nil {
			c.Nodes = *u.Nodes
		}
		if u.Shared != nil {
			c.Shared = *u.Shared
		}
		if u.Disable != nil {
			c.Disable = *u.Disable
		}
		if u.Comment != nil {
			c.Comment = *u.Comment
		}
		return validate(c)
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		return api.Storage{}, errs.NotFound("storage %s does not exist", id)
	case errors.Is(err, store.ErrConflict):
		return api.Storage{}, &errs.Error{Kind: errs.KindPrecondition, Msg: "storage " + id + " was changed by someone else; reload and retry"}
	case err != nil:
		return api.Storage{}, err
	}
	return s.Get(id)
}

// Delete removes a pool definition (never its data). While guest volumes
// are on it (as seen from this node) it refuses unless force.
func (s *Service) Delete(ctx context.Context, id, ifMatch string, force bool) error {
	cfg, err := s.Get(id)
	if err != nil {
		return err
	}
	if !force && s.availableHere(cfg) == nil {
		if p, err := s.Pool(ctx, id); err == nil {
			vols, err := p.List(ctx, "", 0)
			if err == nil {
				for _, v := range vols {
					if v.VMID != 0 {
						return errs.Conflict("storage %s still holds guest volume %s (delete with force to remove only the definition)", id, v.VolID)
					}
				}
			}
		}
	}
	err = s.coll.Delete(ctx, id, ifMatch)
	if errors.Is(err, store.ErrConflict) {
		return &errs.Error{Kind: errs.KindPrecondition, Msg: "storage " + id + " was changed by someone else; reload and retry"}
	}
	return err
}

// availableHere says why a pool can't be used on this node, or nil.
func (s *Service) availableHere(cfg api.Storage) error {
	if cfg.Disable {
		return fmt.Errorf("storage %s is disabled", cfg.Storage)
	}
	if len(cfg.Nodes) > 0 && !slices.Contains(cfg.Nodes, s.node) {
		return fmt.Errorf("storage %s is not available on node %s", cfg.Storage, s.node)
	}
	return nil
}

// Pool opens (and activates, once per definition change) a pool on this node.
func (s *Service) Pool(ctx context.Context, id string) (Pool, error) {
	cfg, err := s.Get(id)
	if err != nil {
		return nil, err
	}
	if err := s.availableHere(cfg); err != nil {
		return nil, errs.Conflict("%v", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if o, ok := s.open[id]; ok && o.digest == cfg.Digest && o.err == nil {
		return o.pool, nil
	}
	plug, _ := Lookup(cfg.Type)
	p, err := plug.Open(cfg)
	if err == nil {
		err = p.Activate(ctx)
	}
	s.open[id] = opened{digest: cfg.Digest, pool: p, err: err}
	if err != nil {
		return nil, errs.Conflict("storage %s is not usable on node %s: %v", id, s.node, err)
	}
	return p, nil
}

// VolumePath resolves a volume ID to its path on this node, checking that
// its pool holds content (guest drivers open what this returns).
func (s *Service) VolumePath(ctx context.Context, volid, content string) (string, error) {
	id, err := ParseVolID(volid)
	if err != nil {
		return "", err
	}
	cfg, err := s.Get(id.Storage)
	if err != nil {
		return "", fmt.Errorf("storage %q does not exist", id.Storage)
	}
	if !slices.Contains(cfg.Content, content) {
		return "", fmt.Errorf("storage %s does not hold %s", id.Storage, content)
	}
	p, err := s.Pool(ctx, id.Storage)
	if err != nil {
		return "", err
	}
	path, err := p.Path(ctx, id.Name)
	if err != nil {
		return "", fmt.Errorf("volume %s: %w", volid, err)
	}
	return path, nil
}

// Lock serialises mutating operations on one pool on this node (cheap
// insurance on top of the plugins' atomic claims).
func (s *Service) Lock(id string) func() {
	m, _ := s.locks.LoadOrStore(id, &sync.Mutex{})
	m.(*sync.Mutex).Lock()
	return m.(*sync.Mutex).Unlock
}

// Status reports one pool's state on this node; an unusable pool is
// reported inactive with its reason, never as an error.
func (s *Service) Status(ctx context.Context, cfg api.Storage) api.StorageStatus {
	plug, _ := Lookup(cfg.Type)
	st := api.StorageStatus{Storage: cfg.Storage, Type: cfg.Type, Node: s.node, Content: cfg.Content, Shared: cfg.Shared, Enabled: !cfg.Disable}
	if plug != nil {
		st.Caps = plug.Caps()
	}
	if err := s.availableHere(cfg); err != nil {
		st.Reason = err.Error()
		return st
	}
	p, err := s.Pool(ctx, cfg.Storage)
	if err != nil {
		st.Reason = err.Error()
		return st
	}
	ps := p.Status(ctx)
	st.Active, st.Reason, st.Total, st.Used, st.Avail = ps.Active, ps.Reason, ps.Total, ps.Used, ps.Avail
	return st
}

// CachedStatus is Status at most 10 s old: lists that show every pool
// (the resource tree) must not log in to an iSCSI target per request.
func (s *Service) CachedStatus(ctx context.Context, cfg api.Storage) api.StorageStatus {
	s.statusMu.Lock()
	c, ok := s.statuses[cfg.Storage]
	s.statusMu.Unlock()
	if ok && c.digest == cfg.Digest && time.Since(c.at) < 10*time.Second {
		return c.st
	}
	st := s.Status(ctx, cfg)
	s.statusMu.Lock()
	if s.statuses == nil {
		s.statuses = map[string]cachedStatus{}
	}
	s.statuses[cfg.Storage] = cachedStatus{digest: cfg.Digest, at: time.Now(), st: st}
	s.statusMu.Unlock()
	return st
}

// FreeVolumes frees each volume, logging what it freed and what it could
// not: the cleanup of a failed create or a destroy goes on past a volume
// that resists, and the task log says which one is left.
func (s *Service) FreeVolumes(ctx context.Context, vols []string, logf func(string, ...any)) {
	for _, v := range vols {
		id, err := ParseVolID(v)
		if err != nil {
			continue
		}
		p, err := s.Pool(ctx, id.Storage)
		if err == nil {
			err = p.Free(ctx, id.Name)
		}
		if err != nil {
			logf("could not free %s: %v", v, err)
		} else {
			logf("freed %s", v)
		}
	}
}
