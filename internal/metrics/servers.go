package metrics

import (
	"context"
	"errors"
	"strings"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
	"github.com/corral-project/corral/internal/store"
)

// Servers are the cluster-wide external metric server definitions. Tokens
// live in the secret keyspace and are never returned.
type Servers struct {
	st     *store.Store
	coll   *store.Collection[api.MetricServer]
	tokens *store.Collection[string]
}

// NewServers returns the definitions kept in st.
func NewServers(st *store.Store) *Servers {
	return &Servers{st: st, coll: store.NewCollection[api.MetricServer](st, "cluster/metrics/servers"),
		tokens: store.NewCollection[string](st, "secret/metric-tokens")}
}

func (s *Servers) fill(o store.Object[api.MetricServer]) api.MetricServer {
	m := o.Value
	m.Digest = o.Digest
	_, err := s.tokens.Get(m.ID)
	m.HasToken = err == nil
	return m
}

// List returns every definition.
func (s *Servers) List() []api.MetricServer {
	out := []api.MetricServer{}
	for _, o := range s.coll.List() {
		out = append(out, s.fill(o))
	}
	return out
}

// Get returns one definition.
func (s *Servers) Get(id string) (api.MetricServer, error) {
	o, err := s.coll.Get(id)
	if err != nil {
		return api.MetricServer{}, errs.NotFound("metric server %s does not exist", id)
	}
	return s.fill(o), nil
}

// Configs are the definitions with their tokens, for the exporter.
func (s *Servers) Configs() []ServerConfig {
	var out []ServerConfig
	for _, o := range s.coll.List() {
		c := ServerConfig{MetricServer: o.Value}
		if t, err := s.tokens.Get(o.Value.ID); err == nil {
			c.Token = t.Value
		}
		out = append(out, c)
	}
	return out
}

func validate(m *api.MetricServer) error {
	switch m.Type {
	case api.MetricInfluxDB:
		if m.Protocol == "" {
			m.Protocol = "http"
		}
		if m.Protocol == "tcp" {
			return errs.Invalid("protocol", "influxdb takes http, https or udp")
		}
		if m.Bucket == "" {
			m.Bucket = "corral"
		}
	case api.MetricGraphite:
		if m.Protocol == "" {
			m.Protocol = "tcp"
		}
		if m.Protocol != "tcp" && m.Protocol != "udp" {
			return errs.Invalid("protocol", "graphite takes tcp or udp")
		}
		if strings.HasPrefix(m.PathPrefix, ".") || strings.HasSuffix(m.PathPrefix, ".") || strings.Contains(m.PathPrefix, "/") {
			return errs.Invalid("path_prefix", "a graphite prefix is dot-separated words")
		}
	default:
		return errs.Invalid("type", "must be influxdb or graphite")
	}
	if strings.ContainsAny(m.Server, " /?#@") {
		return errs.Invalid("server", "must be a host name or address")
	}
	return nil
}

// Create adds a definition (and its token) in one transaction.
func (s *Servers) Create(ctx context.Context, in api.MetricServerCreate) (api.MetricServer, error) {
	m := in.MetricServer
	m.Digest, m.HasToken = "", false
	if err := validate(&m); err != nil {
		return api.MetricServer{}, err
	}
	if in.Token != "" && (m.Type != api.MetricInfluxDB || m.Protocol == "udp") {
		return api.MetricServer{}, errs.Invalid("token", "only InfluxDB over HTTP(S) takes a token")
	}
	op, err := s.coll.PutOp(m.ID, m, 0)
	if err != nil {
		return api.MetricServer{}, err
	}
	ops := []store.Op{op}
	if in.Token != "" {
		top, err := s.tokens.PutOp(m.ID, in.Token, -1)
		if err != nil {
			return api.MetricServer{}, err
		}
		ops = append(ops, top)
	}
	if _, err := s.st.Apply(ctx, ops...); errors.Is(err, store.ErrExists) {
		return api.MetricServer{}, errs.Conflict("metric server %s already exists", m.ID)
	} else if err != nil {
		return api.MetricServer{}, err
	}
	return s.Get(m.ID)
}

// Update replaces a definition; an empty token keeps the old one.
func (s *Servers) Update(ctx context.Context, id, ifMatch string, in api.MetricServerCreate) (api.MetricServer, error) {
	cur, err := s.coll.Get(id)
	if err != nil {
		return api.MetricServer{}, errs.NotFound("metric server %s does not exist", id)
	}
	if ifMatch != "" && ifMatch != cur.Digest {
		return api.MetricServer{}, &errs.Error{Kind: errs.KindPrecondition, Msg: "the metric server was changed since it was read"}
	}
	m := in.MetricServer
	m.ID, m.Digest, m.HasToken = id, "", false
	if err := validate(&m); err != nil {
		return api.MetricServer{}, err
	}
	op, err := s.coll.PutOp(id, m, cur.Rev)
	if err != nil {
		return api.MetricServer{}, err
	}
	ops := []store.Op{op}
	if in.Token != "" {
		top, _ := s.tokens.PutOp(id, in.Token, -1)
		ops = append(ops, top)
	}
	if _, err := s.st.Apply(ctx, ops...); err != nil {
		return api.MetricServer{}, err
	}
	return s.Get(id)
}

// Delete removes a definition and its token.
func (s *Servers) Delete(ctx context.Context, id, ifMatch string) error {
	cur, err := s.coll.Get(id)
	if err != nil {
		return errs.NotFound("metric server %s does not exist", id)
	}
	if ifMatch != "" && ifMatch != cur.Digest {
		return &errs.Error{Kind: errs.KindPrecondition, Msg: "the metric server was changed since it was read"}
	}
	ops := []store.Op{s.coll.DeleteOp(id, cur.Rev)}
	if _, err := s.tokens.Get(id); err == nil {
		ops = append(ops, store.Op{Key: s.tokens.Key(id), Delete: true, Rev: -1})
	}
	_, err = s.st.Apply(ctx, ops...)
	return err
}
