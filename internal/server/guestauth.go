package server

import "github.com/corral-project/corral/internal/guest"

// Allowed makes the caller the guest core's Authorizer: the drivers ask it
// about what a request names beyond its own guest (another guest's volume,
// a bridge or vnet) without importing the server.
func (c *Caller) Allowed(path string, privs ...string) bool {
	return c != nil && c.Ev.Has(path, privs...)
}

var _ guest.Authorizer = (*Caller)(nil)
