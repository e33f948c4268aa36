package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// lxdPreseed sets LXD up for the bench only: a dir storage pool and a
// default profile with a root disk and no NIC. `lxd init --auto` would
// also create the lxdbr0 bridge with NAT to the outside, which the bench
// must never do; the preseed is just as non-interactive.
const lxdPreseed = `storage_pools:
- name: default
  driver: dir
profiles:
- name: default
  devices:
    root:
      path: /
      pool: default
      type: disk
`

// lxdHost is a private LXD daemon (Debian's lxd package) with its state in
// LXD_DIR under the lab's temp dir, so nothing outside it changes and
// close leaves no daemon running.
type lxdHost struct {
	dir     string
	cmd     *exec.Cmd
	exited  chan struct{}
	version string
}

// startLXD starts the daemon and initialises it. Any error says why LXD
// cannot run here; the report quotes it.
func (l *lab) startLXD(ctx context.Context) (*lxdHost, error) {
	for _, bin := range []string{"lxd", "lxc"} {
		if _, err := exec.LookPath(bin); err != nil {
			return nil, fmt.Errorf("%s not found (apt-get install lxd lxd-client)", bin)
		}
	}
	x := &lxdHost{dir: filepath.Join(l.root, "lxd"), exited: make(chan struct{})}
	if err := os.MkdirAll(x.dir, 0o711); err != nil {
		return nil, err
	}
	x.cmd = exec.Command("lxd", "--logfile", filepath.Join(x.dir, "lxd.log"))
	x.cmd.Env = append(os.Environ(), "LXD_DIR="+x.dir)
	if err := x.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start lxd: %w", err)
	}
	go func() { x.cmd.Wait(); close(x.exited) }()
	l.atClose(x.close)
	if _, err := x.tool(ctx, time.Minute, nil, "lxd", "waitready", "--timeout", "50"); err != nil {
		return nil, fmt.Errorf("%w (log: %s)", err, x.logTail())
	}
	if _, err := x.tool(ctx, time.Minute, strings.NewReader(lxdPreseed), "lxd", "init", "--preseed"); err != nil {
		return nil, err
	}
	if v, err := x.lxc(ctx, "version"); err == nil {
		x.version = strings.TrimSpace(v)
		if i := strings.LastIndex(x.version, ":"); i >= 0 {
			x.version = strings.TrimSpace(x.version[i+1:])
		}
	}
	return x, nil
}

// tool runs lxd or lxc against this daemon.
func (x *lxdHost) tool(ctx context.Context, within time.Duration, stdin *strings.Reader, bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "LXD_DIR="+x.dir)
	cmd.Stdout, cmd.Stderr = &out, &out
	if stdin != nil {
		cmd.Stdin = stdin
	}
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %v: %s", bin, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

func (x *lxdHost) lxc(ctx context.Context, args ...string) (string, error) {
	return x.tool(ctx, 5*time.Minute, nil, "lxc", args...)
}

// importImage imports a corral template as an LXD image under alias: a
// metadata tarball made here plus the template itself as the rootfs
// tarball (LXD's split image format).
func (x *lxdHost) importImage(ctx context.Context, alias, rootfs string) error {
	meta := filepath.Join(x.dir, alias+"-meta.tar.gz")
	yaml := fmt.Sprintf("architecture: x86_64\ncreation_date: %d\nproperties:\n  description: corral bench %s\n  os: %s\n", time.Now().Unix(), alias, alias)
	if err := writeTarGz(meta, "metadata.yaml", []byte(yaml)); err != nil {
		return err
	}
	_, err := x.lxc(ctx, "image", "import", meta, rootfs, "--alias", alias)
	return err
}

func writeTarGz(path, name string, data []byte) error {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: time.Now()}); err != nil {
		return err
	}
	if _, err := tw.Write(data); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := gz.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

// launch creates and starts an instance from an image with the bench
// container's memory limit; `lxc launch` returns once it runs.
func (x *lxdHost) launch(ctx context.Context, image, name string) (time.Duration, error) {
	t0 := time.Now()
	_, err := x.lxc(ctx, "launch", image, name, "-c", "limits.memory=64MiB")
	return time.Since(t0), err
}

func (x *lxdHost) start(ctx context.Context, name string) (time.Duration, error) {
	t0 := time.Now()
	_, err := x.lxc(ctx, "start", name)
	return time.Since(t0), err
}

func (x *lxdHost) stop(ctx context.Context, name string) error {
	_, err := x.lxc(ctx, "stop", "-f", name)
	return err
}

func (x *lxdHost) remove(ctx context.Context, name string) error {
	_, err := x.lxc(ctx, "delete", "-f", name)
	return err
}

// mem is the LXD daemon's memory (the lxd process; like corral's daemon,
// it leaves each container's monitor to a process of its own).
func (x *lxdHost) mem() (memInfo, error) { return readMem(x.cmd.Process.Pid) }

func (x *lxdHost) running() bool {
	select {
	case <-x.exited:
		return false
	default:
		return true
	}
}

// close deletes every instance and image, shuts the daemon down (kills it
// if it will not go) and removes its state. It must not use the run's
// context, which may be cancelled by now.
func (x *lxdHost) close() {
	if !x.running() {
		os.RemoveAll(x.dir)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if out, err := x.lxc(ctx, "list", "--format", "csv", "-c", "n"); err == nil {
		for _, name := range strings.Fields(out) {
			if err := x.remove(ctx, name); err != nil {
				logf("lxd cleanup: %v", err)
			}
		}
	}
	if out, err := x.lxc(ctx, "image", "list", "--format", "csv", "-c", "F"); err == nil {
		for _, fp := range strings.Fields(out) {
			if _, err := x.lxc(ctx, "image", "delete", fp); err != nil {
				logf("lxd cleanup: %v", err)
			}
		}
	}
	if _, err := x.tool(ctx, 2*time.Minute, nil, "lxd", "shutdown"); err != nil {
		logf("lxd cleanup: %v", err)
	}
	select {
	case <-x.exited:
	case <-time.After(30 * time.Second):
		x.cmd.Process.Kill()
		<-x.exited
	}
	if err := os.RemoveAll(x.dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		logf("lxd cleanup: %v", err)
	}
}

// logTail is the end of LXD's log, for errors.
func (x *lxdHost) logTail() string {
	b, _ := os.ReadFile(filepath.Join(x.dir, "lxd.log"))
	s := strings.TrimSpace(string(b))
	if len(s) > 600 {
		s = "…" + s[len(s)-600:]
	}
	return s
}
