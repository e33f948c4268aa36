package network

import (
	"errors"

	"github.com/corral-project/corral/internal/errs"
	"github.com/corral-project/corral/internal/store"
)

// StoreErr maps the store's sentinel errors about what (e.g. "zone z1") to
// the API's error kinds; other errors pass through.
func StoreErr(err error, what string) error {
	switch {
	case errors.Is(err, store.ErrExists):
		return errs.Conflict("%s already exists", what)
	case errors.Is(err, store.ErrNotFound):
		return errs.NotFound("%s does not exist", what)
	case errors.Is(err, store.ErrConflict):
		return &errs.Error{Kind: errs.KindPrecondition, Msg: what + " was changed by someone else; reload and retry"}
	}
	return err
}

// List returns a collection's values with their digests filled in by dig,
// never nil.
func List[T any](c *store.Collection[T], dig func(*T, string)) []T {
	out := []T{}
	for _, o := range c.List() {
		v := o.Value
		dig(&v, o.Digest)
		out = append(out, v)
	}
	return out
}
