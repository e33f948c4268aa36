package node

import (
	"context"
	"testing"
	"time"
)

func TestKVMProbe(t *testing.T) {
	// The probe waits KVMProbeTimeout, then up to interruptWait kicking
	// the vCPU; allow generous margin for a loaded CI machine.
	limit := KVMProbeTimeout + time.Second + 2*time.Second
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	start := time.Now()
	c, err := KVM(ctx)
	elapsed := time.Since(start)
	if err != nil {
		t.Fatalf("KVM probe did not finish within %v: %v", limit, err)
	}
	t.Logf("KVM probe after %v: available=%v version=%q detail=%q", elapsed, c.Available, c.Version, c.Detail)
	if c.Available && c.Version == "" {
		t.Error("KVM available but no version")
	}
	if !c.Available && c.Detail == "" {
		t.Error("KVM unavailable but Detail does not say why")
	}

	// Cached: a second call answers at once with the same result.
	start = time.Now()
	c2, err := KVM(context.Background())
	if err != nil || c2 != c {
		t.Errorf("second KVM() = %+v, %v; want cached %+v", c2, err, c)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("cached KVM() took %v", d)
	}
}
