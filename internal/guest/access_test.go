package guest

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/corral-project/corral/internal/errs"
)

// grants is an Authorizer holding "path priv" pairs exactly (no
// propagation: the rule functions name the paths they ask about).
type grants []string

func (g grants) Allowed(path string, privs ...string) bool {
	for _, p := range privs {
		if !slices.Contains(g, path+" "+p) {
			return false
		}
	}
	return true
}

func TestCheckVolume(t *testing.T) {
	other := "local:102/vm-102-disk-0.qcow2"
	both := grants{"/vms/102 VM.Config.Disk", "/storage/local Datastore.AllocateSpace"}
	tests := []struct {
		name  string
		auth  Authorizer
		volid string
		use   VolumeUse
		want  errs.Kind // 0: allowed
	}{
		{"own disk", nil, "local:101/vm-101-disk-0.qcow2", UseDisk, 0},
		{"own disk freed", nil, "local:101/vm-101-disk-0.qcow2", UseFree, 0},
		{"other's disk, no rights", grants{}, other, UseDisk, errs.KindForbidden},
		{"other's disk, pool only", grants{"/storage/local Datastore.AllocateSpace"}, other, UseDisk, errs.KindForbidden},
		{"other's disk, guest only", grants{"/vms/102 VM.Config.Disk"}, other, UseDisk, errs.KindForbidden},
		{"other's disk, both", both, other, UseDisk, 0},
		{"other's disk imported", grants{}, other, UseImport, errs.KindForbidden},
		{"other's disk imported, both", both, other, UseImport, 0},
		{"other's disk freed", grants{"/storage/local Datastore.Allocate"}, other, UseFree, errs.KindForbidden},
		{"other's disk freed, both", both, other, UseFree, 0},
		{"other's base disk", grants{}, "local:102/base-102-disk-0.raw", UseDisk, errs.KindForbidden},
		{"other's subvol", grants{}, "local:102/subvol-102-disk-0", UseDisk, errs.KindForbidden},
		{"other's disk as CD-ROM", grants{}, other, UseCDROM, errs.KindForbidden},
		{"other's disk as CD-ROM, both", both, other, UseCDROM, errs.KindInvalid},
		{"own disk as CD-ROM", both, "local:101/vm-101-disk-0.qcow2", UseCDROM, errs.KindInvalid},
		{"ISO, no rights", grants{}, "local:iso/d.iso", UseCDROM, errs.KindForbidden},
		{"ISO, audit", grants{"/storage/local Datastore.Audit"}, "local:iso/d.iso", UseCDROM, 0},
		{"ISO, allocate", grants{"/storage/local Datastore.AllocateSpace"}, "local:iso/d.iso", UseCDROM, 0},
		{"ISO named like a disk", grants{"/storage/local Datastore.Audit"}, "local:iso/vm-102-disk-0.iso", UseCDROM, 0},
		{"LUN as disk, audit", grants{"/storage/san Datastore.Audit"}, "san:lun0", UseDisk, errs.KindForbidden},
		{"LUN as disk", grants{"/storage/san Datastore.AllocateSpace"}, "san:lun0", UseDisk, 0},
		{"import an ISO folder image", grants{"/storage/local Datastore.Audit"}, "local:iso/cloud.img", UseImport, 0},
		{"bad volid", both, "local:../x", UseDisk, errs.KindInvalid},
	}
	// A guest being created may not have its ID yet: 0 owns nothing.
	if err := CheckVolume(nil, 0, "disks[0].volume", "san:lun0", UseDisk); errs.KindOf(err) != errs.KindForbidden {
		t.Errorf("a LUN for a guest without an ID yet: %v", err)
	}
	for _, tt := range tests {
		err := CheckVolume(tt.auth, 101, "disks[0].volume", tt.volid, tt.use)
		if got := errs.KindOf(err); got != tt.want {
			t.Errorf("%s: %v, want kind %v", tt.name, err, tt.want)
		}
	}
}

func TestOwns(t *testing.T) {
	if !Owns(101, "local:101/vm-101-disk-3.raw") || Owns(101, "local:102/vm-102-disk-0.raw") || Owns(101, "local:iso/x.iso") {
		t.Error("Owns reads ownership wrong")
	}
}

func TestCheckSDN(t *testing.T) {
	if p := SDNPath("", "vmbr0"); p != "/sdn/zones/localnetwork/vmbr0" {
		t.Errorf("bridge path %s", p)
	}
	if p := SDNPath("z1", "v1"); p != "/sdn/zones/z1/v1" {
		t.Errorf("vnet path %s", p)
	}
	if err := CheckSDN(nil, "nets[0].bridge", "/sdn/zones/z1/v1"); errs.KindOf(err) != errs.KindForbidden {
		t.Errorf("nobody: %v", err)
	}
	if err := CheckSDN(grants{"/sdn/zones/z1/v1 SDN.Use"}, "nets[0].bridge", "/sdn/zones/z1/v1"); err != nil {
		t.Error(err)
	}
}

func TestCheckMACs(t *testing.T) {
	r := &Registry{}
	r.AddMACs(func(yield func(int, string, string)) { yield(102, "VM", "02:00:00:00:01:02") })
	r.AddMACs(func(yield func(int, string, string)) {
		yield(103, "container", "02:00:00:00:01:03")
		yield(101, "container", "02:00:00:00:01:01") // the guest itself
	})
	tests := []struct {
		macs []string
		bad  string // substring of the error, "" for none
	}{
		{[]string{"02:00:00:00:01:01", "02:00:00:00:01:09"}, ""},
		{[]string{"ff:ff:ff:ff:ff:ff"}, "broadcast"},
		{[]string{"01:00:5e:00:00:01"}, "multicast"},
		{[]string{"33:33:00:00:00:01"}, "multicast"},
		{[]string{"00:00:00:00:00:00"}, "all zeros"},
		{[]string{"02:00:00:00:01:09", "02-00-00-00-01-09"}, "already the MAC of NIC 0"},
		{[]string{"02:00:00:00:01:02"}, "used by VM 102"},
		{[]string{"02:00:00:00:01:03"}, "used by container 103"},
		{[]string{"02:00:00:00:01"}, "not a MAC"},
		{[]string{"02:00:00:00:00:00:00:01"}, "not a MAC"},
	}
	for _, tt := range tests {
		list := make([]*string, len(tt.macs))
		for i := range tt.macs {
			m := tt.macs[i]
			list[i] = &m
		}
		err := r.CheckMACs(101, list, func(i int) string { return fmt.Sprintf("nets[%d].mac", i) })
		switch {
		case tt.bad == "" && err != nil:
			t.Errorf("%v: %v", tt.macs, err)
		case tt.bad != "" && (errs.KindOf(err) != errs.KindInvalid || !strings.Contains(fmt.Sprint(err.(*errs.Error).Fields), tt.bad)):
			t.Errorf("%v: %v, want a 422 saying %q", tt.macs, err, tt.bad)
		}
	}
	m := "02:aa:bb:cc:dd:ee"
	if err := r.CheckMACs(101, []*string{&m}, nil); err != nil || m != "02:AA:BB:CC:DD:EE" {
		t.Errorf("normalised to %s (%v)", m, err)
	}
}
