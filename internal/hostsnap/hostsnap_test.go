package hostsnap

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestDirLines: files, sockets, symlinks and empty directories are listed;
// IPAM bookkeeping and the directories holding only it are not.
func TestDirLines(t *testing.T) {
	dir := t.TempDir()
	mk := func(rel string) string {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, f := range []string{"net/lock", "net/last_reserved_ip.0", "net/10.0.0.2", "state/.vf/0000:3b:02.0/lock"} {
		if err := os.WriteFile(mk(f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(mk("state/c1/eth0"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("10.0.0.2", mk("net/link")); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", mk("sock/s"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got, err := dirLines(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"file " + filepath.Join(dir, "net/10.0.0.2"),
		"symlink " + filepath.Join(dir, "net/link"),
		"socket " + filepath.Join(dir, "sock/s"),
		"dir " + filepath.Join(dir, "state/c1/eth0"),
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	if files, _ := dirLines(dir, false); len(files) != len(want)-1 {
		t.Fatalf("without empty dirs: %q", files)
	}
	if missing, err := dirLines(filepath.Join(dir, "nope"), true); err != nil || len(missing) != 0 {
		t.Fatalf("missing dir: %v %v", missing, err)
	}
}

func TestDiff(t *testing.T) {
	got := Diff(Snapshot{Lines: []string{"a", "b"}}, Snapshot{Lines: []string{"b", "c"}})
	if !slices.Equal(got, []string{"- a", "+ c"}) {
		t.Fatalf("diff %q", got)
	}
	if d := Diff(Snapshot{Lines: []string{"a"}}, Snapshot{Lines: []string{"a"}}); len(d) != 0 {
		t.Fatalf("equal snapshots differ: %q", d)
	}
}
