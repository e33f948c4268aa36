package task

import (
	"testing"
	"time"
)

func TestIDRoundTrip(t *testing.T) {
	now := time.Unix(1700000000, 0)
	id, err := NewID("node1", "vzstart", "100", "admin@corral", now)
	if err != nil {
		t.Fatal(err)
	}
	s := id.String()
	got, err := ParseID(s)
	if err != nil {
		t.Fatal(err)
	}
	if got != id {
		t.Fatalf("round trip: %+v != %+v", got, id)
	}
	other, _ := NewID("node1", "vzstart", "100", "admin@corral", now)
	if other.String() == s {
		t.Fatal("two IDs at the same second are equal")
	}
}

func TestParseIDRejects(t *testing.T) {
	bad := []string{
		"",
		"UPID:n1:0000000A:6553F100:sleep::admin@corral",      // missing trailing colon
		"UPID:n1:0000000A:6553F100:sleep::../../etc/passwd:", // path traversal in user
		"UPID:n/1:0000000A:6553F100:sleep::admin@corral:",
		"UPID:n1:zz:6553F100:sleep::admin@corral:",
		"UPID:n1:0000000A:6553F100:Sleep::admin@corral:",
		"PID:n1:0000000A:6553F100:sleep::admin@corral:",
		"UPID:n1:0000000A:6553F100:sleep:a b:admin@corral:",
	}
	for _, s := range bad {
		if _, err := ParseID(s); err == nil {
			t.Errorf("ParseID(%q) accepted", s)
		}
	}
	if _, err := NewID("n1", "bad type", "", "u@corral", time.Now()); err == nil {
		t.Error("NewID accepted a bad type")
	}
}
