package test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/corral-project/corral/api"
)

// TestContainerDebian builds the Debian 12 template with debootstrap and
// boots it: systemd comes up, the network config is ifupdown's, the host
// name is set, and shutdown goes through systemd's halt signal.
func TestContainerDebian(t *testing.T) {
	needLXC(t)
	if os.Getenv("CORRAL_TEST_DEBIAN") == "" {
		t.Skip("SKIP reason: set CORRAL_TEST_DEBIAN=1 to run: debootstrap fetches ~80 MB from the node's Debian mirror and takes minutes")
	}
	n := ctNode(t)
	c := n.Admin()
	upid, err := c.BuildTemplate(bg, n.Name, "local", api.TemplateBuild{Kind: "debian"})
	if err != nil {
		t.Fatal(err)
	}
	waitOK(t, c, upid)
	br := testBridge(t)
	id := createCT(t, c, api.CTCreate{OSTemplate: "local:vztmpl/debian-12-minbase-amd64.tar.gz", Hostname: "deb.example.org", Memory: 256,
		Nets: []api.CTNet{{Name: "eth0", Bridge: br, IP: "10.213.9.2/24", GW: "10.213.9.1"}}, Start: true})
	ct, err := c.Container(bg, id)
	if err != nil || ct.Config.OSType != "debian" {
		t.Fatalf("container: %+v %v", ct, err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		out := ctExec(t, c, id, "systemctl", "is-system-running")
		if st := strings.TrimSpace(out.Stdout); st == "running" {
			break
		} else if time.Now().After(deadline) {
			failed := ctExec(t, c, id, "systemctl", "--failed", "--no-legend")
			t.Fatalf("systemd: %q; failed units: %s", st, failed.Stdout)
		}
		time.Sleep(time.Second)
	}
	if got := mustOut(t, c, id, "hostname", "-f"); got != "deb.example.org" {
		t.Fatalf("hostname -f: %q", got)
	}
	if got := mustOut(t, c, id, "ip", "-4", "route", "show", "default"); !strings.Contains(got, "via 10.213.9.1 dev eth0") {
		t.Fatalf("default route: %q", got)
	}
	upid, err = c.CTAction(bg, id, "shutdown", &api.CTShutdown{Timeout: 60, Force: ptr(false)})
	if err != nil {
		t.Fatal(err)
	}
	waitOK(t, c, upid)
}
