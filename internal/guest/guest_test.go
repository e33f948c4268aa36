package guest

import (
	"testing"

	"github.com/corral-project/corral/internal/errs"
)

func TestCheckPower(t *testing.T) {
	vm := Power{Kind: "VM", Running: []string{"stop", "shutdown", "reboot", "reset", "suspend"}, Paused: "paused"}
	tests := []struct {
		action, state string
		template      bool
		want          errs.Kind // 0: allowed
	}{
		{"start", "stopped", false, 0},
		{"start", "running", false, errs.KindConflict},
		{"start", "stopped", true, errs.KindConflict},
		{"stop", "running", false, 0},
		{"stop", "paused", false, 0},
		{"shutdown", "stopped", false, errs.KindConflict},
		{"resume", "paused", false, 0},
		{"resume", "running", false, errs.KindConflict},
		{"hibernate", "running", false, errs.KindInvalid},
	}
	for _, tt := range tests {
		err := vm.CheckPower(100, tt.action, tt.state, tt.template)
		if got := errs.KindOf(err); got != tt.want {
			t.Errorf("%s while %s (template %v): %v, want kind %v", tt.action, tt.state, tt.template, err, tt.want)
		}
	}
}
