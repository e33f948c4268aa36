package client

import (
	"context"
	"net/http"

	"github.com/corral-project/corral/api"
)

// MetricsCurrent returns the latest sample of every node, running guest and
// pool the caller may see.
func (c *Client) MetricsCurrent(ctx context.Context) (api.MetricsCurrent, error) {
	var out api.MetricsCurrent
	_, err := c.Do(ctx, http.MethodGet, "/cluster/metrics/current", nil, nil, &out)
	return out, err
}
