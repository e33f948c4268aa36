//go:build !cgo

package pam

import (
	"context"
	"fmt"
)

// Authenticate always fails in builds without cgo: libpam is a C library.
// Arguments are still validated so callers see the same ErrAuth behaviour
// for malformed user names.
func Authenticate(ctx context.Context, service, user, password string) error {
	if _, err := checkArgs(service, user, password); err != nil {
		return err
	}
	return fmt.Errorf("pam: %w: corral was built without cgo", ErrUnavailable)
}

// Available reports that PAM cannot work in builds without cgo.
func Available() (bool, string) {
	return false, "corral was built without cgo, so it cannot call libpam"
}

// CheckService reports that PAM cannot work in builds without cgo.
func CheckService(service string) (bool, string) {
	return Available()
}
