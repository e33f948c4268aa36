package access

import (
	"fmt"
	"testing"

	"github.com/corral-project/corral/api"
)

func BenchmarkTenThousandGuests(b *testing.B) {
	acl := []api.ACLEntry{{Path: "/", User: "admin@corral", Role: "Administrator", Propagate: true}, {Path: "/vms/5000", Group: "g", Role: "VMUser"}}
	for b.Loop() {
		ev := NewEvaluator(acl, BuiltinRole, Principal{User: "admin@corral"}, []string{"g"})
		for i := range 10000 {
			if !ev.Has(fmt.Sprintf("/vms/%d", i+100), "VM.Audit") {
				b.Fatal("denied")
			}
		}
	}
}
