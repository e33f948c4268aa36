package lxc

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/corral-project/corral/api"
)

func TestValidHostname(t *testing.T) {
	for _, tc := range []struct {
		h  string
		ok bool
	}{
		{"ct100", true}, {"web-1.example.org", true}, {"a", true}, {strings.Repeat("a", 63), true},
		{"", false}, {"-web", false}, {"web-", false}, {"we_b", false}, {"a..b", false}, {".a", false},
		{strings.Repeat("a", 64), false}, {"a b", false}, {"héllo", false}, {strings.Repeat("a.", 127) + "ab", false},
	} {
		if got := validHostname(tc.h); got != tc.ok {
			t.Errorf("validHostname(%q) = %v, want %v", tc.h, got, tc.ok)
		}
	}
}

func TestValidMountPath(t *testing.T) {
	for _, tc := range []struct {
		p  string
		ok bool
	}{
		{"/data", true}, {"/srv/www", true}, {"/mnt/a-b_c.d", true},
		{"/", false}, {"data", false}, {"/data/../etc", false}, {"/data/./x", false}, {"/data/", false}, {"//data", false},
		{"/proc", false}, {"/proc/sys", false}, {"/sys/fs", false}, {"/dev/shm", false}, {"/a b", false}, {"/a,b", false}, {"/a\nb", false},
		{"/process", true}, {"/devices", true},
	} {
		err := validMountPath(tc.p)
		if (err == nil) != tc.ok {
			t.Errorf("validMountPath(%q) = %v, want ok=%v", tc.p, err, tc.ok)
		}
	}
}

func TestCoversRange(t *testing.T) {
	m := IDMap{Base: 100000, Size: 65536}
	for _, tc := range []struct {
		file string
		ok   bool
	}{
		{"root:100000:65536\n", true},
		{"alice:100000:65536\nroot:0:1000000000\n", true},
		{"0:100000:65536", true},
		{"root:100000:65535\n", false},
		{"root:100001:65536\n", false},
		{"alice:100000:65536\n", false},
		{"", false},
		{"root:x:y\n", false},
	} {
		if got := coversRange(tc.file, m); got != tc.ok {
			t.Errorf("coversRange(%q) = %v, want %v", tc.file, got, tc.ok)
		}
	}
}

func TestStartupOrder(t *testing.T) {
	if startupOrder("order=3,up=10") != 3 || startupOrder("up=5,order=1") != 1 || startupOrder("") <= 1000 {
		t.Fatal("startup order not parsed")
	}
}

func TestTarFlag(t *testing.T) {
	for name, want := range map[string]string{"a.tar.gz": "-z", "a.tgz": "-z", "a.tar.xz": "-J", "a.tar.zst": "--zstd", "a.zip": "", "a.tar": ""} {
		got, err := tarFlag(name)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("tarFlag(%q) = %q, %v", name, got, err)
		}
	}
}

// TestRootConfinesWrites: files corral writes into a container's root are
// confined to it even when the container planted symlinks (absolute,
// relative, in a parent directory) or a hard link pointing at host files.
func TestRootConfinesWrites(t *testing.T) {
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs")
	host := filepath.Join(dir, "host-secret")
	if err := os.WriteFile(host, []byte("host data\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(rootfs, "etc"), 0o755)
	os.Symlink(host, filepath.Join(rootfs, "etc", "hostname"))                    // absolute, to the host file
	os.Symlink("../../host-secret", filepath.Join(rootfs, "etc", "hosts"))        // relative, climbing out
	os.Symlink(dir, filepath.Join(rootfs, "linkdir"))                             // a directory symlink
	if err := os.Link(host, filepath.Join(rootfs, "etc", "shadow")); err != nil { // a hard link
		t.Fatal(err)
	}
	r, err := openRoot(rootfs, os.Getuid(), os.Getgid())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, rel := range []string{"etc/hostname", "etc/hosts", "etc/shadow", "linkdir/host-secret", "/../../host-secret"} {
		if err := r.write(rel, []byte("written by corral\n"), 0o644); err != nil {
			t.Logf("write %s: %v (refused is fine)", rel, err)
		}
	}
	if b, _ := os.ReadFile(host); string(b) != "host data\n" {
		t.Fatalf("a host file was written through the container's links: %q", b)
	}
	if b, err := os.ReadFile(filepath.Join(rootfs, "etc", "hostname")); err != nil || string(b) != "written by corral\n" {
		t.Fatalf("etc/hostname inside the root: %q %v", b, err)
	}
	// Reads resolve inside the root too.
	os.Symlink("/etc/passwd", filepath.Join(rootfs, "etc", "os-release"))
	if b, err := r.read("etc/os-release"); err == nil && strings.Contains(string(b), "root:x:0:0") {
		t.Fatal("read followed a symlink to the host's /etc/passwd")
	}
}

func TestHostsFile(t *testing.T) {
	rootfs := t.TempDir()
	os.MkdirAll(filepath.Join(rootfs, "etc"), 0o755)
	os.WriteFile(filepath.Join(rootfs, "etc", "hosts"), []byte("127.0.0.1 localhost\n127.0.1.1 old.example old\n10.0.0.5 db\n"), 0o644)
	r, err := openRoot(rootfs, os.Getuid(), os.Getgid())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := string(hostsFile(r, "web.example.org", "web"))
	want := "127.0.0.1 localhost\n10.0.0.5 db\n127.0.1.1\tweb.example.org web\n"
	if got != want {
		t.Fatalf("hosts:\n%q\nwant\n%q", got, want)
	}
}

func TestNetworkFiles(t *testing.T) {
	nets := []api.CTNet{{Name: "eth0", IP: "10.0.0.2/24", GW: "10.0.0.1", IP6: "fd00::2/64"}, {Name: "eth1", IP: "dhcp", IP6: "auto"}}
	for _, tc := range []struct {
		name string
		got  string
		want []string
	}{
		{"ifupdown", string(ifupdown(nets)), []string{"auto eth0\niface eth0 inet static\n\taddress 10.0.0.2/24\n\tgateway 10.0.0.1\n", "iface eth0 inet6 static\n\taddress fd00::2/64\n", "iface eth1 inet dhcp\n", "iface eth1 inet6 auto\n"}},
		{"networkd", string(networkdUnit(nets[0])), []string{"Name=eth0\n", "Address=10.0.0.2/24\n", "Address=fd00::2/64\n", "Gateway=10.0.0.1\n"}},
		{"networkd dhcp", string(networkdUnit(nets[1])), []string{"DHCP=ipv4\n", "IPv6AcceptRA=yes\n"}},
		{"busybox", string(busyboxNet(nets)), []string{"ip addr add 10.0.0.2/24 dev eth0\n", "ip route add default via 10.0.0.1 dev eth0\n", "ip -6 addr add fd00::2/64 dev eth0\n", "udhcpc -i eth1 "}},
	} {
		for _, w := range tc.want {
			if !strings.Contains(tc.got, w) {
				t.Errorf("%s: missing %q in\n%s", tc.name, w, tc.got)
			}
		}
	}
}

func TestBuildConfig(t *testing.T) {
	m := &Manager{lxcPath: "/var/lib/corral/lxc", cgTag: cgroupTag("/var/lib/corral/lxc"), idmap: DefaultIDMap}
	c := api.CTConfig{VMID: 123, Hostname: "web", Arch: "amd64", OSType: "busybox", Cores: 1, Memory: 128, Swap: 64, CPUUnits: 100, CPULimit: 0.5,
		Unprivileged: true, Console: true, Features: api.CTFeatures{Nesting: true},
		Mountpoints: []api.CTMountpoint{{MP: "/data", Volume: "local:123/subvol-123-disk-1", ReadOnly: true}},
		Nets:        []api.CTNet{{Name: "eth0", Bridge: "br0", HWAddr: "02:00:00:00:00:01"}}}
	conf, err := m.buildConfig(c, "/pool/images/123/subvol-123-disk-0", []string{"/pool/images/123/subvol-123-disk-1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"lxc.idmap = u 0 100000 65536\n", "lxc.idmap = g 0 100000 65536\n", "userns.conf\n", "nesting.conf\n",
		"lxc.uts.name = web\n", "lxc.rootfs.path = dir:/pool/images/123/subvol-123-disk-0\n",
		"lxc.mount.entry = /pool/images/123/subvol-123-disk-1 data none bind,create=dir,ro 0 0\n",
		"lxc.net.0.type = veth\n", "lxc.net.0.link = br0\n", "lxc.net.0.hwaddr = 02:00:00:00:00:01\n",
		"lxc.cgroup.dir.container = " + m.cgTag + "/ct-123\n", "lxc.signal.halt = SIGUSR2\n",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("config lacks %q:\n%s", want, conf)
		}
	}
	mem := "memory.limit_in_bytes = 134217728\n"
	if cgroupV2() {
		mem = "memory.max = 134217728\n"
	}
	if !strings.Contains(conf, mem) {
		t.Errorf("config lacks %q:\n%s", mem, conf)
	}
	if _, err := m.buildConfig(c, "/pool/with space/x", nil, nil); err == nil {
		t.Error("a rootfs path with a space was written into the config")
	}
	if _, err := m.buildConfig(c, "/pool/x\nlxc.hook.pre-start = /bin/evil", nil, nil); err == nil {
		t.Error("a path with a newline was written into the config")
	}
}

// TestACLEncoding: the ACL corral adds keeps the directory's mode bits as
// entries and adds user:uid:--x with a mask that lets it through.
func TestACLEncoding(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIP reason: setting POSIX ACLs on another user's behalf needs root")
	}
	dir := filepath.Join(t.TempDir(), "d")
	os.Mkdir(dir, 0o700)
	if err := grantTraverse(filepath.Join(dir, "x"), 100000); err != nil {
		if strings.Contains(err.Error(), "not supported") {
			t.Skip("SKIP reason: the temp dir's file system has no POSIX ACLs")
		}
		t.Fatal(err)
	}
	buf := make([]byte, 256)
	n, err := getxattr(dir, buf)
	if err != nil {
		t.Fatal(err)
	}
	// version 2, then (tag, perm, id) entries: user_obj rwx, user 100000 --x, group_obj ---, mask --x, other ---.
	want := []struct {
		tag, perm uint16
		id        uint32
	}{{aclUserObj, 7, 0xffffffff}, {aclUser, 1, 100000}, {aclGroupObj, 0, 0xffffffff}, {aclMask, 1, 0xffffffff}, {aclOther, 0, 0xffffffff}}
	if n != 4+8*len(want) {
		t.Fatalf("ACL of %d bytes, want %d", n, 4+8*len(want))
	}
	for i, w := range want {
		off := 4 + 8*i
		tag, perm := uint16(buf[off])|uint16(buf[off+1])<<8, uint16(buf[off+2])|uint16(buf[off+3])<<8
		id := uint32(buf[off+4]) | uint32(buf[off+5])<<8 | uint32(buf[off+6])<<16 | uint32(buf[off+7])<<24
		if tag != w.tag || perm != w.perm || (w.tag == aclUser && id != w.id) {
			t.Errorf("entry %d: tag %#x perm %o id %d, want %+v", i, tag, perm, id, w)
		}
	}
	// A second grant changes nothing.
	if err := grantTraverse(filepath.Join(dir, "x"), 100000); err != nil {
		t.Fatal(err)
	}
	if n2, _ := getxattr(dir, buf); n2 != n {
		t.Fatalf("second grant changed the ACL: %d bytes", n2)
	}
}

func getxattr(path string, buf []byte) (int, error) {
	return unix.Getxattr(path, "system.posix_acl_access", buf)
}

// TestLimitKeysV2: on a unified (cgroup v2) host the limits are cgroup2
// keys: memory.max, memory.swap.max, cpu.max, cpu.weight.
func TestLimitKeysV2(t *testing.T) {
	old := cgroupRoot
	cgroupRoot = t.TempDir()
	defer func() { cgroupRoot = old }()
	os.WriteFile(filepath.Join(cgroupRoot, "cgroup.controllers"), []byte("cpuset cpu io memory pids\n"), 0o644)
	m := &Manager{cgTag: "corral-test", idmap: DefaultIDMap}
	c := api.CTConfig{VMID: 5, Hostname: "x", Arch: "amd64", Cores: 1, Memory: 64, Swap: 32, CPUUnits: 200, CPULimit: 1.5}
	conf, err := m.buildConfig(c, "/r", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"lxc.cgroup2.memory.max = 67108864\n", "lxc.cgroup2.memory.swap.max = 33554432\n",
		"lxc.cgroup2.cpu.max = 150000 100000\n", "lxc.cgroup2.cpu.weight = 200\n"} {
		if !strings.Contains(conf, want) {
			t.Errorf("v2 config lacks %q:\n%s", want, conf)
		}
	}
	if strings.Contains(conf, "lxc.cgroup.memory") {
		t.Errorf("v1 keys on a v2 host:\n%s", conf)
	}
	if got := m.cgroupFile(5, "freezer", "cgroup.procs"); got != filepath.Join(cgroupRoot, "corral-test", "ct-5", "cgroup.procs") {
		t.Errorf("v2 cgroup file: %s", got)
	}
}

func TestCheckStatic(t *testing.T) {
	tests := []struct {
		path   string
		static bool
	}{
		{"/bin/busybox", true}, // busybox-static
		{"/bin/ls", false},     // every Debian binary is dynamic
	}
	for _, tt := range tests {
		b, err := os.ReadFile(tt.path)
		if err != nil {
			t.Skipf("%s: %v", tt.path, err)
		}
		if err := checkStatic(b); (err == nil) != tt.static {
			t.Errorf("checkStatic(%s) = %v, want static=%v", tt.path, err, tt.static)
		}
	}
	if checkStatic([]byte("#!/bin/sh\n")) == nil {
		t.Error("a shell script passed as a static ELF binary")
	}
}
