// Package storetest opens a real single-member store for tests of the
// packages built on it: no fake store exists, so what tests see is etcd.
package storetest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/corral-project/corral/internal/store"
)

// Open starts a real single-member etcd store in a temp dir, reachable
// only through unix sockets in it, and closes it when the test ends.
func Open(t testing.TB) *store.Store {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := store.Open(ctx, store.Config{Name: "n1", DataDir: dir, ClientURL: "unix://" + filepath.Join(dir, "client.sock"),
		PeerURL: "https://127.0.0.1:8008", PeerSocket: filepath.Join(dir, "peer.sock")}) // advertised only: nothing listens on TCP
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
