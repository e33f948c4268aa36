package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/corral-project/corral/api"
)

// Nodes lists the cluster members the caller may audit.
func (c *Client) Nodes(ctx context.Context) ([]api.Node, error) {
	var out []api.Node
	if _, err := c.Do(ctx, http.MethodGet, "/nodes", nil, nil, &out); err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	return out, nil
}

// NodeStatus returns a node's live status and virtualization capabilities.
func (c *Client) NodeStatus(ctx context.Context, node string) (*api.NodeStatus, error) {
	var s api.NodeStatus
	if _, err := c.Do(ctx, http.MethodGet, PathJoin("nodes", node, "status"), nil, nil, &s); err != nil {
		return nil, fmt.Errorf("get status of node %s: %w", node, err)
	}
	return &s, nil
}

// ClusterResources lists cluster resources; typ filters by type ("node",
// "qemu", "lxc", "storage") and may be empty for all.
func (c *Client) ClusterResources(ctx context.Context, typ string) ([]api.Resource, error) {
	var q url.Values
	if typ != "" {
		q = url.Values{"type": {typ}}
	}
	var out []api.Resource
	if _, err := c.Do(ctx, http.MethodGet, "/cluster/resources", q, nil, &out); err != nil {
		return nil, fmt.Errorf("list cluster resources: %w", err)
	}
	return out, nil
}

// NextID reserves and returns a free guest ID.
func (c *Client) NextID(ctx context.Context) (*api.NextID, error) {
	var n api.NextID
	if _, err := c.Do(ctx, http.MethodGet, "/cluster/nextid", nil, nil, &n); err != nil {
		return nil, fmt.Errorf("get next guest ID: %w", err)
	}
	return &n, nil
}
