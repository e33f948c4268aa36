package main

import (
	"reflect"
	"testing"
)

func TestFwLevelPath(t *testing.T) {
	cases := []struct{ in, want string }{
		{"cluster", "/cluster/firewall"},
		{"node/n1", "/nodes/n1/firewall"},
		{"vm/100", "/vms/100/firewall"},
		{"ct/101", "/containers/101/firewall"},
		{"vm/abc", ""},
		{"node/", ""},
		{"cluster/x", ""},
		{"pool/1", ""},
	}
	for _, c := range cases {
		got, err := fwLevelPath(c.in)
		if c.want == "" {
			if err == nil {
				t.Errorf("%q: accepted as %s", c.in, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q: %q %v, want %q", c.in, got, err, c.want)
		}
	}
}

func TestListify(t *testing.T) {
	got := listify(map[string]any{"addresses": "10.0.0.1/24, 10.0.1.1/24", "bridge_ports": []any{"eth0", "eth1"}, "mtu": 1400, "comment": "a,b"},
		map[string]bool{"addresses": true, "bridge_ports": true})
	want := map[string]any{"addresses": []any{"10.0.0.1/24", "10.0.1.1/24"}, "bridge_ports": []any{"eth0", "eth1"}, "mtu": 1400, "comment": "a,b"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%v", got)
	}
}
