package dir

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/corral-project/corral/internal/errs"
)

// QemuImg runs qemu-img with an argument list (never a shell) and a
// timeout, returning its own error message on failure.
func QemuImg(ctx context.Context, args ...string) error {
	_, err := qemuImgOut(ctx, args...)
	return err
}

func qemuImgOut(ctx context.Context, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "qemu-img", args...)
	cmd.Env = []string{"LC_ALL=C", "PATH=/usr/bin:/bin:/usr/sbin:/sbin"}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		if imageLocked(msg) {
			return nil, errs.Conflict("qemu-img %s: the image is in use by another process (a running VM holds it locked); stop the VM, or use the VM's own snapshot and resize operations", args[0])
		}
		return nil, fmt.Errorf("qemu-img %s: %s", args[0], msg)
	}
	return out, nil
}

// imageLocked recognises QEMU's image locking refusal ("Failed to get
// "write" lock / Is another process using the image"): the image is open
// in a running QEMU, which is the caller's conflict, not a storage failure.
func imageLocked(msg string) bool {
	return strings.Contains(msg, "Is another process using the image") ||
		(strings.Contains(msg, "Failed to get") && strings.Contains(msg, "lock"))
}

// ImgInfo is what corral reads from `qemu-img info`.
type ImgInfo struct {
	Format      string `json:"format"`
	VirtualSize uint64 `json:"virtual-size"`
	BackingFile string `json:"full-backing-filename"`
}

// QemuImgInfo describes an image file. -U lets it read images a running
// VM holds open.
func QemuImgInfo(ctx context.Context, path string) (ImgInfo, error) {
	out, err := qemuImgOut(ctx, "info", "-U", "--output=json", path)
	if err != nil {
		return ImgInfo{}, err
	}
	var qi ImgInfo
	if err := json.Unmarshal(out, &qi); err != nil {
		return ImgInfo{}, fmt.Errorf("qemu-img info %s: %w", path, err)
	}
	return qi, nil
}
