package storage

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseVolID(t *testing.T) {
	good := []string{"local:100/vm-100-disk-0.qcow2", "local:iso/debian-12.iso", "b1:vztmpl/debian_12+1.tar.zst", "x:images/100/vm-100-disk-1.raw"}
	for _, s := range good {
		if _, err := ParseVolID(s); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	bad := []string{"", "local", ":x", "Local:x", "local:", "local:/etc/passwd", "local:../x", "local:iso/../../x", "local:iso/..",
		"local:iso/.hidden", "local:iso/a b", "local:iso/a;rm", "local:iso/$(x)", "local:iso/a\x00b", "local:iso/a\nb", "local:a/b/c/d",
		"local:iso//x", "local:-rf", "local:iso/x`y`", "local:iso/x|y", "local:iso/x\\y"}
	for _, s := range bad {
		if _, err := ParseVolID(s); err == nil {
			t.Errorf("accepted %q", s)
		}
	}
}

func TestResolveStaysInside(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	os.MkdirAll(filepath.Join(root, "iso"), 0o755)
	if err := os.Symlink(outside, filepath.Join(root, "iso", "escape")); err != nil {
		t.Fatal(err)
	}
	if _, err := Resolve(root, "iso/escape"); err == nil {
		t.Fatal("symlink out of the pool accepted")
	}
	if _, err := Resolve(root, "iso/escape/file"); err == nil {
		t.Fatal("path through a symlink out of the pool accepted")
	}
	p, err := Resolve(root, "iso/new.iso")
	if err != nil || !strings.HasPrefix(p, root) {
		t.Fatalf("%s %v", p, err)
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"1", 1, true}, {"4K", 4096, true}, {"10G", 10 << 30, true}, {"2T", 2 << 40, true},
		{"", 0, false}, {"0", 0, false}, {"G", 0, false}, {"1.5G", 0, false}, {"-1", 0, false}, {"99999999999T", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v", tt.in, got, err)
		}
	}
}

func FuzzParseVolID(f *testing.F) {
	for _, s := range []string{"local:100/vm-100-disk-0.qcow2", "local:iso/x.iso", "a:../b", "a:b/c/d/e"} {
		f.Add(s)
	}
	root := f.TempDir()
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseVolID(s)
		if err != nil {
			return
		}
		if v.String() != s {
			t.Fatalf("round trip %q -> %q", s, v.String())
		}
		p := filepath.Join(root, v.Name)
		if !strings.HasPrefix(p, root+string(filepath.Separator)) {
			t.Fatalf("%q escapes the pool: %s", s, p)
		}
		for _, c := range v.Name {
			if c < 0x21 || c > 0x7e || strings.ContainsRune("$`;|&<>()\\\"'*?[]{}~!#%", c) {
				t.Fatalf("%q: name holds %q", s, c)
			}
		}
	})
}

func TestVolIDOwnerAndContent(t *testing.T) {
	tests := []struct {
		volid   string
		owner   int
		content string
	}{
		{"local:102/vm-102-disk-0.qcow2", 102, "images"},
		{"local:102/base-102-disk-1.raw", 102, "images"},
		{"local:102/subvol-102-disk-0", 102, "rootdir"},
		{"local:102/basevol-102-disk-0", 102, "rootdir"},
		{"local:101/vm-102-disk-0.raw", 102, "images"}, // the name's owner, as the pools list it
		{"local:102/odd.raw", 102, "images"},           // a file in a guest's folder is the guest's
		{"local:iso/vm-102-disk-0.iso", 0, "iso"},      // file folders belong to no guest
		{"local:vztmpl/debian.tar.zst", 0, "vztmpl"},
		{"local:backup/x.tar", 0, "backup"},
		{"local:snippets/u.yaml", 0, "snippets"},
		{"san:lun3", 0, "images"},
		{"lvm:vm-105-disk-0", 105, "images"},
		{"local:0102/x.raw", 0, "images"},
	}
	for _, tt := range tests {
		id, err := ParseVolID(tt.volid)
		if err != nil {
			t.Fatalf("%s: %v", tt.volid, err)
		}
		if got := id.Owner(); got != tt.owner {
			t.Errorf("%s: owner %d, want %d", tt.volid, got, tt.owner)
		}
		if got := id.Content(); got != tt.content {
			t.Errorf("%s: content %s, want %s", tt.volid, got, tt.content)
		}
	}
}
