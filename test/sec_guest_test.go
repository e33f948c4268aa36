package test

import (
	"fmt"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/client"
	"github.com/corral-project/corral/internal/network/nettest"
)

// tenants makes alice (VMAdmin on /vms/101, DatastoreUser on
// /storage/local) and bob (VMAdmin on /vms/102), and returns their clients.
func tenants(t *testing.T, n *Node, admin *client.Client, extra ...api.ACLEntry) (alice, bob *client.Client) {
	t.Helper()
	for _, u := range []string{"alice@corral", "bob@corral"} {
		if _, err := admin.CreateUser(bg, api.UserCreate{UserID: u, Password: "tenant-password"}); err != nil {
			t.Fatal(err)
		}
	}
	acl := append([]api.ACLEntry{
		{Path: "/vms/101", User: "alice@corral", Role: "VMAdmin"},
		{Path: "/storage/local", User: "alice@corral", Role: "DatastoreUser"},
		{Path: "/vms/102", User: "bob@corral", Role: "VMAdmin"},
	}, extra...)
	if _, err := admin.UpdateACL(bg, api.ACLUpdate{Entries: acl}); err != nil {
		t.Fatal(err)
	}
	return n.Login("alice@corral", "tenant-password"), n.Login("bob@corral", "tenant-password")
}

func want403(t *testing.T, what string, err error) {
	t.Helper()
	if client.StatusOf(err) != 403 {
		t.Errorf("%s: %v, want 403", what, err)
	}
}

func vmConfig(t *testing.T, c *client.Client, vmid int) api.VMConfig {
	t.Helper()
	var vm api.VM
	if _, err := c.Do(bg, "GET", fmt.Sprintf("/vms/%d/config", vmid), nil, nil, &vm); err != nil {
		t.Fatal(err)
	}
	return vm.Config
}

// TestCrossTenantVolumes: a tenant with VMAdmin on her own VM and
// DatastoreUser on the pool can't attach, boot from, import, snapshot,
// roll back, grow, clone or free another tenant's disk (issue 13, findings
// 4 and 5); each attempt is a 403 and the victim's disk is untouched.
func TestCrossTenantVolumes(t *testing.T) {
	n := StartNode(t)
	admin := n.Admin()
	for _, id := range []int{101, 102} {
		cr, err := createVM(t, admin, api.VMCreate{VMID: id, Memory: 64, Disks: []api.VMDisk{{Bus: "virtio", Storage: "local", Size: "64M", Format: "qcow2"}}})
		if err != nil {
			t.Fatal(err)
		}
		waitOK(t, admin, cr.Task)
	}
	alice, bob := tenants(t, n, admin)
	victim := vmConfig(t, admin, 102).Disks[0].Volume
	if victim != "local:102/vm-102-disk-0.qcow2" {
		t.Fatalf("VM 102's disk is %s", victim)
	}
	name := strings.TrimPrefix(victim, "local:")
	before, err := admin.Volume(bg, n.Name, "local", name)
	if err != nil {
		t.Fatal(err)
	}
	own := vmConfig(t, admin, 101)

	// Finding 4: through alice's own VM.
	_, err = alice.Do(bg, "POST", "/vms/101/disks", nil, api.VMDiskAttach{VMDisk: api.VMDisk{Bus: "sata", Volume: victim}}, nil)
	want403(t, "attach another VM's disk", err)
	_, err = alice.Do(bg, "PUT", "/vms/101/config", nil, map[string]any{"cdroms": []api.VMCDROM{{Volume: victim}}}, nil)
	want403(t, "another VM's disk as CD-ROM", err)
	_, err = alice.Do(bg, "POST", "/vms/101/disks", nil, api.VMDiskAttach{VMDisk: api.VMDisk{Bus: "sata", Storage: "local"}, ImportFrom: victim}, nil)
	want403(t, "import another VM's disk", err)
	// Her own disk is no CD-ROM either (content iso only).
	_, err = alice.Do(bg, "PUT", "/vms/101/config", nil, map[string]any{"cdroms": []api.VMCDROM{{Volume: own.Disks[0].Volume}}}, nil)
	if client.StatusOf(err) != 422 || !strings.Contains(err.Error(), "cdroms[0].volume") {
		t.Errorf("own disk as CD-ROM: %v, want 422 naming cdroms[0].volume", err)
	}

	// Finding 5: through the pool, where alice has DatastoreUser.
	want403(t, "snapshot", alice.SnapshotVolume(bg, n.Name, "local", name, "s1"))
	want403(t, "rollback", alice.RollbackVolume(bg, n.Name, "local", name, "s1"))
	want403(t, "delete snapshot", alice.DeleteVolumeSnapshot(bg, n.Name, "local", name, "s1"))
	_, err = alice.ResizeVolume(bg, n.Name, "local", name, "+1T")
	want403(t, "grow", err)
	_, err = alice.CloneVolume(bg, n.Name, "local", api.VolumeClone{Source: victim, VMID: 101})
	want403(t, "clone out", err)
	_, err = alice.AllocVolume(bg, n.Name, "local", api.VolumeCreate{VMID: 102, Size: "1M"})
	want403(t, "allocate in the victim's name", err)
	_, err = alice.Do(bg, "DELETE", client.PathJoin("nodes", n.Name, "storage", "local", "content", name), url.Values{"force": {"true"}}, nil, nil)
	want403(t, "free through the pool", err)
	// Her own VM's disk through the pool: allowed (she holds both).
	if err := alice.SnapshotVolume(bg, n.Name, "local", strings.TrimPrefix(own.Disks[0].Volume, "local:"), "mine"); err != nil {
		t.Errorf("snapshot of her own disk: %v", err)
	}

	// An administrator may attach VM 102's disk to VM 101 (both
	// privileges); alice still can't free it, and destroying her VM
	// leaves it alone.
	var att api.TaskRef
	if _, err := admin.Do(bg, "POST", "/vms/101/disks", nil, api.VMDiskAttach{VMDisk: api.VMDisk{Bus: "sata", Volume: victim}}, &att); err != nil {
		t.Fatal(err)
	}
	waitOK(t, admin, att.Task)
	_, err = alice.Do(bg, "DELETE", "/vms/101/disks/1", url.Values{"free": {"true"}}, nil, nil)
	want403(t, "detach with free", err)
	var ref api.TaskRef
	if _, err := alice.Do(bg, "DELETE", "/vms/101", nil, nil, &ref); err != nil {
		t.Fatal(err)
	}
	waitOK(t, alice, ref.Task)

	after, err := admin.Volume(bg, n.Name, "local", name)
	if err != nil {
		t.Fatalf("VM 102's disk is gone: %v", err)
	}
	if after.Size != before.Size {
		t.Errorf("VM 102's disk changed size: %d -> %d", before.Size, after.Size)
	}
	if vols, _ := admin.Content(bg, n.Name, "local", "", 101); len(vols) != 0 {
		t.Errorf("VM 101's own volumes (and no clone) should be gone: %+v", vols)
	}
	if got := vmConfig(t, bob, 102); len(got.Disks) != 1 || got.Disks[0].Volume != victim {
		t.Errorf("VM 102's config changed: %+v", got.Disks)
	}
}

// TestCrossTenantContainerVolume: the same rule holds for containers, from
// the one guest core: mounting another guest's root filesystem is a 403.
func TestCrossTenantContainerVolume(t *testing.T) {
	needLXC(t)
	n := ctNode(t)
	admin := n.Admin()
	tmpl := busyboxTemplate(t, n, admin)
	for _, id := range []int{101, 102} {
		cr, err := admin.CreateContainer(bg, api.CTCreate{VMID: id, OSTemplate: tmpl, Memory: 64})
		if err != nil {
			t.Fatal(err)
		}
		waitOK(t, admin, cr.Task)
	}
	alice, _ := tenants(t, n, admin)
	victim, err := admin.Container(bg, 102)
	if err != nil {
		t.Fatal(err)
	}
	rootfs := victim.Config.RootFS.Volume
	_, err = alice.Do(bg, "PUT", "/containers/101/config", nil, map[string]any{"mountpoints": []api.CTMountpoint{{MP: "/steal", Volume: rootfs}}}, nil)
	want403(t, "mount another container's root filesystem", err)
	if ct, _ := admin.Container(bg, 101); len(ct.Config.Mountpoints) != 0 {
		t.Errorf("container 101 got mount points: %+v", ct.Config.Mountpoints)
	}
	// Destroying a container frees only its own volumes.
	if _, err := admin.Volume(bg, n.Name, "local", strings.TrimPrefix(rootfs, "local:")); err != nil {
		t.Errorf("container 102's root filesystem: %v", err)
	}
}

// sdnNode starts a daemon whose network layer runs in a namespace of the
// test's own, with host bridge vmbr0 and vnet lan in zone lab, VM 101
// without NICs and VM 102 with one NIC of MAC bobMAC on vmbr0.
func sdnNode(t *testing.T) (*Node, *client.Client) {
	t.Helper()
	nettest.Root(t)
	h := nettest.NS(t, "s")
	n := StartNode(t, "CORRAL_NETNS="+h.Name)
	admin := n.Admin()
	if _, err := admin.Do(bg, "POST", "/nodes/n1/network", nil, api.NetIface{Iface: "vmbr0", Type: "bridge"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Do(bg, "PUT", "/nodes/n1/network", nil, api.NetApply{}, nil); err != nil {
		t.Fatal(err)
	}
	for _, d := range []struct {
		path string
		body any
	}{
		{"/cluster/zones", api.Zone{Zone: "lab", Type: "simple"}},
		{"/cluster/vnets", api.VNet{VNet: "lan", Zone: "lab"}},
	} {
		if _, err := admin.Do(bg, "POST", d.path, nil, d.body, nil); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "vnet bridge", func() bool { _, err := h.H.LinkByName("lan"); return err == nil })
	for _, in := range []api.VMCreate{{VMID: 101, Memory: 64}, {VMID: 102, Memory: 64, Nets: []api.VMNet{{Model: "virtio", Bridge: "vmbr0", MAC: bobMAC}}}} {
		cr, err := createVM(t, admin, in)
		if err != nil {
			t.Fatal(err)
		}
		waitOK(t, admin, cr.Task)
	}
	return n, admin
}

const bobMAC = "02:00:00:00:01:02"

func setNets(c *client.Client, nets ...api.VMNet) error {
	_, err := c.Do(bg, "PUT", "/vms/101/config", nil, map[string]any{"nets": nets}, nil)
	return err
}

// dummyTemplate uploads a file a container create can name as its
// template: requests refused at validation never unpack it.
func dummyTemplate(t *testing.T, n *Node, admin *client.Client) string {
	t.Helper()
	if _, err := admin.Upload(bg, n.Name, "local", api.ContentVZTmpl, "dummy.tar.gz", strings.NewReader("x"), 1, "", false); err != nil {
		t.Fatal(err)
	}
	return "local:vztmpl/dummy.tar.gz"
}

// TestNICsNeedSDNUse: putting a NIC on a host bridge or a vnet needs
// SDN.Use on its /sdn/zones path, for VMs and containers, and only for
// NICs that change (issue 13, finding 6).
func TestNICsNeedSDNUse(t *testing.T) {
	n, admin := sdnNode(t)
	alice, _ := tenants(t, n, admin)
	want403(t, "NIC on a host bridge without SDN.Use", setNets(alice, api.VMNet{Model: "virtio", Bridge: "vmbr0"}))
	want403(t, "NIC on a vnet without SDN.Use", setNets(alice, api.VMNet{Model: "virtio", Bridge: "lan"}))
	if got := vmConfig(t, admin, 101); len(got.Nets) != 0 {
		t.Fatalf("refused NICs were written: %+v", got.Nets)
	}
	bridgeACL := api.ACLEntry{Path: "/sdn/zones/localnetwork/vmbr0", User: "alice@corral", Role: "SDNUser"}
	if _, err := admin.UpdateACL(bg, api.ACLUpdate{Entries: []api.ACLEntry{bridgeACL}}); err != nil {
		t.Fatal(err)
	}
	if err := setNets(alice, api.VMNet{Model: "virtio", Bridge: "vmbr0"}); err != nil {
		t.Fatalf("NIC on vmbr0 with SDN.Use there: %v", err)
	}
	// The bridge grant is not a vnet grant.
	want403(t, "second NIC on a vnet", setNets(alice, api.VMNet{Model: "virtio", Bridge: "vmbr0"}, api.VMNet{Model: "virtio", Bridge: "lan"}))
	// Unchanged NICs need no SDN.Use again (the grant is gone).
	if _, err := admin.UpdateACL(bg, api.ACLUpdate{Delete: true, Entries: []api.ACLEntry{bridgeACL}}); err != nil {
		t.Fatal(err)
	}
	mine := vmConfig(t, admin, 101).Nets[0]
	mine.Rate = 5
	if err := setNets(alice, mine); err != nil {
		t.Fatalf("changing the rate of a NIC already on vmbr0: %v", err)
	}
	// The vnet's grant is on its zone's path.
	if _, err := admin.UpdateACL(bg, api.ACLUpdate{Entries: []api.ACLEntry{{Path: "/sdn/zones/lab", User: "alice@corral", Role: "SDNUser", Propagate: true}}}); err != nil {
		t.Fatal(err)
	}
	if err := setNets(alice, mine, api.VMNet{Model: "virtio", Bridge: "lan"}); err != nil {
		t.Fatalf("NIC on lan with SDN.Use on /sdn/zones/lab: %v", err)
	}

	// Containers: the same rule, from the same guest core.
	if why := lxcMissing(); why != "" {
		t.Log("SKIP containers: " + why)
		return
	}
	tmpl := dummyTemplate(t, n, admin)
	if _, err := admin.UpdateACL(bg, api.ACLUpdate{Entries: []api.ACLEntry{{Path: "/vms", User: "alice@corral", Role: "VMAdmin"}}}); err != nil {
		t.Fatal(err)
	}
	_, err := alice.CreateContainer(bg, api.CTCreate{VMID: 103, OSTemplate: tmpl, Nets: []api.CTNet{{Name: "eth0", Bridge: "vmbr0"}}})
	want403(t, "container NIC on a host bridge without SDN.Use", err)
	if _, err := admin.Container(bg, 103); client.StatusOf(err) != 404 {
		t.Errorf("a refused container exists: %v", err)
	}
}

// TestGuestMACs: NIC MACs are unicast, not zero, once per guest and unique
// across the cluster's VMs and containers (issue 13, finding 7).
func TestGuestMACs(t *testing.T) {
	n, admin := sdnNode(t)
	cases := []struct {
		name string
		nets []api.VMNet
	}{
		{"broadcast", []api.VMNet{{Model: "virtio", Bridge: "vmbr0", MAC: "FF:FF:FF:FF:FF:FF"}}},
		{"multicast", []api.VMNet{{Model: "virtio", Bridge: "vmbr0", MAC: "01:00:5E:00:00:01"}}},
		{"zero", []api.VMNet{{Model: "virtio", Bridge: "vmbr0", MAC: "00:00:00:00:00:00"}}},
		{"twice in the VM", []api.VMNet{{Model: "virtio", Bridge: "vmbr0", MAC: "02:00:00:00:01:09"}, {Model: "virtio", Bridge: "lan", MAC: "02:00:00:00:01:09"}}},
		{"another VM's", []api.VMNet{{Model: "virtio", Bridge: "vmbr0", MAC: bobMAC}}},
	}
	for _, tc := range cases {
		err := setNets(admin, tc.nets...)
		if client.StatusOf(err) != 422 || !strings.Contains(err.Error(), "nets[") {
			t.Errorf("%s MAC: %v, want 422 naming the NIC", tc.name, err)
		}
		if _, err := createVM(t, admin, api.VMCreate{VMID: 104, Memory: 64, Nets: tc.nets}); client.StatusOf(err) != 422 {
			t.Errorf("create with %s MAC: %v, want 422", tc.name, err)
		}
	}
	if got := vmConfig(t, admin, 101).Nets; len(got) != 0 {
		t.Errorf("refused MACs were written: %+v", got)
	}
	if err := setNets(admin, api.VMNet{Model: "virtio", Bridge: "vmbr0", MAC: "02:00:00:00:01:01"}); err != nil {
		t.Fatalf("a good MAC: %v", err)
	}
	// A container can't take a VM's MAC (nor the other way round).
	if why := lxcMissing(); why != "" {
		t.Log("SKIP containers: " + why)
		return
	}
	tmpl := dummyTemplate(t, n, admin)
	_, err := admin.CreateContainer(bg, api.CTCreate{VMID: 103, OSTemplate: tmpl, Nets: []api.CTNet{{Name: "eth0", Bridge: "vmbr0", HWAddr: bobMAC}}})
	if client.StatusOf(err) != 422 || !strings.Contains(err.Error(), "nets[0].hwaddr") {
		t.Errorf("container with VM 102's MAC: %v, want 422 naming nets[0].hwaddr", err)
	}
}

// TestLockedVolumeIs409: snapshotting or growing a volume a running QEMU
// holds locked is a 409 saying so, not a 500 with qemu-img's message
// (issue 13, finding 11). qemu-io holds the lock as a running VM would.
func TestLockedVolumeIs409(t *testing.T) {
	if _, err := exec.LookPath("qemu-io"); err != nil {
		t.Skip("SKIP reason: qemu-io is not installed")
	}
	n := StartNode(t)
	admin := n.Admin()
	cr, err := createVM(t, admin, api.VMCreate{VMID: 102, Memory: 64, Disks: []api.VMDisk{{Bus: "virtio", Storage: "local", Size: "64M", Format: "qcow2"}}})
	if err != nil {
		t.Fatal(err)
	}
	waitOK(t, admin, cr.Task)
	name := "102/vm-102-disk-0.qcow2"
	holder := exec.Command("qemu-io", "-f", "qcow2", filepath.Join(n.DataDir, "storage", "images", name), "-c", "sleep 30000")
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := admin.SnapshotVolume(bg, n.Name, "local", name, "s1")
		if client.StatusOf(err) == 409 && strings.Contains(err.Error(), "in use") {
			break
		}
		if err == nil || time.Now().After(deadline) {
			t.Fatalf("snapshot of a locked volume: %v, want 409 saying it is in use", err)
		}
		time.Sleep(100 * time.Millisecond) // qemu-io has not taken the lock yet
	}
	if _, err := admin.ResizeVolume(bg, n.Name, "local", name, "+1M"); client.StatusOf(err) != 409 {
		t.Errorf("resize of a locked volume: %v, want 409", err)
	}
}
