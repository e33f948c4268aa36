package test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/corral-project/corral/api"
)

// corral events follows the stream (and resumes from an ID); corral top
// shows the node and its guests.
func TestCLIEventsAndTop(t *testing.T) {
	n := StartNode(t, "CORRAL_METRICS_INTERVAL=1s")
	env := []string{"HOME=" + t.TempDir(), "XDG_CONFIG_HOME=", "CORRAL_SOCKET=" + n.Socket, "CORRAL_SERVER=", "CORRAL_TOKEN="}
	cmd := exec.Command(corralBin, "events", "--type", "storage", "--count", "2", "-o", "json")
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	time.Sleep(time.Second)
	c := n.Admin()
	pool := api.Storage{Storage: "evpool", Type: "dir", Content: []string{"iso"}, Path: t.TempDir()}
	if _, err := c.Do(bg, "POST", "/storage", nil, pool, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Do(bg, "DELETE", "/storage/evpool", nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("corral events: %v %s", err, errOut.String())
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("corral events did not exit after 2 events: %s %s", out.String(), errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var evs []api.Event
	for _, l := range lines {
		var e api.Event
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("event line %q: %v", l, err)
		}
		evs = append(evs, e)
	}
	if len(evs) != 2 || evs[0].Type != api.EventStorage || evs[0].Storage != "evpool" || evs[0].Deleted || !evs[1].Deleted {
		t.Fatalf("events: %+v", evs)
	}
	// Resume after the first: the second is replayed, in table form.
	o, e, code := n.CLI(env, "", "events", "--after", evs[0].ID, "--count", "1")
	if code != 0 || !strings.Contains(o, evs[1].ID) || !strings.Contains(o, "storage.changed") || !strings.Contains(o, "deleted") {
		t.Fatalf("events --after: %d %q %s", code, o, e)
	}
	if _, e, code := n.CLI(env, "", "events", "--type", "bogus", "--count", "1"); code == 0 || !strings.Contains(e, "type") {
		t.Fatalf("events --type bogus: %d %s", code, e)
	}

	time.Sleep(2 * time.Second) // two samples, so rates exist
	o, e, code = n.CLI(env, "", "top", "-n", "2", "--interval", "200ms", "--sort", "mem")
	if code != 0 || strings.Count(o, "VMID") != 2 || !strings.Contains(o, "\nn1 ") || !strings.Contains(o, "VMID") {
		t.Fatalf("top: %d %q %s", code, o, e)
	}
	if _, _, code := n.CLI(env, "", "top", "--sort", "disk"); code == 0 {
		t.Fatal("top --sort disk accepted")
	}
}
