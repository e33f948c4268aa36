package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// SchemaVersion is written into every value; a reader refuses a value
// from a newer schema rather than silently dropping fields it doesn't know.
const SchemaVersion = 1

// envelope is the on-disk form of every typed value.
type envelope struct {
	Schema int             `json:"schema"`
	Data   json.RawMessage `json:"data"`
}

// Object is a decoded value with the revision it was read at and its digest.
type Object[T any] struct {
	Key    string
	Value  T
	Rev    int64
	Digest string
}

// Collection is a typed view of all keys under one prefix.
type Collection[T any] struct {
	s      *Store
	prefix string
	tname  string // key of decoded values memoised on cache entries
}

// NewCollection returns the collection of T stored under Prefix+name+"/".
func NewCollection[T any](s *Store, name string) *Collection[T] {
	return &Collection[T]{s: s, prefix: Prefix + strings.Trim(name, "/") + "/", tname: reflect.TypeFor[T]().String()}
}

// Key is the full key of id.
func (c *Collection[T]) Key(id string) string { return c.prefix + id }

// Prefix is the collection's key prefix.
func (c *Collection[T]) Prefix() string { return c.prefix }

// Digest is the digest of a stored value: it changes whenever the value does.
func Digest(raw []byte) string {
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:16])
}

// Encode wraps v in the versioned envelope.
func Encode(v any) ([]byte, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("store: encode: %w", err)
	}
	return json.Marshal(envelope{Schema: SchemaVersion, Data: data})
}

func decode[T any](kv *KV, tname string) (T, error) {
	var zero T
	if v, ok := kv.decoded.Load(tname); ok {
		return v.(T), nil
	}
	var env envelope
	if err := json.Unmarshal(kv.Value, &env); err != nil {
		return zero, fmt.Errorf("store: decode %s: %w", kv.Key, err)
	}
	if env.Schema > SchemaVersion {
		return zero, fmt.Errorf("store: %s has schema %d, newer than this daemon's %d", kv.Key, env.Schema, SchemaVersion)
	}
	var v T
	if err := json.Unmarshal(env.Data, &v); err != nil {
		return zero, fmt.Errorf("store: decode %s: %w", kv.Key, err)
	}
	kv.decoded.Store(tname, v)
	return v, nil
}

// Get reads id from the cache. Callers must treat the value as read-only:
// decoded values are shared between readers.
func (c *Collection[T]) Get(id string) (Object[T], error) {
	kv, ok := c.s.Get(c.Key(id))
	if !ok {
		return Object[T]{}, ErrNotFound
	}
	v, err := decode[T](kv, c.tname)
	if err != nil {
		return Object[T]{}, err
	}
	return Object[T]{Key: kv.Key, Value: v, Rev: kv.ModRev, Digest: kv.Digest()}, nil
}

// List returns every object in the collection, sorted by key. Entries that
// fail to decode are skipped and logged: one bad value must not hide the rest.
func (c *Collection[T]) List() []Object[T] {
	kvs := c.s.List(c.prefix)
	out := make([]Object[T], 0, len(kvs))
	for _, kv := range kvs {
		v, err := decode[T](kv, c.tname)
		if err != nil {
			c.s.log.Error("skipping undecodable store value", "key", kv.Key, "err", err)
			continue
		}
		out = append(out, Object[T]{Key: kv.Key, Value: v, Rev: kv.ModRev, Digest: kv.Digest()})
	}
	return out
}

// Create stores v under id; ErrExists if id is taken.
func (c *Collection[T]) Create(ctx context.Context, id string, v T) (int64, error) {
	op, err := c.PutOp(id, v, 0)
	if err != nil {
		return 0, err
	}
	return c.s.Apply(ctx, op)
}

// PutOp builds a CAS write of v for use in a multi-key Apply.
func (c *Collection[T]) PutOp(id string, v T, rev int64) (Op, error) {
	raw, err := Encode(v)
	if err != nil {
		return Op{}, err
	}
	return Op{Key: c.Key(id), Value: raw, Rev: rev}, nil
}

// DeleteOp builds a CAS delete for use in a multi-key Apply.
func (c *Collection[T]) DeleteOp(id string, rev int64) Op {
	return Op{Key: c.Key(id), Delete: true, Rev: rev}
}

// Update reads id, applies fn to a copy and writes it back if nothing else
// wrote in between. When ifDigest is non-empty it must match the current
// digest (an HTTP If-Match) or ErrConflict is returned without retrying.
// Otherwise a lost race is retried a few times with the fresh value, so
// concurrent writers to different fields don't lose each other's updates.
func (c *Collection[T]) Update(ctx context.Context, id, ifDigest string, fn func(*T) error) (Object[T], error) {
	for attempt := 0; ; attempt++ {
		cur, err := c.Get(id)
		if err != nil {
			return Object[T]{}, err
		}
		if ifDigest != "" && ifDigest != cur.Digest {
			return Object[T]{}, ErrConflict
		}
		v := clone(cur.Value)
		if err := fn(&v); err != nil {
			return Object[T]{}, err
		}
		op, err := c.PutOp(id, v, cur.Rev)
		if err != nil {
			return Object[T]{}, err
		}
		rev, err := c.s.Apply(ctx, op)
		if errors.Is(err, ErrConflict) && ifDigest == "" && attempt < 5 {
			continue
		}
		if err != nil {
			return Object[T]{}, err
		}
		return Object[T]{Key: op.Key, Value: v, Rev: rev, Digest: Digest(op.Value)}, nil
	}
}

// Delete removes id if its digest still matches ifDigest (when given).
func (c *Collection[T]) Delete(ctx context.Context, id, ifDigest string) error {
	cur, err := c.Get(id)
	if err != nil {
		return err
	}
	if ifDigest != "" && ifDigest != cur.Digest {
		return ErrConflict
	}
	_, err = c.s.Apply(ctx, c.DeleteOp(id, cur.Rev))
	return err
}

// clone deep-copies v through JSON so fn can't mutate the shared cached value.
func clone[T any](v T) T {
	raw, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var out T
	if err := json.Unmarshal(raw, &out); err != nil {
		return v
	}
	return out
}
