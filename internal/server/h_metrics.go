package server

import (
	"context"
	"net/http"
	"strconv"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
	"github.com/corral-project/corral/internal/guest"
	"github.com/corral-project/corral/internal/metrics"
)

type RRDQuery struct {
	Timeframe string `query:"timeframe" enum:"hour,day,week,month,year" default:"hour"`
	CF        string `query:"cf" enum:"AVERAGE,MAX" default:"AVERAGE"`
}
type nodeRRDIn struct {
	NodeParam
	RRDQuery
}
type guestRRDIn struct {
	GuestIDParam
	RRDQuery
}
type storageRRDIn struct {
	NodeStorageParam
	RRDQuery
}
type rrdOut struct{ Body api.RRDData }
type metricsCurrentOut struct{ Body api.MetricsCurrent }
type MetricServerParam struct {
	ID string `path:"id" maxLength:"32" pattern:"^[a-z][a-z0-9_-]*$"`
}
type metricServersOut struct{ Body []api.MetricServerStatus }
type metricServerOut struct {
	ETag string `header:"ETag"`
	Body api.MetricServerStatus
}
type metricServerCreateIn struct {
	MetricServerParam
	Body api.MetricServerCreate
}
type metricServerUpdateIn struct {
	MetricServerParam
	IfMatchParam
	Body api.MetricServerCreate
}
type metricServerDeleteIn struct {
	MetricServerParam
	IfMatchParam
}

// rrd answers history of an entity owned by node. Archives are node-local:
// another node's history will be fetched from that node over the cluster
// channel (the hook is here); until then s.local refuses with 409.
func (s *Server) rrd(node, kind, id string, q RRDQuery) (*rrdOut, error) {
	if s.Metrics == nil {
		return nil, errs.Conflict("metrics are not enabled on this node")
	}
	if err := s.local(node); err != nil {
		return nil, err
	}
	d, err := s.Metrics.RRD(kind, id, q.Timeframe, q.CF)
	if err != nil {
		return nil, err
	}
	return &rrdOut{Body: d}, nil
}

// guestRRD checks that the guest exists with the expected type.
func (s *Server) guestRRD(vmid int, typ string, q RRDQuery) (*rrdOut, error) {
	g, err := s.Guests.Guests.Get(guest.Key(vmid))
	if err != nil || g.Value.Type != typ {
		return nil, errs.NotFound("%s %d does not exist", map[string]string{api.GuestVM: "VM", api.GuestContainer: "container"}[typ], vmid)
	}
	return s.rrd(g.Value.Node, metrics.KindGuest, strconv.Itoa(vmid), q)
}

// metricsFilter limits metrics to what the caller may audit.
func metricsFilter(c *Caller) metrics.Filter {
	return func(kind, id string) bool {
		switch kind {
		case metrics.KindNode:
			return c.Ev.Has("/nodes/"+id, "Sys.Audit")
		case metrics.KindGuest:
			return c.Ev.Has("/vms/"+id, "VM.Audit")
		case metrics.KindStorage:
			return c.Ev.Any("/storage/"+id, auditPrivs...)
		}
		return false
	}
}

func (s *Server) metricsRoutes() {
	tags := []string{"metrics"}
	register(s, huma.Operation{OperationID: "node-rrddata", Method: "GET", Path: "/nodes/{node}/rrddata", Summary: "A node's statistics history", Tags: tags},
		Perm{Path: "/nodes/{node}", Privs: []string{"Sys.Audit"}}, func(ctx context.Context, in *nodeRRDIn) (*rrdOut, error) {
			return s.rrd(in.Node, metrics.KindNode, in.Node, in.RRDQuery)
		})
	register(s, huma.Operation{OperationID: "vm-rrddata", Method: "GET", Path: "/vms/{vmid}/rrddata", Summary: "A VM's statistics history", Tags: tags},
		Perm{Path: "/vms/{vmid}", Privs: []string{"VM.Audit"}}, func(ctx context.Context, in *guestRRDIn) (*rrdOut, error) {
			return s.guestRRD(in.VMID, api.GuestVM, in.RRDQuery)
		})
	register(s, huma.Operation{OperationID: "container-rrddata", Method: "GET", Path: "/containers/{vmid}/rrddata", Summary: "A container's statistics history", Tags: tags},
		Perm{Path: "/vms/{vmid}", Privs: []string{"VM.Audit"}}, func(ctx context.Context, in *guestRRDIn) (*rrdOut, error) {
			return s.guestRRD(in.VMID, api.GuestContainer, in.RRDQuery)
		})
	register(s, huma.Operation{OperationID: "storage-rrddata", Method: "GET", Path: "/nodes/{node}/storage/{storage}/rrddata", Summary: "A pool's usage history on a node", Tags: tags},
		Perm{Path: "/storage/{storage}", Privs: auditPrivs, Any: true}, func(ctx context.Context, in *storageRRDIn) (*rrdOut, error) {
			if _, err := s.Storage.Get(in.Storage); err != nil {
				return nil, err
			}
			return s.rrd(in.Node, metrics.KindStorage, in.Storage, in.RRDQuery)
		})
	register(s, huma.Operation{OperationID: "metrics-current", Method: "GET", Path: "/cluster/metrics/current",
		Summary: "The latest sample of the nodes, running guests and pools the caller may see", Tags: tags},
		Perm{Authenticated: true}, func(ctx context.Context, _ *struct{}) (*metricsCurrentOut, error) {
			if s.Metrics == nil {
				return nil, errs.Conflict("metrics are not enabled on this node")
			}
			allow := metricsFilter(caller(ctx))
			cur := s.Metrics.Current() // this node's; other nodes' arrive with cluster forwarding
			out := api.MetricsCurrent{Nodes: []api.NodeMetrics{}, Guests: []api.GuestMetrics{}, Storage: []api.StorageMetrics{}}
			for _, n := range cur.Nodes {
				if allow(metrics.KindNode, n.Node) {
					out.Nodes = append(out.Nodes, n)
				}
			}
			for _, g := range cur.Guests {
				if allow(metrics.KindGuest, strconv.Itoa(g.VMID)) {
					out.Guests = append(out.Guests, g)
				}
			}
			for _, p := range cur.Storage {
				if allow(metrics.KindStorage, p.Storage) {
					out.Storage = append(out.Storage, p)
				}
			}
			return &metricsCurrentOut{Body: out}, nil
		})
	// GET /metrics is routed here (see ServeHTTP). Scrapers authenticate
	// with an API token; they get the series their token may audit.
	register(s, huma.Operation{OperationID: "prometheus-metrics", Method: "GET", Path: "/metrics",
		Summary: "This node's latest sample in the Prometheus text format (also at /metrics)", Tags: tags},
		Perm{Authenticated: true}, func(ctx context.Context, _ *struct{}) (*huma.StreamResponse, error) {
			if s.Metrics == nil {
				return nil, errs.Conflict("metrics are not enabled on this node")
			}
			reg := prometheus.NewRegistry()
			if err := reg.Register(s.Metrics.Collector(metricsFilter(caller(ctx)))); err != nil {
				return nil, err
			}
			return &huma.StreamResponse{Body: func(hctx huma.Context) {
				r, w := humago.Unwrap(hctx)
				promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}).ServeHTTP(w, r)
			}}, nil
		})
	s.metricServerRoutes()
}

func (s *Server) metricServerStatus(m api.MetricServer) api.MetricServerStatus {
	st := api.MetricServerStatus{MetricServer: m}
	if s.Metrics != nil {
		st.Stats = s.Metrics.ExportStats()[m.ID]
	}
	return st
}

func (s *Server) metricServerRoutes() {
	tags := []string{"metrics"}
	p := "/cluster/metrics/server"
	read := Perm{Path: "/", Privs: []string{"Sys.Audit"}}
	write := Perm{Path: "/", Privs: []string{"Sys.Modify"}}
	register(s, huma.Operation{OperationID: "list-metric-servers", Method: "GET", Path: p, Summary: "External metric servers", Tags: tags},
		read, func(ctx context.Context, _ *struct{}) (*metricServersOut, error) {
			out := []api.MetricServerStatus{}
			for _, m := range s.MetricServers.List() {
				out = append(out, s.metricServerStatus(m))
			}
			return &metricServersOut{Body: out}, nil
		})
	register(s, huma.Operation{OperationID: "get-metric-server", Method: "GET", Path: p + "/{id}", Summary: "One external metric server and this node's export state", Tags: tags},
		read, func(ctx context.Context, in *MetricServerParam) (*metricServerOut, error) {
			m, err := s.MetricServers.Get(in.ID)
			if err != nil {
				return nil, err
			}
			return &metricServerOut{ETag: etag(m.Digest), Body: s.metricServerStatus(m)}, nil
		})
	register(s, huma.Operation{OperationID: "create-metric-server", Method: "POST", Path: p + "/{id}", Summary: "Define an external metric server", Tags: tags, DefaultStatus: http.StatusCreated},
		write, func(ctx context.Context, in *metricServerCreateIn) (*metricServerOut, error) {
			if in.Body.ID != "" && in.Body.ID != in.ID {
				return nil, errs.Invalid("id", "the body's id differs from the path's")
			}
			in.Body.ID = in.ID
			m, err := s.MetricServers.Create(ctx, in.Body)
			if err != nil {
				return nil, err
			}
			return &metricServerOut{ETag: etag(m.Digest), Body: s.metricServerStatus(m)}, nil
		})
	register(s, huma.Operation{OperationID: "update-metric-server", Method: "PUT", Path: p + "/{id}", Summary: "Replace an external metric server's definition (an empty token keeps the old one)", Tags: tags},
		write, func(ctx context.Context, in *metricServerUpdateIn) (*metricServerOut, error) {
			m, err := s.MetricServers.Update(ctx, in.ID, ifMatch(in.IfMatch), in.Body)
			if err != nil {
				return nil, err
			}
			return &metricServerOut{ETag: etag(m.Digest), Body: s.metricServerStatus(m)}, nil
		})
	register(s, huma.Operation{OperationID: "delete-metric-server", Method: "DELETE", Path: p + "/{id}", Summary: "Remove an external metric server", Tags: tags, DefaultStatus: http.StatusNoContent},
		write, func(ctx context.Context, in *metricServerDeleteIn) (*struct{}, error) {
			return nil, s.MetricServers.Delete(ctx, in.ID, ifMatch(in.IfMatch))
		})
}
