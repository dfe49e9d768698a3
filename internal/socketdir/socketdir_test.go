package socketdir

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmcni/vmcni/internal/cnierr"
)

// TestForLayoutAndLimits: nested per attachment (no collision between
// "a-b"+"c" and "a"+"b-c"), escapes refused, the 107-byte limit exact.
func TestForLayoutAndLimits(t *testing.T) {
	p1, err1 := For("/run/x", "a-b", "c", "sock")
	p2, err2 := For("/run/x", "a", "b-c", "sock")
	if err1 != nil || err2 != nil || p1.Dir == p2.Dir || p1.Dir != "/run/x/a-b/c" || p1.Socket != "/run/x/a-b/c/sock" {
		t.Fatalf("%+v %v / %+v %v", p1, err1, p2, err2)
	}
	if _, err := For("/run/x", "..", "eth0", "sock"); cnierr.Code(err) != 4 {
		t.Fatalf("container ID ..: %v", err)
	}
	if _, err := For("run/x", "c", "eth0", "sock"); cnierr.Code(err) != 7 {
		t.Fatalf("relative root: %v", err)
	}
	root := "/r"
	fixed := len(root) + len("/") + len("/eth0/sock")
	if _, err := For(root, strings.Repeat("c", MaxSocketPath-fixed), "eth0", "sock"); err != nil {
		t.Fatalf("107 bytes refused: %v", err)
	}
	if _, err := For(root, strings.Repeat("c", MaxSocketPath-fixed+1), "eth0", "sock"); cnierr.Code(err) != 7 {
		t.Fatalf("108 bytes: %v", err)
	}
}

func TestParseMode(t *testing.T) {
	for s, ok := range map[string]bool{"0750": true, "0770": true, "0700": true, "0775": true,
		"0777": false, "0752": false, "0650": false, "rwx": false, "01750": false} {
		if _, err := ParseMode(s); (err == nil) != ok {
			t.Errorf("%s: %v", s, err)
		}
	}
}

// TestMakeRefusesSymlinksAndStrangers: a symlink in the container's
// place, or an attachment directory already there, is refused; Remove
// leaves a symlink alone and removes an empty container directory.
func TestMakeRefusesSymlinksAndStrangers(t *testing.T) {
	root := t.TempDir()
	elsewhere := t.TempDir()
	if err := os.Symlink(elsewhere, filepath.Join(root, "evil")); err != nil {
		t.Fatal(err)
	}
	p, _ := For(root, "evil", "eth0", "sock")
	if created, err := Make(p, -1, 0o750); created || cnierr.Code(err) != 7 {
		t.Fatalf("symlinked container dir: %v", err)
	}
	if _, err := os.Stat(filepath.Join(elsewhere, "eth0")); !os.IsNotExist(err) {
		t.Fatal("Make wrote through the symlink")
	}
	p, _ = For(root, "c1", "eth0", "sock")
	if created, err := Make(p, -1, 0o750); !created || err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(p.Dir); err != nil || fi.Mode().Perm() != 0o750 {
		t.Fatalf("mode: %v %v", fi.Mode(), err)
	}
	if created, err := Make(p, -1, 0o750); created || cnierr.Code(err) != 7 {
		t.Fatalf("existing attachment dir: %v", err)
	}
	if err := Remove(p); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(p.Dir)); !os.IsNotExist(err) {
		t.Fatal("empty container directory left")
	}
	if err := Remove(p); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
	q, _ := For(root, "c2", "eth0", "sock")
	if err := os.MkdirAll(filepath.Dir(q.Dir), 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, q.Dir); err != nil {
		t.Fatal(err)
	}
	if err := Remove(q); err == nil {
		t.Fatal("Remove followed a symlink")
	}
	if _, err := os.Stat(elsewhere); err != nil {
		t.Fatalf("symlink target gone: %v", err)
	}
}
