package qmp

import (
	"context"
	"errors"
	"fmt"
)

// StatusInfo is the reply of query-status.
type StatusInfo struct {
	// Status is QEMU's run state: "prelaunch" (started with -S), "running",
	// "paused", "shutdown", "suspended", "inmigrate", "postmigrate",
	// "internal-error", "io-error", "guest-panicked", ...
	Status string `json:"status"`
	// Running is true only when vCPUs are executing.
	Running bool `json:"running"`
}

// Status runs query-status.
func (m *Monitor) Status(ctx context.Context) (StatusInfo, error) {
	var st StatusInfo
	err := m.Execute(ctx, "query-status", nil, &st)
	return st, err
}

// QueryVersion runs query-version. Version() gives the same answer from the
// greeting without a round trip.
func (m *Monitor) QueryVersion(ctx context.Context) (Version, error) {
	var vi versionInfo
	if err := m.Execute(ctx, "query-version", nil, &vi); err != nil {
		return Version{}, err
	}
	return vi.version(), nil
}

// Quit asks QEMU to exit and waits until it has closed the connection, so
// that on success the process is on its way out. The reply to quit can be
// lost in the race with QEMU closing the socket; that is not an error, but
// Quit on a monitor the caller already closed is.
func (m *Monitor) Quit(ctx context.Context) error {
	err := m.Execute(ctx, "quit", nil, nil)
	if err != nil && (!errors.Is(err, ErrClosed) || m.Err() == ErrClosed) {
		return err
	}
	select {
	case <-m.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("qmp quit: waiting for QEMU to close the connection: %w", ctx.Err())
	}
}
