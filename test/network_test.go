package test

import (
	"encoding/json"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/client"
	"github.com/corral-project/corral/internal/network/firewall"
	"github.com/corral-project/corral/internal/network/nettest"
)

// TestNetworkAPI runs a daemon whose network layer manages a namespace the
// test made (CORRAL_NETNS), and drives host interfaces (pending, diff,
// apply), zones and the firewall through the API and the CLI.
func TestNetworkAPI(t *testing.T) {
	nettest.Root(t)
	h := nettest.NS(t, "d")
	peer := nettest.NS(t, "p")
	nettest.Veth(t, h, "eth0", peer, "eth0")
	n := StartNode(t, "CORRAL_NETNS="+h.Name)
	c := n.Admin()
	do := func(method, path string, body, out any) error {
		t.Helper()
		_, err := c.Do(bg, method, path, nil, body, out)
		return err
	}
	wantField := func(err error, status int, field string) {
		t.Helper()
		p, ok := err.(*api.Problem)
		if !ok || p.Status != status || (field != "" && !hasField(*p, field)) {
			t.Fatalf("want %d on %q, got %v", status, field, err)
		}
	}

	var net0 api.NodeNetwork
	if err := do("GET", "/nodes/n1/network", nil, &net0); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(net0.Running, func(i api.NetIface) bool { return i.Iface == "eth0" }) || net0.Pending != nil || !net0.Caps.Bridge {
		t.Fatalf("network of a new node: %+v", net0)
	}
	// Bad declarations are 422 with the field.
	err := do("POST", "/nodes/n1/network", api.NetIface{Iface: "vmbr9", Type: "bridge", Ports: []string{"nope"}}, nil)
	wantField(err, 422, "bridge_ports")
	if !net0.Caps.VLAN {
		err = do("POST", "/nodes/n1/network", api.NetIface{Iface: "eth0.5", Type: "vlan", VLANID: 5, VLANRaw: "eth0"}, nil)
		wantField(err, 422, "type")
		t.Logf("VLAN interfaces refused for the kernel: %v", err)
	}
	// Pending, diff, apply through the CLI.
	env := []string{"HOME=" + t.TempDir(), "XDG_CONFIG_HOME=", "CORRAL_SOCKET=/nonexistent", "CORRAL_SERVER=", "CORRAL_TOKEN="}
	if _, errOut, code := n.CLI(env, n.Password+"\n", "login", "--server", n.URL, "--user", "admin@corral", "--password-stdin"); code != 0 {
		t.Fatalf("login: %d %s", code, errOut)
	}
	cli := func(args ...string) string {
		t.Helper()
		out, errOut, code := n.CLI(env, "", args...)
		if code != 0 {
			t.Fatalf("corral %s: %d %s %s", strings.Join(args, " "), code, out, errOut)
		}
		return out
	}
	out := cli("net", "add", "vmbr9", "type=bridge", "bridge_ports=eth0", "addresses=10.98.0.1/24", "mtu=1400")
	if !strings.Contains(out, "vmbr9\tadd") && !strings.Contains(out, "vmbr9") {
		t.Fatalf("net add: %s", out)
	}
	if _, err := h.H.LinkByName("vmbr9"); err == nil {
		t.Fatal("pending change reached the host")
	}
	var pend api.NodeNetwork
	_ = do("GET", "/nodes/n1/network", nil, &pend)
	if len(pend.Diff) != 1 || pend.Diff[0].Action != "add" {
		t.Fatalf("diff: %+v", pend.Diff)
	}
	cli("net", "apply")
	l, err := h.H.LinkByName("vmbr9")
	if err != nil || l.Attrs().MTU != 1400 {
		t.Fatalf("vmbr9 after apply: %v %+v", err, l)
	}
	cli("net", "set", "vmbr9", "addresses=10.98.0.2/24")
	out = cli("net", "show")
	if !strings.Contains(out, "addresses") || !strings.Contains(out, "change") {
		t.Fatalf("net show with a pending change: %s", out)
	}
	cli("net", "revert")
	var after api.NodeNetwork
	_ = do("GET", "/nodes/n1/network", nil, &after)
	if after.Pending != nil {
		t.Fatal("revert left pending changes")
	}

	// Zones: a simple zone's vnet becomes a bridge with the gateway address.
	cli("net", "zone", "add", "zone=lab", "type=simple")
	cli("net", "vnet", "add", "vnet=lan", "zone=lab")
	cli("net", "subnet", "add", "subnet=10.97.0.0/24", "vnet=lan", "gateway=10.97.0.1")
	waitFor(t, "vnet bridge lan", func() bool {
		l, err := h.H.LinkByName("lan")
		return err == nil && l.Type() == "bridge"
	})
	err = do("POST", "/cluster/vnets", api.VNet{VNet: "x", Zone: "nope"}, nil)
	wantField(err, 422, "zone")

	// Firewall: a rule that doesn't compile is refused with the reason.
	err = do("POST", "/vms/100/firewall/rules", api.FwRule{Direction: "in", Action: "ACCEPT", Proto: "tcp", DPort: "99999", Enable: true}, nil)
	wantField(err, 422, "dport")
	err = do("POST", "/vms/100/firewall/rules", api.FwRule{Direction: "in", Action: "ACCEPT", Source: "+nosuchset", Enable: true}, nil)
	wantField(err, 422, "source")
	cli("firewall", "ipset", "add", "name=mgmt", "cidrs=10.98.0.0/24,10.97.0.7")
	cli("firewall", "add", "vm/100", "type=in", "action=ACCEPT", "proto=tcp", "dport=22", "source=+mgmt")
	out = cli("firewall", "show", "vm/100")
	if !strings.Contains(out, "+mgmt") || !strings.Contains(out, "22") {
		t.Fatalf("firewall show: %s", out)
	}
	if h.TableExists(nftables.TableFamilyINet, firewall.Table) {
		t.Fatal("a firewall that was never enabled must not create tables")
	}
	cli("firewall", "options", "cluster", "enable=true")
	cli("firewall", "options", "node/n1", "enable=true")
	cli("firewall", "add", "node/n1", "type=in", "action=DROP", "proto=tcp", "dport=2222")
	waitFor(t, "corral's nftables table", func() bool { return h.TableExists(nftables.TableFamilyINet, firewall.Table) })
	var rs struct {
		Rules int `json:"rules"`
	}
	if err := do("GET", "/nodes/n1/firewall/ruleset", nil, &rs); err != nil || rs.Rules < 3 {
		t.Fatalf("ruleset: %v %+v", err, rs)
	}
	// A dropped connection shows in the drop log (dialled until the rule,
	// applied asynchronously after the store change, is in place).
	nettest.Addr(t, peer, "eth0", "10.98.0.2/24")
	waitFor(t, "the drop in the log", func() bool {
		_ = peer.Do(func() error {
			c, err := net.DialTimeout("tcp", "10.98.0.1:2222", 300*time.Millisecond)
			if err == nil {
				c.Close()
			}
			return nil
		})
		out := cli("firewall", "log")
		return strings.Contains(out, "node in") && strings.Contains(out, "10.98.0.1:2222")
	})
	// An IP set in use can't be deleted.
	_, _, code := n.CLI(env, "", "firewall", "ipset", "remove", "mgmt")
	if code == 0 {
		t.Fatal("an IP set in use was deleted")
	}
	cli("firewall", "remove", "vm/100", "0")
	cli("firewall", "ipset", "remove", "mgmt")
	var js []map[string]any
	if err := json.Unmarshal([]byte(cli("firewall", "ipset", "list", "-o", "json")), &js); err != nil || len(js) != 0 {
		t.Fatalf("ipsets: %v %v", err, js)
	}
}

func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestNetworkAccess: the network and firewall endpoints are denied by
// default and follow the ACL: a VM admin of /vms/100 may edit that VM's
// firewall and nothing else; an auditor reads but can't change.
func TestNetworkAccess(t *testing.T) {
	nettest.Root(t)
	h := nettest.NS(t, "a")
	n := StartNode(t, "CORRAL_NETNS="+h.Name)
	admin := n.Admin()
	for _, u := range []string{"vmadm@corral", "aud@corral", "none@corral"} {
		if _, err := admin.CreateUser(bg, api.UserCreate{UserID: u, Password: "password-123"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := admin.UpdateACL(bg, api.ACLUpdate{Entries: []api.ACLEntry{
		{Path: "/vms/100", User: "vmadm@corral", Role: "VMAdmin", Propagate: true},
		{Path: "/", User: "aud@corral", Role: "Auditor", Propagate: true},
	}}); err != nil {
		t.Fatal(err)
	}
	rule := api.FwRule{Direction: "in", Action: "ACCEPT", Proto: "tcp", DPort: "22", Enable: true}
	cases := []struct {
		user, method, path string
		body               any
		status             int
	}{
		{"none@corral", "GET", "/nodes/n1/network", nil, 403},
		{"none@corral", "GET", "/cluster/zones", nil, 403},
		{"none@corral", "GET", "/vms/100/firewall", nil, 403},
		{"vmadm@corral", "POST", "/vms/100/firewall/rules", rule, 200},
		{"vmadm@corral", "POST", "/vms/101/firewall/rules", rule, 403},
		{"vmadm@corral", "POST", "/cluster/firewall/rules", rule, 403},
		{"vmadm@corral", "PUT", "/nodes/n1/network", api.NetApply{}, 403},
		{"aud@corral", "GET", "/nodes/n1/network", nil, 200},
		{"aud@corral", "GET", "/cluster/firewall", nil, 200},
		{"aud@corral", "GET", "/cluster/zones", nil, 200},
		{"aud@corral", "POST", "/cluster/zones", api.Zone{Zone: "z", Type: "simple"}, 403},
		{"aud@corral", "POST", "/nodes/n1/network", api.NetIface{Iface: "vmbr1", Type: "bridge"}, 403},
		{"aud@corral", "PUT", "/cluster/firewall/options", api.FwOptions{Enable: true}, 403},
	}
	clients := map[string]*client.Client{}
	for _, c := range cases {
		cl := clients[c.user]
		if cl == nil {
			cl = n.Login(c.user, "password-123")
			clients[c.user] = cl
		}
		_, err := cl.Do(bg, c.method, c.path, nil, c.body, nil)
		got := 200
		if err != nil {
			got = client.StatusOf(err)
		}
		if got != c.status {
			t.Errorf("%s %s %s: %d, want %d (%v)", c.user, c.method, c.path, got, c.status, err)
		}
	}
}
