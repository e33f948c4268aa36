//go:build !(linux && amd64)

package node

import (
	"runtime"
	"time"

	"github.com/corral-project/corral/api"
)

// probeKVM is only implemented for linux/amd64: the test guest is x86 real
// mode code and the register layouts are x86's.
func probeKVM(time.Duration) api.Capability {
	return api.Capability{Detail: "KVM probe not implemented for " + runtime.GOOS + "/" + runtime.GOARCH}
}
