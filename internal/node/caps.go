package node

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"time"

	"github.com/corral-project/corral/api"
)

// execTimeout bounds every helper program corral runs for the status: a
// wedged binary (NFS-mounted PATH, broken install) must not wedge the API.
const execTimeout = 5 * time.Second

// qemuBinary is the system emulator for this host's architecture; corral
// only runs guests of the host architecture.
func qemuBinary() string {
	switch runtime.GOARCH {
	case "arm64":
		return "qemu-system-aarch64"
	default:
		return "qemu-system-x86_64"
	}
}

// output runs a program with an argument list (no shell) under execTimeout
// and returns its stdout. The C locale keeps version strings parseable.
func output(ctx context.Context, path string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, execTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.WaitDelay = time.Second // don't wait forever on pipes held by grandchildren
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 200 {
			msg = msg[:200] + "..."
		}
		if msg != "" {
			return "", fmt.Errorf("%s %s: %w: %s", path, strings.Join(args, " "), err, msg)
		}
		return "", fmt.Errorf("%s %s: %w", path, strings.Join(args, " "), err)
	}
	return string(out), nil
}

var qemuVersionRE = regexp.MustCompile(`version (\d+\.\d+(?:\.\d+)?)`)

// qemuCapability reports whether the QEMU system emulator is installed and
// runs. It does not say whether it can use KVM; that is the KVM capability.
func qemuCapability(ctx context.Context) api.Capability {
	bin := qemuBinary()
	path, err := exec.LookPath(bin)
	if err != nil {
		return api.Capability{Detail: bin + " not found in PATH (install qemu-system-x86)"}
	}
	out, err := output(ctx, path, "--version")
	if err != nil {
		return api.Capability{Detail: err.Error()}
	}
	m := qemuVersionRE.FindStringSubmatch(out)
	if m == nil {
		return api.Capability{Detail: fmt.Sprintf("%s --version printed no version: %q", path, firstLine(out))}
	}
	return api.Capability{Available: true, Version: m[1], Detail: path}
}

var lxcVersionRE = regexp.MustCompile(`^\d+\.\d+(?:\.\d+)?`)

// lxcCapability reports whether LXC's tools are installed and the kernel
// offers the unified cgroup hierarchy (cgroup2) that corral puts containers
// in. A pure cgroup v1 host could run LXC but not corral's resource limits.
func lxcCapability(ctx context.Context) api.Capability {
	var missing []string
	var version, detail string

	tools := []string{"lxc-start", "lxc-info"}
	var errs []string
	for _, tool := range tools {
		path, err := exec.LookPath(tool)
		if err != nil {
			continue
		}
		out, err := output(ctx, path, "--version")
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		if v := lxcVersionRE.FindString(strings.TrimSpace(out)); v != "" {
			version = v
			break
		}
		errs = append(errs, fmt.Sprintf("%s --version printed no version: %q", path, firstLine(out)))
	}
	if version == "" {
		if len(errs) == 0 {
			missing = append(missing, "lxc-start/lxc-info not found in PATH (install lxc)")
		} else {
			missing = append(missing, strings.Join(errs, "; "))
		}
	}

	if f, err := os.Open("/proc/self/mounts"); err != nil {
		missing = append(missing, fmt.Sprintf("cannot read mount table: %v", err))
	} else {
		mps, err := cgroup2Mounts(f)
		f.Close()
		switch {
		case err != nil:
			missing = append(missing, err.Error())
		case len(mps) == 0:
			missing = append(missing, "no cgroup2 file system mounted")
		default:
			detail = "cgroup2 at " + strings.Join(mps, ", ")
		}
	}

	if len(missing) > 0 {
		return api.Capability{Version: version, Detail: strings.Join(missing, "; ")}
	}
	return api.Capability{Available: true, Version: version, Detail: detail}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}
