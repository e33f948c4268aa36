package node

import (
	"os"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// TestKVMStructLayout pins the Go mirrors of the kernel structs to the sizes
// encoded in the ioctl numbers (and printed by sizeof against linux/kvm.h).
func TestKVMStructLayout(t *testing.T) {
	tests := []struct {
		name  string
		size  uintptr
		ioctl uintptr // 0 if no ioctl encodes it
		want  uintptr
	}{
		{"kvm_userspace_memory_region", unsafe.Sizeof(kvmUserspaceMemoryRegion{}), kvmSetUserMemoryRegion, 32},
		{"kvm_regs", unsafe.Sizeof(kvmRegs{}), kvmSetRegs, 144},
		{"kvm_sregs", unsafe.Sizeof(kvmSregs{}), kvmSetSregs, 312},
		{"kvm_segment", unsafe.Sizeof(kvmSegment{}), 0, 24},
		{"kvm_dtable", unsafe.Sizeof(kvmDtable{}), 0, 16},
	}
	for _, tc := range tests {
		if tc.size != tc.want {
			t.Errorf("sizeof(%s) = %d, want %d", tc.name, tc.size, tc.want)
		}
		if tc.ioctl != 0 {
			if enc := (tc.ioctl >> 16) & 0x3fff; enc != tc.want {
				t.Errorf("ioctl %#x for %s encodes size %d, want %d", tc.ioctl, tc.name, enc, tc.want)
			}
		}
	}
	if got := unsafe.Offsetof(kvmRegs{}.RIP); got != 128 {
		t.Errorf("offsetof(kvm_regs, rip) = %d, want 128", got)
	}
	if got := unsafe.Offsetof(kvmSregs{}.CR4); got != 248 {
		t.Errorf("offsetof(kvm_sregs, cr4) = %d, want 248", got)
	}
}

// TestKVMProbeInterrupt runs a guest that never exits (`jmp $`) with a short
// timeout, exercising the immediate_exit + signal path that frees the vCPU
// thread when KVM_RUN hangs.
func TestKVMProbeInterrupt(t *testing.T) {
	if _, err := os.Stat("/dev/kvm"); err != nil {
		t.Skipf("skipping: %v", err)
	}
	const timeout = 300 * time.Millisecond
	start := time.Now()
	c := probeKVMCode(timeout, []byte{0xEB, 0xFE})
	elapsed := time.Since(start)
	t.Logf("endless guest after %v: %+v", elapsed, c)
	if !strings.Contains(c.Detail, "KVM_RUN did not return within 300ms") {
		// The guest never got to run (no permission, setup ioctl
		// failed, ...): nothing to interrupt.
		t.Skipf("skipping: KVM could not start the endless guest: %s", c.Detail)
	}
	if c.Available {
		t.Error("endless guest reported as available")
	}
	if max := timeout + interruptWait + time.Second; elapsed > max {
		t.Errorf("probe took %v, want < %v", elapsed, max)
	}
	if strings.Contains(c.Detail, "could not be interrupted") {
		// Only a failure if KVM otherwise works: then a vCPU must be
		// interruptible. On hosts where KVM_RUN hangs in the kernel the
		// thread staying blocked is the documented outcome.
		if full := probeKVM(KVMProbeTimeout); full.Available {
			t.Errorf("KVM works but a running vCPU could not be interrupted: %s", c.Detail)
		}
	}
}
