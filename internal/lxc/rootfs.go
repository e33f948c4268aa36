package lxc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/corral-project/corral/internal/errs"
)

// tarFlag picks GNU tar's decompression option from a template's name.
func tarFlag(name string) (string, error) {
	switch {
	case strings.HasSuffix(name, ".tar.gz"), strings.HasSuffix(name, ".tgz"):
		return "-z", nil
	case strings.HasSuffix(name, ".tar.xz"):
		return "-J", nil
	case strings.HasSuffix(name, ".tar.zst"):
		return "--zstd", nil
	}
	return "", fmt.Errorf("%s: templates are .tar.gz, .tar.xz or .tar.zst", filepath.Base(name))
}

// unpack extracts a template into an empty root filesystem directory.
// Unprivileged containers unpack inside a user namespace with the
// container's ID mapping (lxc-usernsexec): ownership comes out shifted,
// and tar runs without any host privilege, so a hostile archive can't
// write outside the directory or create devices. The archive is passed on
// standard input and the target is the working directory, so neither
// needs to be reachable by the unprivileged user.
func (m *Manager) unpack(ctx context.Context, archive, rootfs string, unprivileged bool) error {
	flag, err := tarFlag(archive)
	if err != nil {
		return errs.Invalid("ostemplate", "%v", err)
	}
	f, err := os.Open(archive)
	if err != nil {
		return fmt.Errorf("open template: %w", err)
	}
	defer f.Close()
	tarArgs := []string{"tar", "-x", flag, "-p", "--numeric-owner", "-f", "-", "--exclude=./dev/*", "--exclude=dev/*"}
	bin, args := tarArgs[0], tarArgs[1:]
	if unprivileged {
		uid := m.idmap.Host(0)
		if err := os.Chown(rootfs, uid, uid); err != nil {
			return fmt.Errorf("rootfs owner: %w", err)
		}
		mapArg := fmt.Sprintf("b:0:%d:%d", m.idmap.Base, m.idmap.Size)
		bin, args = "lxc-usernsexec", append([]string{"-m", mapArg, "--", "tar"}, tarArgs[1:]...)
	}
	uctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(uctx, bin, args...)
	cmd.Dir = rootfs
	cmd.Stdin = f
	var stderr bytes.Buffer
	cmd.Stderr, cmd.Stdout = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 600 {
			msg = msg[:600] + "..."
		}
		if msg == "" {
			msg = err.Error()
		}
		if strings.Contains(msg, "not look like a tar") || strings.Contains(msg, "not in gzip format") || strings.Contains(msg, "File format not recognized") ||
			strings.Contains(msg, "Unknown frame descriptor") || strings.Contains(msg, "unexpected end") || strings.Contains(msg, "Unexpected EOF") {
			return errs.Invalid("ostemplate", "%s is not a valid template archive: %s", filepath.Base(archive), msg)
		}
		return fmt.Errorf("unpack %s: %s", filepath.Base(archive), msg)
	}
	// An archive that unpacked "fine" but holds no system is refused too.
	if _, err := os.Lstat(filepath.Join(rootfs, "sbin", "init")); err != nil {
		if _, err2 := os.Lstat(filepath.Join(rootfs, "usr", "sbin", "init")); err2 != nil {
			if _, err3 := os.Lstat(filepath.Join(rootfs, "etc")); err3 != nil {
				return errs.Invalid("ostemplate", "%s holds no root filesystem (no /etc, no /sbin/init)", filepath.Base(archive))
			}
		}
	}
	return nil
}

// detectOS reads the OS type from the unpacked root filesystem.
func detectOS(rootfs string) (ostype, arch string) {
	r, err := openRoot(rootfs, 0, 0)
	if err != nil {
		return "unmanaged", "amd64"
	}
	defer r.Close()
	arch = "amd64"
	b, err := r.read("etc/os-release")
	if err != nil {
		b, err = r.read("usr/lib/os-release")
	}
	if err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "ID="); ok {
				v = strings.Trim(v, `"'`)
				switch v {
				case "debian", "ubuntu", "alpine", "busybox":
					return v, arch
				}
				return "unmanaged", arch
			}
		}
	}
	return "unmanaged", arch
}

// grantTraverse lets uid reach path: every ancestor directory that others
// can't search gets a POSIX ACL entry "user:uid:--x" (what LXC asks for
// in its "Could not access ... add an ACL for the container root" error).
// Nothing becomes listable or readable.
func grantTraverse(path string, uid int) error {
	path = filepath.Clean(path)
	var dirs []string
	for d := filepath.Dir(path); ; d = filepath.Dir(d) {
		dirs = append(dirs, d)
		if d == "/" || d == "." {
			break
		}
	}
	for _, d := range dirs {
		var st unix.Stat_t
		if err := unix.Stat(d, &st); err != nil {
			return fmt.Errorf("grant access to %s: %w", d, err)
		}
		if st.Mode&0o001 != 0 || (st.Uid == uint32(uid)) {
			continue
		}
		if err := addACLExec(d, st, uid); err != nil {
			return fmt.Errorf("grant the container's root access to %s: %w", d, err)
		}
	}
	return nil
}

// POSIX ACL xattr format (linux/posix_acl_xattr.h).
const (
	aclVersion  = 2
	aclUserObj  = 0x01
	aclUser     = 0x02
	aclGroupObj = 0x04
	aclMask     = 0x10
	aclOther    = 0x20
)

// addACLExec adds user:uid:x to a directory's access ACL. A directory
// that already has an ACL keeps its entries; ours is added (or widened).
func addACLExec(dir string, st unix.Stat_t, uid int) error {
	type ent struct {
		tag, perm uint16
		id        uint32
	}
	var ents []ent
	buf := make([]byte, 4096)
	n, err := unix.Getxattr(dir, "system.posix_acl_access", buf)
	if err == nil && n >= 4 {
		for off := 4; off+8 <= n; off += 8 {
			ents = append(ents, ent{binary.LittleEndian.Uint16(buf[off:]), binary.LittleEndian.Uint16(buf[off+2:]), binary.LittleEndian.Uint32(buf[off+4:])})
		}
	} else {
		mode := uint16(st.Mode)
		ents = []ent{{aclUserObj, mode >> 6 & 7, 0xffffffff}, {aclGroupObj, mode >> 3 & 7, 0xffffffff}, {aclMask, mode >> 3 & 7, 0xffffffff}, {aclOther, mode & 7, 0xffffffff}}
	}
	found := false
	for i := range ents {
		if ents[i].tag == aclUser && ents[i].id == uint32(uid) {
			if ents[i].perm&1 != 0 {
				return nil
			}
			ents[i].perm |= 1
			found = true
		}
		if ents[i].tag == aclMask {
			ents[i].perm |= 1
		}
	}
	hasMask := false
	for _, e := range ents {
		hasMask = hasMask || e.tag == aclMask
	}
	if !hasMask {
		ents = append(ents, ent{aclMask, uint16(st.Mode>>3&7) | 1, 0xffffffff})
	}
	if !found {
		ents = append(ents, ent{aclUser, 1, uint32(uid)})
	}
	// Entries are sorted by tag, then by ID.
	for i := 1; i < len(ents); i++ {
		for j := i; j > 0 && (ents[j].tag < ents[j-1].tag || ents[j].tag == ents[j-1].tag && ents[j].id < ents[j-1].id); j-- {
			ents[j], ents[j-1] = ents[j-1], ents[j]
		}
	}
	out := make([]byte, 4+8*len(ents))
	binary.LittleEndian.PutUint32(out, aclVersion)
	for i, e := range ents {
		binary.LittleEndian.PutUint16(out[4+8*i:], e.tag)
		binary.LittleEndian.PutUint16(out[6+8*i:], e.perm)
		binary.LittleEndian.PutUint32(out[8+8*i:], e.id)
	}
	return unix.Setxattr(dir, "system.posix_acl_access", out, 0)
}

// root is an open container root filesystem. Every path is resolved
// inside it by the kernel (openat2 RESOLVE_IN_ROOT): symlinks in the
// container's files can't make corral write or read host files.
type root struct {
	fd       int
	uid, gid int // owner of files corral writes (the container's root)
}

func openRoot(path string, uid, gid int) (*root, error) {
	fd, err := unix.Open(path, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open root filesystem: %w", err)
	}
	return &root{fd: fd, uid: uid, gid: gid}, nil
}

func (r *root) Close() { unix.Close(r.fd) }

func (r *root) open(rel string, flags uint64, mode uint64) (int, error) {
	rel = strings.TrimPrefix(filepath.Clean("/"+rel), "/")
	if rel == "" {
		rel = "."
	}
	for {
		fd, err := unix.Openat2(r.fd, rel, &unix.OpenHow{Flags: flags | unix.O_CLOEXEC, Mode: mode,
			Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV})
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		return fd, err
	}
}

// read returns a file of the container (at most 4 MiB).
func (r *root) read(rel string) ([]byte, error) {
	fd, err := r.open(rel, unix.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 4<<20))
}

func (r *root) exists(rel string) bool {
	fd, err := r.open(rel, unix.O_PATH, 0)
	if err != nil {
		return false
	}
	unix.Close(fd)
	return true
}

// mkdirAll creates rel and its parents inside the root, owned by the
// container's root.
func (r *root) mkdirAll(rel string, mode uint32) error {
	rel = strings.Trim(filepath.Clean("/"+rel), "/")
	if rel == "" {
		return nil
	}
	cur := ""
	for seg := range strings.SplitSeq(rel, "/") {
		parent := cur
		if parent == "" {
			parent = "."
		}
		cur = filepath.Join(cur, seg)
		if r.exists(cur) {
			continue
		}
		pfd, err := r.open(parent, unix.O_PATH|unix.O_DIRECTORY, 0)
		if err != nil {
			return fmt.Errorf("mkdir %s: %w", cur, err)
		}
		err = unix.Mkdirat(pfd, seg, mode)
		if err == nil {
			unix.Fchownat(pfd, seg, r.uid, r.gid, unix.AT_SYMLINK_NOFOLLOW)
		}
		unix.Close(pfd)
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("mkdir %s: %w", cur, err)
		}
	}
	return nil
}

// write replaces a file of the container: the old name is unlinked (so a
// hard link or symlink planted there is never written through) and a new
// file is created exclusively, owned by the container's root.
func (r *root) write(rel string, data []byte, mode uint32) error {
	dir, base := filepath.Split(strings.TrimPrefix(filepath.Clean("/"+rel), "/"))
	if err := r.mkdirAll(dir, 0o755); err != nil {
		return err
	}
	pfd, err := r.open(dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return fmt.Errorf("write %s: %w", rel, err)
	}
	defer unix.Close(pfd)
	if err := unix.Unlinkat(pfd, base, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("write %s: %w", rel, err)
	}
	fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode)
	if err != nil {
		return fmt.Errorf("write %s: %w", rel, err)
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	if err := f.Chown(r.uid, r.gid); err != nil {
		return fmt.Errorf("write %s: %w", rel, err)
	}
	if err := f.Chmod(os.FileMode(mode)); err != nil {
		return fmt.Errorf("write %s: %w", rel, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", rel, err)
	}
	return nil
}

// symlink replaces rel with a symlink to target (a path inside the
// container; it is never followed by corral).
func (r *root) symlink(target, rel string) error {
	dir, base := filepath.Split(strings.TrimPrefix(filepath.Clean("/"+rel), "/"))
	if err := r.mkdirAll(dir, 0o755); err != nil {
		return err
	}
	pfd, err := r.open(dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return fmt.Errorf("symlink %s: %w", rel, err)
	}
	defer unix.Close(pfd)
	if err := unix.Unlinkat(pfd, base, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("symlink %s: %w", rel, err)
	}
	if err := unix.Symlinkat(target, pfd, base); err != nil {
		return fmt.Errorf("symlink %s: %w", rel, err)
	}
	return unix.Fchownat(pfd, base, r.uid, r.gid, unix.AT_SYMLINK_NOFOLLOW)
}
