package guest

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/corral-project/corral/internal/errs"
	"github.com/corral-project/corral/internal/store"
	"github.com/corral-project/corral/internal/store/storetest"
	"github.com/corral-project/corral/internal/task"
)

type testRecord struct {
	VMID int    `json:"vmid"`
	Node string `json:"node"`
	Lock string `json:"lock,omitempty"`
}

func (r *testRecord) Meta() Meta           { return Meta{VMID: r.VMID, Node: r.Node, Type: "test"} }
func (r *testRecord) LockName() string     { return r.Lock }
func (r *testRecord) SetLockName(l string) { r.Lock = l }
func (r *testRecord) Protected() bool      { return false }

func newTestRecords(t *testing.T) *Records[testRecord, *testRecord] {
	st := storetest.Open(t)
	return NewRecords[testRecord]("VM", "test-guests", "n1", st, NewRegistry(st), slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func TestRecordsLockIsExclusiveAndNamed(t *testing.T) {
	r := newTestRecords(t)
	ctx := context.Background()
	if err := r.TakeLock(ctx, 100, "snapshot"); errs.KindOf(err) != errs.KindNotFound {
		t.Fatalf("lock of a missing guest: %v, want not found", err)
	}
	if _, err := r.Coll.Create(ctx, Key(100), testRecord{VMID: 100, Node: "n1"}); err != nil {
		t.Fatal(err)
	}
	// Many takers at once: exactly one wins, the others get 409 naming the lock.
	var won atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := r.TakeLock(ctx, 100, "snapshot")
			if err == nil {
				won.Add(1)
			} else if errs.KindOf(err) != errs.KindConflict {
				t.Errorf("lost lock race: %v, want conflict", err)
			}
		}()
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("%d holders of one lock", won.Load())
	}
	o, _ := r.Get(100)
	if err := r.CheckIdle(o); err == nil || err.Error() != "VM 100 is locked (snapshot)" {
		t.Fatalf("CheckIdle: %v", err)
	}
	r.ReleaseLock(100, "other") // not ours: kept
	if o, _ := r.Get(100); o.Value.Lock != "snapshot" {
		t.Fatal("a release of another lock name cleared the lock")
	}
	r.ReleaseLock(100, "snapshot")
	if _, err := r.Local(100); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

func TestRecordsLocalRefusesOtherNodes(t *testing.T) {
	r := newTestRecords(t)
	ctx := context.Background()
	r.Coll.Create(ctx, Key(101), testRecord{VMID: 101, Node: "n2"})
	if _, err := r.Local(101); errs.KindOf(err) != errs.KindConflict {
		t.Fatalf("Local of n2's guest: %v, want conflict", err)
	}
	if n, _ := r.Owner(101); n != "n2" {
		t.Fatalf("owner %q", n)
	}
	if got := len(r.List("n1")); got != 0 {
		t.Fatalf("List(n1) has %d", got)
	}
}

func TestLockedTaskQueuesAndReleases(t *testing.T) {
	r := newTestRecords(t)
	ctx := context.Background()
	r.Coll.Create(ctx, Key(100), testRecord{VMID: 100, Node: "n1"})
	unlock := r.Queue(100) // another operation holds the queue
	tm, err := task.NewManager(r.St, "n1", t.TempDir(), r.Log)
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	_, err = r.LockedTask(ctx, tm, 100, "disk", "qmmove", "root@pam", func(ctx context.Context, l *task.Log) error {
		close(started)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := r.Get(100); o.Value.Lock != "disk" {
		t.Fatalf("lock %q while queued, want disk", o.Value.Lock)
	}
	select {
	case <-started:
		t.Fatal("the task ran while another operation held the queue")
	case <-time.After(200 * time.Millisecond):
	}
	unlock()
	<-started
	deadline := time.Now().Add(5 * time.Second)
	for {
		if o, _ := r.Get(100); o.Value.Lock == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("lock not released after the task")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRecoverLock(t *testing.T) {
	for lock, want := range map[string]Recovery{"": Idle, "create": HalfMade, "clone": HalfMade, "snapshot": Cleared, "disk": Cleared, "rollback": Cleared} {
		if got := RecoverLock(lock); got != want {
			t.Errorf("RecoverLock(%q) = %v, want %v", lock, got, want)
		}
	}
}

// Listing converts guests concurrently (a running guest's status is a
// round trip to its process) and keeps the ID order.
func TestListAsIsConcurrentAndOrdered(t *testing.T) {
	r := newTestRecords(t)
	ctx := context.Background()
	for id := 100; id < 120; id++ {
		if _, err := r.Coll.Create(ctx, Key(id), testRecord{VMID: id, Node: "n1"}); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	got := ListAs(r, "", func(o store.Object[testRecord]) int {
		time.Sleep(100 * time.Millisecond)
		return o.Value.VMID
	})
	if d := time.Since(start); d > time.Second {
		t.Errorf("20 conversions of 100 ms took %v: not concurrent", d)
	}
	for i, id := range got {
		if id != 100+i {
			t.Fatalf("order: %v", got)
		}
	}
}
