package storetest

import (
	"context"
	"testing"

	"github.com/corral-project/corral/internal/store"
)

func TestOpen(t *testing.T) {
	s := Open(t)
	if _, err := s.Apply(context.Background(), store.Op{Key: store.Prefix + "x", Value: []byte(`{"schema":1,"data":1}`)}); err != nil {
		t.Fatal(err)
	}
}
