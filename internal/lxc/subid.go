package lxc

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ensureSubIDs makes sure root owns the ID range of unprivileged
// containers in /etc/subuid and /etc/subgid: LXC maps IDs with the setuid
// newuidmap/newgidmap when they are installed, and those check the files
// even for root. Proxmox's installer adds the same line.
func ensureSubIDs(m IDMap) error {
	for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
		b, err := os.ReadFile(f)
		if err != nil && !os.IsNotExist(err) {
			return err
		}
		if coversRange(string(b), m) {
			continue
		}
		fh, err := os.OpenFile(f, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return fmt.Errorf("add root's ID range to %s: %w", f, err)
		}
		line := fmt.Sprintf("root:%d:%d\n", m.Base, m.Size)
		if len(b) > 0 && !strings.HasSuffix(string(b), "\n") {
			line = "\n" + line
		}
		_, err = fh.WriteString(line)
		fh.Close()
		if err != nil {
			return fmt.Errorf("add root's ID range to %s: %w", f, err)
		}
	}
	return nil
}

// coversRange reports whether a subuid file grants root the whole range.
func coversRange(file string, m IDMap) bool {
	for line := range strings.SplitSeq(file, "\n") {
		f := strings.Split(strings.TrimSpace(line), ":")
		if len(f) != 3 || (f[0] != "root" && f[0] != "0") {
			continue
		}
		start, err1 := strconv.Atoi(f[1])
		n, err2 := strconv.Atoi(f[2])
		if err1 == nil && err2 == nil && start <= m.Base && start+n >= m.Base+m.Size {
			return true
		}
	}
	return false
}
