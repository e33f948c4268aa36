package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/lxc"
)

// The container the phase creates again and again, and the targets.
const (
	benchCTID         = 9300
	fleetCTBase       = 9400 // the -ct-fleet containers get IDs from here
	fleetWorkers      = 4    // concurrent creates while filling the node
	targetCTOverRatio = 1.30 // create+start within 30 % of bare LXC
	lxdInstance       = "cbench-lxd"
)

// debianCache keeps the Debian template between runs: debootstrap takes
// minutes and fetches from the mirror, and the bench measures starts, not
// the build.
const debianCache = "/var/cache/corral-bench/debian-12-minbase-amd64.tar.gz"

// ctResult is the container phase.
type ctResult struct {
	lxcVersion string
	lxdVersion string
	lxdSkip    string // why LXD was not measured: the attempt's error
	runs       []ctRun
	fleet      ctFleet
}

// ctRun is one template's create+start measurement.
type ctRun struct {
	kind       string // the template build's kind: busybox, debian
	template   string
	size       int64
	skip       string          // why the template could not be measured
	corral     []time.Duration // POST /containers {start} to the task's end
	corralPost []time.Duration // ... to the POST's answer
	bare       []time.Duration // unpack + config + lxc-start -d
	corralRun  []time.Duration // start only: POST status/start to the task's end
	bareRun    []time.Duration // start only: lxc-start -d
	lxd        []time.Duration // lxc launch
	lxdRun     []time.Duration // start only: lxc start
}

func (r *ctRun) ratio() float64 {
	return float64(median(r.corral)) / float64(median(r.bare))
}

// ctFleet is the node filled with containers.
type ctFleet struct {
	n                   int
	total               time.Duration // all creates+starts, fleetWorkers at a time
	memBefore, memAfter memInfo       // the daemon, with none and with n running
	lxdTotal            time.Duration
	lxdBefore, lxdAfter memInfo
	lxdSkip             string
}

// ctBench holds what the container phase's steps share.
type ctBench struct {
	l       *lab
	b       *vmBench // for its task polling
	lxd     *lxdHost // nil when LXD cannot run here
	volid   string   // the template's volume ID
	tmpl    string   // the template file on the pool
	bareDir string   // lxcpath of the bare containers
	conf    string   // the LXC config corral generated, for the bare runs
}

// ctPhase times create+start of a busybox and a Debian container through
// the API against the same done by hand with LXC's tools (unpack the
// template in the user namespace, write an equivalent config, lxc-start
// -d) and against LXD launching an image of the same template, then
// fills the node with containers.
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
		for _, id := range append([]int{benchCTID}, fleetIDs(l.cfg.ctFleet)...) {
			exec.Command("lxc-stop", "-P", lxcPath, "-n", strconv.Itoa(id), "-k").Run()
		}
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
	logf("ct: starting LXD")
	if cb.lxd, err = l.startLXD(ctx); err != nil {
		r.lxdSkip = err.Error()
		logf("ct: LXD cannot run here: %v", err)
	} else {
		r.lxdVersion = cb.lxd.version
		defer cb.lxd.close()
	}
	if cb.bareDir, err = os.MkdirTemp("", "corral-bench-lxc-"); err != nil {
		return r, err
	}
	os.Chmod(cb.bareDir, 0o755) // the container's root (uid 100000) must reach its rootfs
	l.atClose(func() {
		exec.Command("lxc-stop", "-P", cb.bareDir, "-n", "bare", "-k").Run()
		removeCTCgroups("corral-bench-bare")
		os.RemoveAll(cb.bareDir)
	})

	for _, kind := range []string{"busybox", "debian"} {
		run := ctRun{kind: kind}
		if err := cb.template(ctx, &run); err != nil {
			if kind == "busybox" {
				return r, err
			}
			run.skip = err.Error()
			logf("ct: %s not measured: %v", kind, err)
		} else if err := cb.measure(ctx, &run); err != nil {
			return r, fmt.Errorf("%s: %w", kind, err)
		}
		r.runs = append(r.runs, run)
	}
	if err := cb.fill(ctx, &r.fleet); err != nil {
		return r, fmt.Errorf("%d containers: %w", l.cfg.ctFleet, err)
	}
	return r, n.stop()
}

// template puts the run's template on the pool (and into LXD): busybox is
// built by the daemon; Debian comes from the cache, built by the daemon
// (debootstrap) when the cache is empty.
func (cb *ctBench) template(ctx context.Context, run *ctRun) error {
	name := "bench-" + run.kind + ".tar.gz"
	run.template = "local:vztmpl/" + name
	cb.volid = run.template
	cb.tmpl = filepath.Join(cb.b.n.dataDir, "storage", "template", "cache", name)
	if run.kind == "debian" {
		if err := copyFile(debianCache, cb.tmpl); err == nil {
			logf("ct: Debian template from %s", debianCache)
		} else {
			logf("ct: building the Debian template (debootstrap; no %s yet)", debianCache)
			if err := cb.build(ctx, run.kind, name, 30*time.Minute); err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(debianCache), 0o755); err == nil {
				copyFile(cb.tmpl, debianCache)
			}
		}
	} else if err := cb.build(ctx, run.kind, name, 2*time.Minute); err != nil {
		return err
	}
	if fi, err := os.Stat(cb.tmpl); err == nil {
		run.size = fi.Size()
	}
	if cb.lxd != nil {
		logf("ct: importing the %s template into LXD", run.kind)
		if err := cb.lxd.importImage(ctx, "cbench-"+run.kind, cb.tmpl); err != nil {
			return fmt.Errorf("LXD image import: %w", err)
		}
	}
	return nil
}

func (cb *ctBench) build(ctx context.Context, kind, name string, within time.Duration) error {
	upid, err := cb.b.c.BuildTemplate(ctx, nodeName, "local", api.TemplateBuild{Kind: kind, Filename: name})
	if err != nil {
		return err
	}
	_, err = cb.b.waitTask(ctx, upid, within)
	return err
}

// copyFile copies src to dst through a temp file, so dst is whole or absent.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".part"
	out, err := os.Create(tmp)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return nil
}

// measure times ctStarts rounds of create+start and start only through
// the API, with bare LXC and with LXD, interleaved so drift hits all alike.
func (cb *ctBench) measure(ctx context.Context, run *ctRun) error {
	l := cb.l
	// Warm-up (not recorded): pages everything in; its LXC config is the
	// one the bare runs use.
	logf("ct: %s: warm-up create+start through the API", run.kind)
	if _, _, err := cb.createStart(ctx); err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(cb.b.n.dataDir, "lxc", strconv.Itoa(benchCTID), "config"))
	if err != nil {
		return err
	}
	cb.conf = string(b)
	if err := cb.destroy(ctx); err != nil {
		return err
	}
	if _, err := cb.bareCreateStart(ctx); err != nil {
		return fmt.Errorf("bare LXC warm-up: %w", err)
	}
	cb.bareDestroy()
	image := "cbench-" + run.kind
	if cb.lxd != nil {
		if _, err := cb.lxd.launch(ctx, image, lxdInstance); err != nil {
			return fmt.Errorf("LXD warm-up: %w", err)
		}
		if err := cb.lxd.remove(ctx, lxdInstance); err != nil {
			return err
		}
	}

	for i := range l.cfg.ctStarts {
		d, post, err := cb.createStart(ctx)
		if err != nil {
			return err
		}
		run.corral, run.corralPost = append(run.corral, d), append(run.corralPost, post)
		// Start only: stop and start the same container again.
		if err := cb.action(ctx, "stop"); err != nil {
			return err
		}
		rd, err := cb.timedAction(ctx, "start")
		if err != nil {
			return err
		}
		run.corralRun = append(run.corralRun, rd)
		if err := cb.destroy(ctx); err != nil {
			return err
		}
		bd, err := cb.bareCreateStart(ctx)
		if err != nil {
			return fmt.Errorf("bare LXC: %w", err)
		}
		run.bare = append(run.bare, bd)
		if _, err := lxcTool(ctx, "lxc-stop", "-P", cb.bareDir, "-n", "bare", "-k"); err != nil {
			return err
		}
		t0 := time.Now()
		if _, err := lxcTool(ctx, "lxc-start", "-P", cb.bareDir, "-n", "bare", "-d"); err != nil {
			return err
		}
		run.bareRun = append(run.bareRun, time.Since(t0))
		cb.bareDestroy()
		lxdNote := ""
		if cb.lxd != nil {
			ld, err := cb.lxd.launch(ctx, image, lxdInstance)
			if err != nil {
				return err
			}
			if err := cb.lxd.stop(ctx, lxdInstance); err != nil {
				return err
			}
			lr, err := cb.lxd.start(ctx, lxdInstance)
			if err != nil {
				return err
			}
			if err := cb.lxd.remove(ctx, lxdInstance); err != nil {
				return err
			}
			run.lxd, run.lxdRun = append(run.lxd, ld), append(run.lxdRun, lr)
			lxdNote = fmt.Sprintf(", LXD %s (start %s)", ms(ld), ms(lr))
		}
		logf("ct: %s %d/%d: corral create+start %s (start %s), bare %s (start %s)%s", run.kind, i+1, l.cfg.ctStarts, ms(d), ms(rd), ms(bd), ms(run.bareRun[i]), lxdNote)
	}
	return nil
}

// createStart creates and starts the bench container through the API and
// returns the time to the task's end and to the POST's answer.
func (cb *ctBench) createStart(ctx context.Context) (time.Duration, time.Duration, error) {
	return cb.createStartID(ctx, benchCTID)
}

func (cb *ctBench) createStartID(ctx context.Context, id int) (time.Duration, time.Duration, error) {
	t0 := time.Now()
	cr, err := cb.b.c.CreateContainer(ctx, api.CTCreate{VMID: id, OSTemplate: cb.volid, Memory: 64, Start: true})
	if err != nil {
		return 0, 0, err
	}
	post := time.Since(t0)
	t, err := cb.b.waitTask(ctx, cr.Task, 5*time.Minute)
	if err != nil {
		return 0, 0, err
	}
	return taskEnd(t, t0), post, nil
}

func fleetIDs(n int) []int {
	ids := make([]int, n)
	for i := range ids {
		ids[i] = fleetCTBase + i
	}
	return ids
}

// fill creates and starts ctFleet busybox containers on the node,
// fleetWorkers at a time, and reads the daemon's memory before and after;
// then the same with LXD.
func (cb *ctBench) fill(ctx context.Context, f *ctFleet) error {
	f.n = cb.l.cfg.ctFleet
	if f.n == 0 {
		return nil
	}
	cb.volid = "local:vztmpl/bench-busybox.tar.gz"
	var err error
	if err := sleep(ctx, cb.l.cfg.settle); err != nil {
		return err
	}
	if f.memBefore, err = cb.b.n.mem(); err != nil {
		return err
	}
	ids := fleetIDs(f.n)
	logf("ct: creating and starting %d containers, %d at a time", f.n, fleetWorkers)
	t0 := time.Now()
	if err := parallel(ctx, ids, func(id int) error { _, _, err := cb.createStartID(ctx, id); return err }); err != nil {
		return err
	}
	f.total = time.Since(t0)
	if err := sleep(ctx, cb.l.cfg.settle); err != nil {
		return err
	}
	if f.memAfter, err = cb.b.n.mem(); err != nil {
		return err
	}
	logf("ct: %d containers in %s; daemon RSS %s -> %s", f.n, f.total.Round(time.Millisecond), kb(f.memBefore.RSS), kb(f.memAfter.RSS))
	if err := parallel(ctx, ids, func(id int) error { return cb.destroyID(ctx, id) }); err != nil {
		return err
	}
	if cb.lxd == nil {
		f.lxdSkip = "LXD cannot run here"
		return nil
	}
	if f.lxdBefore, err = cb.lxd.mem(); err != nil {
		return err
	}
	logf("ct: launching %d LXD containers, %d at a time", f.n, fleetWorkers)
	t0 = time.Now()
	if err := parallel(ctx, ids, func(id int) error {
		_, err := cb.lxd.launch(ctx, "cbench-busybox", fmt.Sprintf("cbench-%d", id))
		return err
	}); err != nil {
		return err
	}
	f.lxdTotal = time.Since(t0)
	if err := sleep(ctx, cb.l.cfg.settle); err != nil {
		return err
	}
	if f.lxdAfter, err = cb.lxd.mem(); err != nil {
		return err
	}
	logf("ct: %d LXD containers in %s; lxd RSS %s -> %s", f.n, f.lxdTotal.Round(time.Millisecond), kb(f.lxdBefore.RSS), kb(f.lxdAfter.RSS))
	return parallel(ctx, ids, func(id int) error { return cb.lxd.remove(ctx, fmt.Sprintf("cbench-%d", id)) })
}

// parallel runs fn for every id, fleetWorkers at a time, and returns the
// first error (the others still finish).
func parallel(ctx context.Context, ids []int, fn func(int) error) error {
	ch := make(chan int)
	errc := make(chan error, len(ids))
	var wg sync.WaitGroup
	for range fleetWorkers {
		wg.Go(func() {
			for id := range ch {
				errc <- fn(id)
			}
		})
	}
	for _, id := range ids {
		if ctx.Err() != nil {
			break
		}
		ch <- id
	}
	close(ch)
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			return err
		}
	}
	return ctx.Err()
}

// taskEnd is the time from t0 to the task's recorded end.
func taskEnd(t api.Task, t0 time.Time) time.Duration {
	if t.EndTime == nil {
		return time.Since(t0)
	}
	return t.EndTime.Sub(t0)
}

func (cb *ctBench) timedAction(ctx context.Context, action string) (time.Duration, error) {
	return cb.timedActionID(ctx, benchCTID, action)
}

func (cb *ctBench) timedActionID(ctx context.Context, id int, action string) (time.Duration, error) {
	t0 := time.Now()
	upid, err := cb.b.c.CTAction(ctx, id, action, nil)
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

func (cb *ctBench) destroy(ctx context.Context) error { return cb.destroyID(ctx, benchCTID) }

func (cb *ctBench) destroyID(ctx context.Context, id int) error {
	if _, err := cb.timedActionID(ctx, id, "stop"); err != nil {
		return err
	}
	upid, err := cb.b.c.DeleteContainer(ctx, id, false)
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
