package test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/network/nettest"
)

// TestVMNIC starts a real QEMU VM with a NIC on a bridge, in a namespace
// the test made: corral creates the tap (no QEMU script), QEMU opens it, the
// firewall gets the port, and stopping the VM removes the tap.
func TestVMNIC(t *testing.T) {
	nettest.Root(t)
	needQEMU(t)
	h := nettest.NS(t, "v")
	n := StartNode(t, "CORRAL_NETNS="+h.Name)
	c := n.Admin()
	if _, err := c.Do(bg, "POST", "/nodes/n1/network", nil, api.NetIface{Iface: "vmbr0", Type: "bridge", Addresses: []string{"10.96.0.1/24"}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Do(bg, "PUT", "/nodes/n1/network", nil, api.NetApply{}, nil); err != nil {
		t.Fatal(err)
	}
	for _, d := range []struct {
		path string
		body any
	}{
		{"/cluster/zones", api.Zone{Zone: "lab", Type: "simple"}},
		{"/cluster/vnets", api.VNet{VNet: "lan", Zone: "lab"}},
		{"/cluster/subnets", api.Subnet{Subnet: "10.95.0.0/24", VNet: "lan", Gateway: "10.95.0.1"}},
	} {
		if _, err := c.Do(bg, "POST", d.path, nil, d.body, nil); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "vnet bridge", func() bool { _, err := h.H.LinkByName("lan"); return err == nil })
	if _, err := createVM(t, c, api.VMCreate{VMID: 700, Memory: 64, Nets: []api.VMNet{{Model: "virtio", Bridge: ""}}}); err == nil {
		t.Fatal("a NIC without a bridge was accepted")
	}
	cr, err := createVM(t, c, api.VMCreate{VMID: 700, Memory: 64, VGA: "none",
		Nets: []api.VMNet{{Model: "virtio", Bridge: "vmbr0", Firewall: true}, {Model: "e1000", Bridge: "lan", Rate: 10}}})
	if err != nil {
		t.Fatal(err)
	}
	waitOK(t, c, cr.Task)
	var vm api.VM
	if _, err := c.Do(bg, "GET", "/vms/700/config", nil, nil, &vm); err != nil {
		t.Fatal(err)
	}
	mac := vm.Config.Nets[0].MAC
	if len(mac) != 17 || mac == vm.Config.Nets[1].MAC {
		t.Fatalf("MACs: %+v", vm.Config.Nets)
	}
	// Firewall on for the cluster and the VM: its port gets anti-spoofing.
	for _, p := range []string{"/cluster/firewall/options", "/vms/700/firewall/options"} {
		if _, err := c.Do(bg, "PUT", p, nil, api.FwOptions{Enable: true}, nil); err != nil {
			t.Fatal(err)
		}
	}
	task, err := vmAction(t, c, 700, "start")
	if err != nil {
		t.Fatal(err)
	}
	waitOK(t, c, task)
	t.Cleanup(func() {
		if task, err := vmAction(t, c, 700, "stop"); err == nil {
			c.WaitTask(bg, task)
		}
	})
	onBridge := func(tap, bridge string) bool {
		l, err := h.H.LinkByName(tap)
		br, err2 := h.H.LinkByName(bridge)
		return err == nil && err2 == nil && l.Attrs().MasterIndex == br.Attrs().Index
	}
	for i, want := range []string{"virtio-net-pci,mac=" + mac, "e1000,mac="} {
		tap := fmt.Sprintf("tap700i%d", i)
		if !onBridge(tap, []string{"vmbr0", "lan"}[i]) {
			t.Fatalf("%s is not on its bridge", tap)
		}
		pid, _ := os.ReadFile(n.DataDir + "/run/qemu/700.pid")
		cmdline, _ := os.ReadFile("/proc/" + strings.TrimSpace(string(pid)) + "/cmdline")
		args := strings.ReplaceAll(string(cmdline), "\x00", " ")
		if !strings.Contains(args, "tap,id=net"+fmt.Sprint(i)+",ifname="+tap+",script=no,downscript=no") || !strings.Contains(args, want) {
			t.Fatalf("QEMU command line lacks NIC %d: %s", i, args)
		}
	}
	var rs struct {
		Rules    int  `json:"rules"`
		BridgeNF bool `json:"bridge_nf"`
	}
	if _, err := c.Do(bg, "GET", "/nodes/n1/firewall/ruleset", nil, nil, &rs); err != nil || !rs.BridgeNF {
		t.Fatalf("the firewalled NIC is not in the ruleset: %v %+v", err, rs)
	}
	// The NIC on the vnet got a stable IPAM address for its MAC.
	var ips []api.IPAlloc
	if _, err := c.Do(bg, "GET", "/cluster/subnets/10.95.0.0-24/ips", nil, nil, &ips); err != nil || len(ips) != 1 ||
		ips[0].Owner != "guest/700/net1" || ips[0].MAC != vm.Config.Nets[1].MAC {
		t.Fatalf("IPAM: %v %+v", err, ips)
	}
	// Moving a NIC to another bridge applies live, not at the next restart.
	nets := vm.Config.Nets
	nets[1].Bridge, nets[1].Rate = "vmbr0", 0
	var upd api.VM
	if _, err := c.Do(bg, "PUT", "/vms/700/config", nil, api.VMUpdate{Nets: &nets}, &upd); err != nil {
		t.Fatal(err)
	}
	if upd.Pending != nil || !onBridge("tap700i1", "vmbr0") {
		t.Fatalf("live NIC change: pending %+v, on vmbr0 %v", upd.Pending, onBridge("tap700i1", "vmbr0"))
	}
	// A NIC appended to a running VM is hot-plugged: QEMU opens its tap
	// (carrier up, as on the NICs it started with).
	attached := func(tap string) bool {
		l, err := h.H.LinkByName(tap)
		return err == nil && l.Attrs().RawFlags&unix.IFF_LOWER_UP != 0
	}
	if !attached("tap700i0") {
		t.Fatal("QEMU did not open tap700i0")
	}
	nets = append(upd.Config.Nets, api.VMNet{Model: "virtio", Bridge: "vmbr0"})
	if _, err := c.Do(bg, "PUT", "/vms/700/config", nil, api.VMUpdate{Nets: &nets}, &upd); err != nil {
		t.Fatal(err)
	}
	if upd.Pending != nil || len(upd.Config.Nets) != 3 || !onBridge("tap700i2", "vmbr0") {
		t.Fatalf("hot-plugged NIC: pending %+v, nets %+v", upd.Pending, upd.Config.Nets)
	}
	waitFor(t, "QEMU to open the hot-plugged tap", func() bool { return attached("tap700i2") })
	// A daemon restart finds the running VM's taps: same devices, none
	// added, and the firewall still covers the port.
	before, _ := h.H.LinkByName("tap700i0")
	n.Stop()
	n.Start()
	c = n.Admin()
	after, err := h.H.LinkByName("tap700i0")
	if err != nil || after.Attrs().Index != before.Attrs().Index || !attached("tap700i0") {
		t.Fatalf("tap700i0 after a daemon restart: %v", err)
	}
	links, _ := h.H.LinkList()
	taps := 0
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Name, "tap700") {
			taps++
		}
	}
	if taps != 3 {
		t.Fatalf("%d taps after a restart, want 3", taps)
	}
	rs.BridgeNF = false
	if _, err := c.Do(bg, "GET", "/nodes/n1/firewall/ruleset", nil, nil, &rs); err != nil || !rs.BridgeNF {
		t.Fatalf("the firewall lost the VM's port after a restart: %v %+v", err, rs)
	}
	task, err = vmAction(t, c, 700, "stop")
	if err != nil {
		t.Fatal(err)
	}
	waitOK(t, c, task)
	waitFor(t, "taps removed", func() bool {
		_, e0 := h.H.LinkByName("tap700i0")
		_, e1 := h.H.LinkByName("tap700i1")
		_, e2 := h.H.LinkByName("tap700i2")
		return e0 != nil && e1 != nil && e2 != nil
	})
	// Destroying the VM frees its addresses.
	var ref api.TaskRef
	if _, err := c.Do(bg, "DELETE", "/vms/700", nil, nil, &ref); err != nil {
		t.Fatal(err)
	}
	waitOK(t, c, ref.Task)
	if _, err := c.Do(bg, "GET", "/cluster/subnets/10.95.0.0-24/ips", nil, nil, &ips); err != nil || len(ips) != 0 {
		t.Fatalf("IPAM after delete: %v %+v", err, ips)
	}
}
