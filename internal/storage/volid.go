package storage

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/corral-project/corral/api"
)

var (
	poolIDRe = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)
	// A volume name segment: no leading dot or dash, no shell
	// metacharacters, no spaces, nothing that needs quoting anywhere.
	segmentRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,199}$`)
)

// VolID is a parsed "<storage>:<volname>".
type VolID struct {
	Storage string
	Name    string // e.g. "100/vm-100-disk-0.qcow2", "iso/debian.iso"
}

func (v VolID) String() string { return v.Storage + ":" + v.Name }

// FileFolders maps the first name segment of file volumes to their
// content type: "iso/x.iso" is an ISO whatever pool it is on.
var FileFolders = map[string]string{"iso": api.ContentISO, "vztmpl": api.ContentVZTmpl, "backup": api.ContentBackup, "snippets": api.ContentSnippets}

// Owner returns the guest a volume belongs to, 0 for none. This is the
// one place the naming convention is read: guest volumes are
// "<vmid>/<vm|base|subvol|basevol>-<vmid>-disk-<n>[.ext]" (the name's ID
// wins over the folder's, as the pools list them), a plugin with flat
// names may use the file name alone; files under iso/, vztmpl/, backup/,
// snippets/ and LUNs ("lun3") belong to no guest.
func (v VolID) Owner() int {
	segs := strings.Split(v.Name, "/")
	if _, file := FileFolders[segs[0]]; file && len(segs) > 1 {
		return 0
	}
	if id := VMIDFromName(segs[len(segs)-1]); id != 0 {
		return id
	}
	if len(segs) > 1 {
		if id, err := strconv.Atoi(segs[0]); err == nil && id > 0 && strconv.Itoa(id) == segs[0] {
			return id
		}
	}
	return 0
}

// Content returns the content type a volume's name says it has: a file
// folder's type, rootdir for container subvolumes, images otherwise.
func (v VolID) Content() string {
	segs := strings.Split(v.Name, "/")
	if c, ok := FileFolders[segs[0]]; ok && len(segs) > 1 {
		return c
	}
	file := segs[len(segs)-1]
	if strings.HasPrefix(file, "subvol-") || strings.HasPrefix(file, "basevol-") {
		return api.ContentRootdir
	}
	return api.ContentImages
}

// ValidPoolID reports whether id is a well-formed pool ID.
func ValidPoolID(id string) bool { return poolIDRe.MatchString(id) }

// ParseVolID parses and strictly validates a volume ID. A valid name is
// relative, has at most three segments, and no segment is "." or "..",
// so filepath.Join(root, name) always stays under root.
func ParseVolID(s string) (VolID, error) {
	i := strings.IndexByte(s, ':')
	if i < 0 {
		return VolID{}, fmt.Errorf("volume ID %q: want <storage>:<volume>", s)
	}
	v := VolID{Storage: s[:i], Name: s[i+1:]}
	if !ValidPoolID(v.Storage) {
		return VolID{}, fmt.Errorf("volume ID %q: invalid storage ID", s)
	}
	if err := ValidateVolName(v.Name); err != nil {
		return VolID{}, fmt.Errorf("volume ID %q: %w", s, err)
	}
	return v, nil
}

// ValidateVolName checks a volume name (the part after the colon).
func ValidateVolName(name string) error {
	if name == "" {
		return fmt.Errorf("empty volume name")
	}
	segs := strings.Split(name, "/")
	if len(segs) > 3 {
		return fmt.Errorf("volume name %q has too many path segments", name)
	}
	for _, s := range segs {
		if !segmentRe.MatchString(s) || strings.Contains(s, "..") {
			return fmt.Errorf("invalid volume name segment %q (letters, digits, . _ + - only; no leading dot)", s)
		}
	}
	return nil
}

// Resolve joins a validated volume name onto root and checks, after
// resolving symlinks that exist, that the result is still inside root: a
// symlink planted in a pool must not lead a volume outside it.
func Resolve(root, name string) (string, error) {
	if err := ValidateVolName(name); err != nil {
		return "", err
	}
	p := filepath.Join(root, filepath.FromSlash(name))
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", fmt.Errorf("pool root %s: %w", root, err)
	}
	// Resolve the longest existing prefix of p.
	check := p
	rest := ""
	for {
		real, err := filepath.EvalSymlinks(check)
		if err == nil {
			full := filepath.Join(real, rest)
			if full != realRoot && !strings.HasPrefix(full, realRoot+string(filepath.Separator)) {
				return "", fmt.Errorf("volume %q resolves outside its pool", name)
			}
			return p, nil
		}
		parent := filepath.Dir(check)
		if parent == check {
			return "", fmt.Errorf("volume %q: cannot resolve", name)
		}
		rest = filepath.Join(filepath.Base(check), rest)
		check = parent
	}
}

// ParseSize parses "10G"-style sizes (binary suffixes) into bytes.
func ParseSize(s string) (uint64, error) {
	if s == "" {
		return 0, fmt.Errorf("empty size")
	}
	mult := uint64(1)
	switch s[len(s)-1] {
	case 'K':
		mult = 1 << 10
	case 'M':
		mult = 1 << 20
	case 'G':
		mult = 1 << 30
	case 'T':
		mult = 1 << 40
	}
	num := s
	if mult != 1 {
		num = s[:len(s)-1]
	}
	var n uint64
	if num == "" || len(num) > 15 {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	for _, c := range num {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("invalid size %q", s)
		}
		n = n*10 + uint64(c-'0')
	}
	if n == 0 {
		return 0, fmt.Errorf("size must be positive")
	}
	if n > (1<<50)/mult {
		return 0, fmt.Errorf("size %q too large (max 1 PiB)", s)
	}
	return n * mult, nil
}
