// Package storetest opens a real single-member store for tests of the
// packages built on it: no fake store exists, so what tests see is etcd.
package storetest

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/corral-project/corral/internal/store"
)

// Open starts a real single-member etcd store in a temp dir (client on a
// unix socket in it, peer on a free loopback port) and closes it when the
// test ends.
func Open(t testing.TB) *store.Store {
	t.Helper()
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	peer := fmt.Sprintf("http://%s", l.Addr())
	l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := store.Open(ctx, store.Config{Name: "n1", DataDir: dir,
		ClientURL: "unix://" + filepath.Join(dir, "client.sock"), PeerURL: peer})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
