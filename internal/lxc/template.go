package lxc

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
	"github.com/corral-project/corral/internal/storage"
	"github.com/corral-project/corral/internal/task"
)

// BusyboxBinary is the static busybox the busybox template is made of
// (Debian's busybox-static).
var BusyboxBinary = "/bin/busybox"

// tarEntry is one member of a template built in memory.
type tarEntry struct {
	name string
	mode int64
	typ  byte
	link string
	data []byte
}

func dirE(name string, mode int64) tarEntry {
	return tarEntry{name: name, mode: mode, typ: tar.TypeDir}
}
func fileE(name string, mode int64, data string) tarEntry {
	return tarEntry{name: name, mode: mode, typ: tar.TypeReg, data: []byte(data)}
}

const busyboxInittab = `::sysinit:/etc/init.d/rcS
::respawn:/sbin/getty -L 0 console vt100
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/umount -a -r
`

const busyboxRcS = `#!/bin/sh
# corral busybox template: minimal boot
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run 2>/dev/null
mkdir -p /run/lock /var/log
[ -f /etc/hostname ] && hostname -F /etc/hostname
[ -x /etc/network/corral.sh ] && /etc/network/corral.sh
for s in /etc/rc.d/S*; do [ -x "$s" ] && "$s" start; done
exit 0
`

// udhcpcScript applies a DHCP lease with busybox's ip applet.
const udhcpcScript = `#!/bin/sh
[ -n "$1" ] || exit 1
case "$1" in
deconfig) ip addr flush dev "$interface"; ip link set "$interface" up ;;
bound|renew)
	ip addr flush dev "$interface"
	ip addr add "$ip/${mask:-24}" dev "$interface"
	for r in $router; do ip route add default via "$r" dev "$interface"; break; done
	if [ -n "$dns" ]; then : > /etc/resolv.conf; for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done; fi
	;;
esac
exit 0
`

var busyboxVersionRe = regexp.MustCompile(`BusyBox v([0-9][0-9.]*)`)

// BusyboxVersion returns the version of the busybox binary.
func BusyboxVersion(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, BusyboxBinary).CombinedOutput()
	v := busyboxVersionRe.FindSubmatch(out)
	if v == nil {
		return "", fmt.Errorf("%s is not busybox (install busybox-static)", BusyboxBinary)
	}
	return string(v[1]), nil
}

// BuildBusybox writes a busybox system template (.tar.gz, everything owned
// by root) to w: the static binary, its applet links, an inittab with a
// console getty, and an rcS that runs corral's network script.
func BuildBusybox(ctx context.Context, w io.Writer) error {
	version, err := BusyboxVersion(ctx)
	if err != nil {
		return err
	}
	bin, err := os.ReadFile(BusyboxBinary)
	if err != nil {
		return fmt.Errorf("busybox template: %w", err)
	}
	if err := checkStatic(bin); err != nil {
		return fmt.Errorf("busybox template: %s %w (Debian's busybox package replaced busybox-static? install busybox-static)", BusyboxBinary, err)
	}
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	list, err := exec.CommandContext(lctx, BusyboxBinary, "--list-full").Output()
	if err != nil {
		return fmt.Errorf("busybox --list-full: %w", err)
	}
	ents := []tarEntry{dirE("bin", 0o755), dirE("sbin", 0o755), dirE("usr", 0o755), dirE("usr/bin", 0o755), dirE("usr/sbin", 0o755),
		dirE("usr/share", 0o755), dirE("usr/share/udhcpc", 0o755), dirE("etc", 0o755), dirE("etc/init.d", 0o755), dirE("etc/rc.d", 0o755),
		dirE("etc/network", 0o755), dirE("proc", 0o555), dirE("sys", 0o555), dirE("dev", 0o755), dirE("run", 0o755), dirE("tmp", 0o1777),
		dirE("root", 0o700), dirE("home", 0o755), dirE("var", 0o755), dirE("var/log", 0o755), dirE("var/tmp", 0o1777), dirE("mnt", 0o755),
		{name: "var/run", typ: tar.TypeSymlink, link: "../run", mode: 0o777},
		{name: "bin/busybox", mode: 0o755, typ: tar.TypeReg, data: bin},
	}
	sc := bufio.NewScanner(bytes.NewReader(list))
	for sc.Scan() {
		p := strings.TrimSpace(sc.Text())
		if p == "" || p == "bin/busybox" || strings.Contains(p, "..") {
			continue
		}
		ents = append(ents, tarEntry{name: p, typ: tar.TypeSymlink, link: "/bin/busybox", mode: 0o777})
	}
	ents = append(ents,
		fileE("etc/inittab", 0o644, busyboxInittab),
		fileE("etc/init.d/rcS", 0o755, busyboxRcS),
		fileE("usr/share/udhcpc/default.script", 0o755, udhcpcScript),
		fileE("etc/passwd", 0o644, "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"),
		fileE("etc/group", 0o644, "root:x:0:\nnogroup:x:65534:\n"),
		fileE("etc/shadow", 0o600, "root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n"),
		fileE("etc/shells", 0o644, "/bin/sh\n/bin/ash\n"),
		fileE("etc/profile", 0o644, "export PATH="+defaultPath+"\nexport PS1='\\h:\\w\\$ '\n"),
		fileE("etc/hostname", 0o644, "busybox\n"),
		fileE("etc/os-release", 0o644, fmt.Sprintf("NAME=\"BusyBox\"\nID=busybox\nVERSION_ID=%s\nPRETTY_NAME=\"BusyBox %s (corral template)\"\n", version, version)),
	)
	return writeTarGz(w, ents)
}

func writeTarGz(w io.Writer, ents []tarEntry) error {
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	mt := time.Now().Truncate(time.Second)
	for _, e := range ents {
		h := &tar.Header{Name: "./" + e.name, Mode: e.mode, Typeflag: e.typ, Linkname: e.link, Size: int64(len(e.data)), ModTime: mt, Format: tar.FormatGNU}
		if e.typ == tar.TypeDir {
			h.Name += "/"
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if len(e.data) > 0 {
			if _, err := tw.Write(e.data); err != nil {
				return err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

// BuildTemplate builds a template (busybox, or Debian 12 with debootstrap)
// into a pool's vztmpl content, as a task. The file appears only when
// complete (the pool's Import links a finished temp file into place).
func (m *Manager) BuildTemplate(ctx context.Context, poolID string, in api.TemplateBuild, user string) (string, error) {
	cfg, err := m.stor.Get(poolID)
	if err != nil {
		return "", errs.NotFound("storage %s does not exist", poolID)
	}
	if !slices.Contains(cfg.Content, api.ContentVZTmpl) {
		return "", errs.Invalid("storage", "storage %s does not hold container templates (content vztmpl)", poolID)
	}
	name := in.Filename
	if name == "" {
		switch in.Kind {
		case "busybox":
			v, err := BusyboxVersion(ctx)
			if err != nil {
				return "", errs.Conflict("%v", err)
			}
			name = "busybox-" + v + "-amd64.tar.gz"
		case "debian":
			name = "debian-12-minbase-amd64.tar.gz"
		}
	}
	if !strings.HasSuffix(name, ".tar.gz") {
		return "", errs.Invalid("filename", "built templates are .tar.gz")
	}
	if err := storage.CheckFilename(api.ContentVZTmpl, name); err != nil {
		return "", err
	}
	return m.tasks.Start(ctx, "vztmplbuild", poolID, user, func(ctx context.Context, l *task.Log) error {
		p, err := m.stor.Pool(ctx, poolID)
		if err != nil {
			return err
		}
		pr, pw := io.Pipe()
		go func() {
			var err error
			if in.Kind == "busybox" {
				err = BuildBusybox(ctx, pw)
			} else {
				err = m.buildDebian(ctx, in.Mirror, pw, l)
			}
			pw.CloseWithError(err)
		}()
		l.Printf("building %s template %s", in.Kind, name)
		v, err := p.Import(ctx, api.ContentVZTmpl, name, pr, false)
		pr.CloseWithError(err)
		if err != nil {
			return fmt.Errorf("build %s: %w", name, err)
		}
		l.Printf("template %s ready (%d bytes)", v.VolID, v.Size)
		return nil
	})
}

// aptMirror finds the Debian mirror apt on this node uses.
func aptMirror() string {
	files, _ := filepath.Glob("/etc/apt/sources.list.d/*")
	files = append([]string{"/etc/apt/sources.list"}, files...)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			fs := strings.Fields(line)
			if len(fs) >= 2 && fs[0] == "URIs:" && strings.HasSuffix(strings.TrimRight(fs[1], "/"), "/debian") {
				return fs[1]
			}
			if len(fs) >= 3 && fs[0] == "deb" && strings.HasSuffix(strings.TrimRight(fs[1], "/"), "/debian") {
				return fs[1]
			}
		}
	}
	return "http://deb.debian.org/debian"
}

// buildDebian bootstraps Debian 12 (minbase, with systemd, ifupdown and
// iproute2 so the container boots and takes corral's network config) and
// streams it as a .tar.gz.
func (m *Manager) buildDebian(ctx context.Context, mirror string, w io.Writer, l *task.Log) error {
	if mirror == "" {
		mirror = aptMirror()
	}
	if !strings.HasPrefix(mirror, "http://") && !strings.HasPrefix(mirror, "https://") {
		return errs.Invalid("mirror", "want an http(s) URL")
	}
	dir, err := os.MkdirTemp(m.lxcPath, "debootstrap-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bctx, cancel := context.WithTimeout(ctx, 45*time.Minute)
	defer cancel()
	l.Printf("debootstrap bookworm from %s", mirror)
	cmd := exec.CommandContext(bctx, "debootstrap", "--variant=minbase", "--include=systemd-sysv,ifupdown,iproute2,isc-dhcp-client,openssh-server,ca-certificates",
		"bookworm", dir, mirror)
	cmd.Stdout, cmd.Stderr = l.Writer(), l.Writer()
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("debootstrap: %w", err)
	}
	// Leave no host-specific state in the template.
	for _, f := range []string{"etc/hostname", "etc/machine-id", "var/lib/dbus/machine-id"} {
		os.Remove(filepath.Join(dir, f))
	}
	os.WriteFile(filepath.Join(dir, "etc/machine-id"), nil, 0o444)
	os.RemoveAll(filepath.Join(dir, "var/cache/apt/archives"))
	os.MkdirAll(filepath.Join(dir, "var/cache/apt/archives/partial"), 0o755)
	// Containers have no hardware to wait for, and no debugfs to mount.
	for _, u := range []string{"systemd-udevd.service", "systemd-timesyncd.service", "sys-kernel-debug.mount", "sys-kernel-tracing.mount"} {
		os.Symlink("/dev/null", filepath.Join(dir, "etc/systemd/system", u))
	}
	tcmd := exec.CommandContext(bctx, "tar", "-C", dir, "--numeric-owner", "-czf", "-", ".")
	tcmd.Stdout = w
	var stderr bytes.Buffer
	tcmd.Stderr = &stderr
	if err := tcmd.Run(); err != nil {
		return fmt.Errorf("pack template: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// checkStatic refuses a dynamically linked binary: inside a container
// without the host's libc it would fail to exec with a bare "No such file
// or directory".
func checkStatic(bin []byte) error {
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		return fmt.Errorf("is not an ELF executable: %w", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return errors.New("is dynamically linked")
		}
	}
	return nil
}
