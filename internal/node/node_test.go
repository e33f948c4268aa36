package node

import (
	"context"
	"encoding/json"
	"testing"
	"time"
)

func TestStatus(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), KVMProbeTimeout+20*time.Second)
	defer cancel()
	before := time.Now()
	st, err := Status(ctx, "testnode")
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	js, _ := json.MarshalIndent(st, "", "  ")
	t.Logf("status: %s", js)

	if st.Node != "testnode" {
		t.Errorf("Node = %q", st.Node)
	}
	if st.Kernel == "" {
		t.Error("Kernel is empty")
	}
	if st.CPUs < 1 {
		t.Errorf("CPUs = %d, want >= 1", st.CPUs)
	}
	if st.Memory.Total == 0 || st.Memory.Used > st.Memory.Total || st.Memory.Used+st.Memory.Free != st.Memory.Total {
		t.Errorf("Memory = %+v, want total > 0 and used+free = total", st.Memory)
	}
	if st.Swap.Used > st.Swap.Total {
		t.Errorf("Swap = %+v, used > total", st.Swap)
	}
	if st.RootFS.Total == 0 || st.RootFS.Used > st.RootFS.Total || st.RootFS.Free > st.RootFS.Total {
		t.Errorf("RootFS = %+v, want total > 0 and used, free <= total", st.RootFS)
	}
	if st.Uptime <= 0 {
		t.Errorf("Uptime = %d, want > 0", st.Uptime)
	}
	for i, l := range st.Load {
		if l < 0 {
			t.Errorf("Load[%d] = %v, want >= 0", i, l)
		}
	}
	if st.Time.Before(before.Add(-time.Second)) || st.Time.After(time.Now().Add(time.Second)) {
		t.Errorf("Time = %v, not now", st.Time)
	}
	for name, c := range map[string]struct {
		avail  bool
		detail string
	}{
		"kvm": {st.KVM.Available, st.KVM.Detail}, "qemu": {st.QEMU.Available, st.QEMU.Detail}, "lxc": {st.LXC.Available, st.LXC.Detail},
	} {
		if !c.avail && c.detail == "" {
			t.Errorf("%s unavailable without a Detail saying why", name)
		}
	}
}

func TestStatusCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Status(ctx, "testnode"); err == nil {
		t.Error("Status with cancelled context succeeded")
	}
}
