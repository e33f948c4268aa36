package qemu

import (
	"slices"
	"strings"
	"testing"

	"github.com/corral-project/corral/api"
)

// argAfter returns the value following flag in args ("" if absent).
func argAfter(args []string, flag string) string {
	if i := slices.Index(args, flag); i >= 0 && i+1 < len(args) {
		return args[i+1]
	}
	return ""
}

func TestBuildArgsCPUAndMemory(t *testing.T) {
	base := api.VMConfig{VMID: 100, Cores: 2, Sockets: 2, CPU: "x86-64-v2", Memory: 512, Machine: "q35", BIOS: "seabios", VGA: "std", UUID: "u"}
	tests := []struct {
		name            string
		mod             func(*api.VMConfig)
		kvm             bool
		smp, mem, cpu   string
		hasDevicePrefix string
	}{
		{"all vCPUs, fixed memory", func(c *api.VMConfig) {}, false,
			"4,sockets=2,cores=2,threads=1,maxcpus=4", "512", "qemu64,+cx16,+lahf_lm,+popcnt,+sse4.1,+sse4.2,+ssse3", ""},
		{"fewer vCPUs online", func(c *api.VMConfig) { c.VCPUs = 1; c.Hotplug = []string{"cpu"} }, false,
			"1,sockets=2,cores=2,threads=1,maxcpus=4", "512", "", ""},
		{"memory hotplug, default ceiling", func(c *api.VMConfig) { c.Hotplug = []string{"memory"} }, false,
			"", "size=512,slots=16,maxmem=2048M", "", ""},
		{"memory hotplug, set ceiling", func(c *api.VMConfig) { c.Hotplug = []string{"memory"}; c.MaxMemory = 1024 }, false,
			"", "size=512,slots=16,maxmem=1024M", "", ""},
		{"host CPU without KVM is max", func(c *api.VMConfig) { c.CPU = "host" }, false, "", "", "max", ""},
		{"host CPU with KVM", func(c *api.VMConfig) { c.CPU = "host" }, true, "", "", "host", ""},
		{"q35 has hotplug ports", func(c *api.VMConfig) {}, false, "", "", "", "pcie-root-port,id=hotplug0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			tt.mod(&c)
			args := BuildArgs(c, pathsFor("/run/x", 100), Resolved{KVM: tt.kvm})
			if tt.smp != "" && argAfter(args, "-smp") != tt.smp {
				t.Errorf("-smp %q, want %q", argAfter(args, "-smp"), tt.smp)
			}
			if tt.mem != "" && argAfter(args, "-m") != tt.mem {
				t.Errorf("-m %q, want %q", argAfter(args, "-m"), tt.mem)
			}
			if tt.cpu != "" && argAfter(args, "-cpu") != tt.cpu {
				t.Errorf("-cpu %q, want %q", argAfter(args, "-cpu"), tt.cpu)
			}
			if tt.hasDevicePrefix != "" && !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, tt.hasDevicePrefix) }) {
				t.Errorf("no argument starting %q in %v", tt.hasDevicePrefix, args)
			}
			if !tt.kvm && argAfter(args, "-accel") != "tcg,tb-size=128" {
				t.Errorf("-accel %q", argAfter(args, "-accel"))
			}
		})
	}
}
