// Package task runs corral's long operations: each gets a cluster-unique
// ID, a record in the store (status, exit message) and a log file on the
// node that executes it, which clients can follow while it runs.
package task

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// ID is a parsed task ID. Its text form, in the spirit of Proxmox's UPID,
// is UPID:<node>:<unique>:<start>:<type>:<target>:<user>: — the node and a
// random part make it unique across the cluster without coordination.
type ID struct {
	Node   string
	Unique string // 8 hex digits, random
	Start  time.Time
	Type   string
	Target string
	User   string
}

var (
	nodeRe   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$`)
	typeRe   = regexp.MustCompile(`^[a-z][a-z0-9]{0,31}$`)
	targetRe = regexp.MustCompile(`^[A-Za-z0-9._@!-]{0,128}$`)
	userRe   = regexp.MustCompile(`^[A-Za-z0-9._@!-]{1,192}$`)
	hex8Re   = regexp.MustCompile(`^[0-9A-F]{8}$`)
)

// NewID makes an ID for a task starting now.
func NewID(node, typ, target, user string, now time.Time) (ID, error) {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		return ID{}, err
	}
	id := ID{Node: node, Unique: strings.ToUpper(hex.EncodeToString(b)), Start: now.Truncate(time.Second), Type: typ, Target: target, User: user}
	if err := id.validate(); err != nil {
		return ID{}, err
	}
	return id, nil
}

func (id ID) validate() error {
	switch {
	case !nodeRe.MatchString(id.Node):
		return fmt.Errorf("task id: invalid node %q", id.Node)
	case !hex8Re.MatchString(id.Unique):
		return fmt.Errorf("task id: invalid unique part %q", id.Unique)
	case !typeRe.MatchString(id.Type):
		return fmt.Errorf("task id: invalid type %q", id.Type)
	case !targetRe.MatchString(id.Target):
		return fmt.Errorf("task id: invalid target %q", id.Target)
	case !userRe.MatchString(id.User):
		return fmt.Errorf("task id: invalid user %q", id.User)
	}
	return nil
}

// String is the UPID form.
func (id ID) String() string {
	return fmt.Sprintf("UPID:%s:%s:%08X:%s:%s:%s:", id.Node, id.Unique, id.Start.Unix(), id.Type, id.Target, id.User)
}

// ParseID parses and validates a UPID. It never trusts its input: the
// ID names a log file, so every part is checked against a strict pattern.
func ParseID(s string) (ID, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 8 || parts[0] != "UPID" || parts[7] != "" {
		return ID{}, fmt.Errorf("task id: malformed %q", s)
	}
	if !hex8Re.MatchString(parts[3]) {
		return ID{}, fmt.Errorf("task id: invalid start %q", parts[3])
	}
	start, _ := strconv.ParseInt(parts[3], 16, 64)
	id := ID{Node: parts[1], Unique: parts[2], Start: time.Unix(start, 0), Type: parts[4], Target: parts[5], User: parts[6]}
	if err := id.validate(); err != nil {
		return ID{}, err
	}
	return id, nil
}
