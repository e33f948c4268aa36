package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/lxc"
)

// The container the phase creates again and again, and the target.
const (
	benchCTID         = 9300
	targetCTOverRatio = 1.30 // create+start within 30 % of bare LXC
)

// ctResult is the container phase.
type ctResult struct {
	lxcVersion string
	template   string
	corral     []time.Duration // POST /containers {start} to the task's end
	corralPost []time.Duration // ... to the POST's answer
	bare       []time.Duration // unpack + config + lxc-start -d
	corralRun  []time.Duration // start only: POST status/start to the task's end
	bareRun    []time.Duration // start only: lxc-start -d
	lxdSkip    string
}

func (r *ctResult) ratio() float64 {
	return float64(median(r.corral)) / float64(median(r.bare))
}

// ctBench holds what the container phase's steps share.
type ctBench struct {
	l       *lab
	b       *vmBench // for its task polling
	tmpl    string   // the template file on the pool
	bareDir string   // lxcpath of the bare containers
	conf    string   // the LXC config corral generated, for the bare runs
}

// ctPhase times create+start of a busybox container through the API
// against the same done by hand with LXC's tools: unpack the template in
// the user namespace, write an equivalent config, lxc-start -d.
func (l *lab) ctPhase(ctx context.Context) (ctResult, error) {
	var r ctResult
	for _, bin := range []string{"lxc-start", "lxc-usernsexec", lxc.BusyboxBinary} {
		if _, err := exec.LookPath(bin); err != nil {
			return r, fmt.Errorf("%s not found (apt-get install lxc uidmap busybox-static)", bin)
		}
	}
	if out, err := exec.CommandContext(ctx, "lxc-start", "--version").Output(); err == nil {
		r.lxcVersion = strings.TrimSpace(string(out))
	}
	r.lxdSkip = "Debian's lxd package is not installed on this machine"
	if _, err := exec.LookPath("lxd"); err == nil {
		r.lxdSkip = "LXD is installed, but the bench does not drive it yet"
	}
	n, err := l.newNode("cts")
	if err != nil {
		return r, err
	}
	logf("ct: starting a fresh daemon")
	if _, err := n.start(ctx); err != nil {
		return r, err
	}
	defer n.stop()
	lxcPath := filepath.Join(n.dataDir, "lxc")
	l.atClose(func() {
		exec.Command("lxc-stop", "-P", lxcPath, "-n", strconv.Itoa(benchCTID), "-k").Run()
		removeCTCgroups(lxc.CgroupTag(lxcPath))
	})
	c, err := n.client()
	if err != nil {
		return r, err
	}
	defer c.Close()
	if _, err := c.Login(ctx, "admin@corral", l.password); err != nil {
		return r, err
	}
	cb := &ctBench{l: l, b: &vmBench{l: l, n: n, c: c}}
	upid, err := c.BuildTemplate(ctx, nodeName, "local", api.TemplateBuild{Kind: "busybox", Filename: "bench-busybox.tar.gz"})
	if err != nil {
		return r, err
	}
	if _, err := cb.b.waitTask(ctx, upid, 2*time.Minute); err != nil {
		return r, err
	}
	r.template = "local:vztmpl/bench-busybox.tar.gz"
	cb.tmpl = filepath.Join(n.dataDir, "storage", "template", "cache", "bench-busybox.tar.gz")
	if cb.bareDir, err = os.MkdirTemp("", "corral-bench-lxc-"); err != nil {
		return r, err
	}
	os.Chmod(cb.bareDir, 0o755) // the container's root (uid 100000) must reach its rootfs
	l.atClose(func() {
		exec.Command("lxc-stop", "-P", cb.bareDir, "-n", "bare", "-k").Run()
		removeCTCgroups("corral-bench-bare")
		os.RemoveAll(cb.bareDir)
	})

	// Warm-up (not recorded): pages everything in; its LXC config is the
	// one the bare runs use.
	logf("ct: warm-up create+start through the API")
	if _, _, err := cb.createStart(ctx); err != nil {
		return r, err
	}
	b, err := os.ReadFile(filepath.Join(lxcPath, strconv.Itoa(benchCTID), "config"))
	if err != nil {
		return r, err
	}
	cb.conf = string(b)
	if err := cb.destroy(ctx); err != nil {
		return r, err
	}
	if _, err := cb.bareCreateStart(ctx); err != nil {
		return r, fmt.Errorf("bare LXC warm-up: %w", err)
	}
	cb.bareDestroy()

	for i := range l.cfg.ctStarts {
		d, post, err := cb.createStart(ctx)
		if err != nil {
			return r, err
		}
		r.corral, r.corralPost = append(r.corral, d), append(r.corralPost, post)
		// Start only: stop and start the same container again.
		if err := cb.action(ctx, "stop"); err != nil {
			return r, err
		}
		run, err := cb.timedAction(ctx, "start")
		if err != nil {
			return r, err
		}
		r.corralRun = append(r.corralRun, run)
		if err := cb.destroy(ctx); err != nil {
			return r, err
		}
		bd, err := cb.bareCreateStart(ctx)
		if err != nil {
			return r, fmt.Errorf("bare LXC: %w", err)
		}
		r.bare = append(r.bare, bd)
		if _, err := lxcTool(ctx, "lxc-stop", "-P", cb.bareDir, "-n", "bare", "-k"); err != nil {
			return r, err
		}
		t0 := time.Now()
		if _, err := lxcTool(ctx, "lxc-start", "-P", cb.bareDir, "-n", "bare", "-d"); err != nil {
			return r, err
		}
		r.bareRun = append(r.bareRun, time.Since(t0))
		cb.bareDestroy()
		logf("ct: %d/%d: corral create+start %s (start %s), bare %s (start %s)", i+1, l.cfg.ctStarts, ms(d), ms(run), ms(bd), ms(r.bareRun[i]))
	}
	return r, n.stop()
}

// createStart creates and starts the bench container through the API and
// returns the time to the task's end and to the POST's answer.
func (cb *ctBench) createStart(ctx context.Context) (time.Duration, time.Duration, error) {
	t0 := time.Now()
	cr, err := cb.b.c.CreateContainer(ctx, api.CTCreate{VMID: benchCTID, OSTemplate: "local:vztmpl/bench-busybox.tar.gz", Memory: 64, Start: true})
	if err != nil {
		return 0, 0, err
	}
	post := time.Since(t0)
	t, err := cb.b.waitTask(ctx, cr.Task, time.Minute)
	if err != nil {
		return 0, 0, err
	}
	return taskEnd(t, t0), post, nil
}

// taskEnd is the time from t0 to the task's recorded end.
func taskEnd(t api.Task, t0 time.Time) time.Duration {
	if t.EndTime == nil {
		return time.Since(t0)
	}
	return t.EndTime.Sub(t0)
}

func (cb *ctBench) timedAction(ctx context.Context, action string) (time.Duration, error) {
	t0 := time.Now()
	upid, err := cb.b.c.CTAction(ctx, benchCTID, action, nil)
	if err != nil {
		return 0, err
	}
	t, err := cb.b.waitTask(ctx, upid, time.Minute)
	if err != nil {
		return 0, err
	}
	return taskEnd(t, t0), nil
}

func (cb *ctBench) action(ctx context.Context, action string) error {
	_, err := cb.timedAction(ctx, action)
	return err
}

func (cb *ctBench) destroy(ctx context.Context) error {
	if err := cb.action(ctx, "stop"); err != nil {
		return err
	}
	upid, err := cb.b.c.DeleteContainer(ctx, benchCTID, false)
	if err != nil {
		return err
	}
	_, err = cb.b.waitTask(ctx, upid, time.Minute)
	return err
}

var (
	rootfsLine = regexp.MustCompile(`(?m)^lxc\.rootfs\.path = .*$`)
	cgDirLine  = regexp.MustCompile(`(?m)^lxc\.cgroup\.dir\.(monitor|container) = .*$`)
	hwaddrLine = regexp.MustCompile(`(?m)^lxc\.net\.[0-9]+\.hwaddr = .*$`)
)

// bareCreateStart does by hand what corral's create+start does: unpack
// the template into a new directory inside the user namespace, write the
// config, lxc-start -d (which returns once the container runs).
func (cb *ctBench) bareCreateStart(ctx context.Context) (time.Duration, error) {
	dir := filepath.Join(cb.bareDir, "bare")
	rootfs := filepath.Join(dir, "rootfs")
	conf := rootfsLine.ReplaceAllString(cb.conf, "lxc.rootfs.path = dir:"+rootfs)
	conf = cgDirLine.ReplaceAllString(conf, "lxc.cgroup.dir.$1 = corral-bench-bare/$1")
	conf = hwaddrLine.ReplaceAllString(conf, "")
	t0 := time.Now()
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		return 0, err
	}
	if err := os.Chown(rootfs, 100000, 100000); err != nil {
		return 0, err
	}
	f, err := os.Open(cb.tmpl)
	if err != nil {
		return 0, err
	}
	cmd := exec.CommandContext(ctx, "lxc-usernsexec", "-m", "b:0:100000:65536", "--", "tar", "-x", "-z", "-p", "--numeric-owner", "-f", "-", "--exclude=./dev/*")
	cmd.Dir, cmd.Stdin = rootfs, f
	out, err := cmd.CombinedOutput()
	f.Close()
	if err != nil {
		return 0, fmt.Errorf("unpack: %v: %s", err, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "config"), []byte(conf), 0o644); err != nil {
		return 0, err
	}
	if _, err := lxcTool(ctx, "lxc-start", "-P", cb.bareDir, "-n", "bare", "-d"); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}

func (cb *ctBench) bareDestroy() {
	exec.Command("lxc-stop", "-P", cb.bareDir, "-n", "bare", "-k").Run()
	os.RemoveAll(filepath.Join(cb.bareDir, "bare"))
}

// lxcTool runs an LXC tool and returns its output, failing with it.
func lxcTool(ctx context.Context, bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %v: %s", bin, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// removeCTCgroups removes the (empty) cgroup directories a daemon's or the
// bare runs' containers left under their tag.
func removeCTCgroups(tag string) {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*/" + tag)
	if _, err := os.Stat("/sys/fs/cgroup/" + tag); err == nil {
		roots = append(roots, "/sys/fs/cgroup/"+tag)
	}
	for _, r := range roots {
		subs, _ := os.ReadDir(r)
		for _, s := range subs {
			if s.IsDir() {
				os.Remove(filepath.Join(r, s.Name()))
			}
		}
		if err := os.Remove(r); err != nil && !errors.Is(err, os.ErrNotExist) {
			logf("ct: cgroup %s left: %v", r, err)
		}
	}
}
