package main

import (
	"reflect"
	"testing"

	"github.com/corral-project/corral/api"
)

func TestParseCTNet(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want api.CTNet
		ok   bool
	}{
		{"name=eth0,bridge=br0,ip=10.0.0.2/24,gw=10.0.0.1", api.CTNet{Name: "eth0", Bridge: "br0", IP: "10.0.0.2/24", GW: "10.0.0.1"}, true},
		{"name=eth1,ip=dhcp,ip6=auto,mtu=1400,hwaddr=02:00:00:00:00:01", api.CTNet{Name: "eth1", IP: "dhcp", IP6: "auto", MTU: 1400, HWAddr: "02:00:00:00:00:01"}, true},
		{"name=eth0,firewall", api.CTNet{Name: "eth0", Firewall: true}, true},
		{"bridge=br0", api.CTNet{}, false},             // name missing
		{"name=eth0,model=virtio", api.CTNet{}, false}, // a VM key
		{"name=eth0,mtu=big", api.CTNet{}, false},
	} {
		got, err := parseCTNet(tc.spec)
		if (err == nil) != tc.ok || (tc.ok && !reflect.DeepEqual(got, tc.want)) {
			t.Errorf("parseCTNet(%q) = %+v, %v", tc.spec, got, err)
		}
	}
}

func TestParseCTMount(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want api.CTMountpoint
		ok   bool
	}{
		{"mp=/data,storage=local,size=8g", api.CTMountpoint{MP: "/data", Storage: "local", Size: "8G"}, true},
		{"mp=/srv,volume=local:100/subvol-100-disk-1,ro", api.CTMountpoint{MP: "/srv", Volume: "local:100/subvol-100-disk-1", ReadOnly: true}, true},
		{"mp=/h,host=/srv/share,backup=no", api.CTMountpoint{MP: "/h", HostPath: "/srv/share"}, true},
		{"storage=local", api.CTMountpoint{}, false},
		{"mp=/x,nope=1", api.CTMountpoint{}, false},
	} {
		got, err := parseCTMount(tc.spec)
		if (err == nil) != tc.ok || (tc.ok && !reflect.DeepEqual(got, tc.want)) {
			t.Errorf("parseCTMount(%q) = %+v, %v", tc.spec, got, err)
		}
	}
}

func TestParseFeatures(t *testing.T) {
	f, err := parseFeatures("nesting, fuse")
	if err != nil || !f.Nesting || !f.FUSE || f.Keyctl {
		t.Fatalf("parseFeatures: %+v %v", f, err)
	}
	if _, err := parseFeatures("nesting,warp"); err == nil {
		t.Fatal("unknown feature accepted")
	}
}
