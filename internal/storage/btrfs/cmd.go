package btrfs

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/corral-project/corral/internal/storage"
)

// ErrNoTool means btrfs-progs is missing: every subvolume operation needs
// the btrfs command.
var ErrNoTool = errors.New("the btrfs command was not found: install btrfs-progs")

// toolDirs are searched before $PATH: the daemon runs as root and must
// run the system's btrfs, not whatever an inherited PATH offers first.
var toolDirs = []string{"/usr/sbin", "/usr/bin", "/sbin", "/bin"}

// cmdTimeout bounds one btrfs command. Creating a snapshot commits a
// transaction, which can take seconds on a busy filesystem, but nothing
// we run should take minutes; a hung command must not hold a task forever.
const cmdTimeout = 5 * time.Minute

// tool finds the btrfs binary. It is looked up on every call (cheap) so
// installing btrfs-progs takes effect without a restart.
func tool() (string, error) {
	for _, d := range toolDirs {
		p := filepath.Join(d, "btrfs")
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	if p, err := exec.LookPath("btrfs"); err == nil {
		return p, nil
	}
	return "", ErrNoTool
}

// run runs btrfs with an argument list (never a shell) and a timeout. On
// failure the error carries the tool's own message, which names the
// actual cause (not a subvolume, permission, no space, ...).
func run(ctx context.Context, args ...string) error {
	bin, err := tool()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = []string{"LC_ALL=C", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.WaitDelay = 10 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		if ctx.Err() == context.DeadlineExceeded {
			msg += fmt.Sprintf(" (timed out after %s)", cmdTimeout)
		}
		return fmt.Errorf("btrfs %s: %s", strings.Join(args, " "), msg)
	}
	return nil
}

// createSubvol creates an empty subvolume at path. It returns
// storage.ErrExists when the path is taken, also when a concurrent caller
// won the race (the kernel's create is atomic; we recognise the loser by
// the path existing after the failure), so storage.NextDiskName can use
// it as its claim.
func createSubvol(ctx context.Context, path string) error {
	if _, err := os.Lstat(path); err == nil {
		return storage.ErrExists
	}
	if err := run(ctx, "subvolume", "create", "--", path); err != nil {
		if _, serr := os.Lstat(path); serr == nil {
			return storage.ErrExists
		}
		return err
	}
	return nil
}

// deleteSubvols deletes subvolumes (the space is reclaimed in the
// background by the kernel).
func deleteSubvols(ctx context.Context, paths ...string) error {
	if len(paths) == 0 {
		return nil
	}
	return run(ctx, append([]string{"subvolume", "delete", "--"}, paths...)...)
}

// snapshotTemp snapshots src under a fresh random name in dir and returns
// that path. The name starts with prefix; callers pick prefixes that are
// not valid volume names, so a temporary never shows up in listings.
//
// Snapshots are never taken straight to their final name: given an
// existing directory as target, `btrfs subvolume snapshot` creates the
// snapshot inside it, so a concurrent claim of the same name would nest
// silently. The caller moves the temporary into place with claimRename.
func snapshotTemp(ctx context.Context, src, dir, prefix string, readonly bool) (string, error) {
	b := make([]byte, 8)
	rand.Read(b)
	tmp := filepath.Join(dir, prefix+hex.EncodeToString(b))
	args := []string{"subvolume", "snapshot"}
	if readonly {
		args = append(args, "-r")
	}
	if err := run(ctx, append(args, "--", src, tmp)...); err != nil {
		return "", err
	}
	return tmp, nil
}

// claimRename moves a subvolume to dst unless dst exists, atomically
// (renameat2 RENAME_NOREPLACE), returning storage.ErrExists if it does.
func claimRename(from, dst string) error {
	err := unix.Renameat2(unix.AT_FDCWD, from, unix.AT_FDCWD, dst, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ENOTEMPTY) {
		return storage.ErrExists
	}
	if err != nil {
		return fmt.Errorf("rename %s to %s: %w", from, dst, err)
	}
	return nil
}

// exchange swaps two paths atomically (renameat2 RENAME_EXCHANGE): a
// rollback never leaves a moment, or a crash window, in which the volume
// is missing.
func exchange(a, b string) error {
	if err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE); err != nil {
		return fmt.Errorf("exchange %s and %s: %w", a, b, err)
	}
	return nil
}

// isBtrfs reports whether path is on a btrfs filesystem. A btrfs pool on
// another filesystem is almost always a mount that is missing, with the
// pool path now on the root filesystem.
func isBtrfs(path string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false, fmt.Errorf("statfs %s: %w", path, err)
	}
	return uint32(st.Type) == unix.BTRFS_SUPER_MAGIC, nil
}

// isDir reports whether path is a directory itself (not a symlink to one).
func isDir(path string) bool {
	info, err := os.Lstat(path)
	return err == nil && info.IsDir()
}
