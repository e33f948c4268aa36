package server

import (
	"context"

	"github.com/danielgtaylor/huma/v2"

	"github.com/corral-project/corral/api"
)

type versionOut struct{ Body api.VersionInfo }
type healthOut struct{ Body api.Health }

func (s *Server) systemRoutes() {
	register(s, huma.Operation{OperationID: "get-version", Method: "GET", Path: "/version", Summary: "Daemon and API version", Tags: []string{"system"}},
		Perm{Public: true}, func(ctx context.Context, _ *struct{}) (*versionOut, error) {
			return &versionOut{Body: api.VersionInfo{Version: s.Version, Commit: s.Commit, API: api.Version}}, nil
		})
	register(s, huma.Operation{OperationID: "get-health", Method: "GET", Path: "/health", Summary: "Liveness of this node", Tags: []string{"system"}},
		Perm{Public: true}, func(ctx context.Context, _ *struct{}) (*healthOut, error) {
			h := api.Health{Status: "ok", Node: s.Node, Store: "ok"}
			if !s.Store.Healthy() {
				h.Status, h.Store = "degraded", "no leader"
			}
			return &healthOut{Body: h}, nil
		})
}
