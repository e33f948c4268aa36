package node

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/corral-project/corral/api"
)

// KVMProbeTimeout bounds how long the probe waits for its test guest.
const KVMProbeTimeout = 2 * time.Second

// kvmHungDetail is the Detail reported when the test guest never exits. It
// is what nested setups without usable hardware virtualization look like:
// /dev/kvm opens and a VM can be created, but the vCPU never runs.
const kvmHungDetail = "KVM_RUN did not return within 2s (nested virtualization not usable?); guests will run under TCG"

var (
	kvmOnce   sync.Once
	kvmDone   = make(chan struct{})
	kvmResult api.Capability
)

// KVM reports whether KVM can actually run a guest on this host.
//
// /dev/kvm existing is not enough: in nested setups the device opens and VMs
// can be created, but vCPUs never execute and KVM_RUN blocks forever, which
// would make every VM started with -enable-kvm hang. So the probe boots a
// tiny real-mode guest (out 0x10, 0x42; hlt) and expects both exits within
// KVMProbeTimeout.
//
// When KVM_RUN does not return in time the probe kicks the vCPU thread out
// of the kernel (kvm_run.immediate_exit plus a signal, as QEMU does). Should
// even that fail, the thread, the VM's file descriptors and its page of
// guest memory are abandoned: the thread stays blocked in the kernel for the
// life of the process, which costs one OS thread but breaks nothing else.
//
// The probe runs once per process (it costs a VM creation and, on broken
// hosts, the full timeout); later calls return the cached result. ctx only
// bounds how long this call waits: the probe itself keeps running in the
// background and is cached when it finishes.
func KVM(ctx context.Context) (api.Capability, error) {
	kvmOnce.Do(func() {
		go func() {
			kvmResult = probeKVM(KVMProbeTimeout)
			close(kvmDone)
		}()
	})
	select {
	case <-kvmDone:
		return kvmResult, nil
	case <-ctx.Done():
		return api.Capability{}, fmt.Errorf("waiting for KVM probe: %w", context.Cause(ctx))
	}
}

// kvmBackend names the loaded KVM vendor module, which tells an operator
// why KVM behaves as it does (kvm_intel/kvm_amd use hardware virtualization,
// kvm_pvm is the software "pagetable-based" backend used in nested clouds).
func kvmBackend() string {
	var found []string
	for _, m := range []string{"kvm_intel", "kvm_amd", "kvm_pvm"} {
		if _, err := os.Stat("/sys/module/" + m); err == nil {
			found = append(found, m)
		}
	}
	return strings.Join(found, "+")
}
