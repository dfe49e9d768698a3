package install

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/vmcni/vmcni/deploy/internal/safefile"
)

// tree is a test's source and destination directories.
type tree struct {
	opts Options
	root string
}

// newTree lays out a source like the image's /opt/vmcni/bin and a
// ConfigMap volume at /config (entries are symlinks into "..data").
func newTree(t *testing.T) tree {
	t.Helper()
	root := t.TempDir()
	o := Options{
		SrcBin:  filepath.Join(root, "src", "bin"),
		SrcConf: filepath.Join(root, "src", "config"),
		BinDir:  filepath.Join(root, "host", "opt", "cni", "bin"),
		ConfDir: filepath.Join(root, "host", "etc", "cni", "multus", "net.d"),
	}
	write(t, filepath.Join(o.SrcBin, "vm-bridge"), "bridge-binary", 0o700)
	write(t, filepath.Join(o.SrcBin, "vm-vpp"), "vpp-binary", 0o755)
	data := filepath.Join(o.SrcConf, "..2026_01_01_00_00_00.000000001")
	write(t, filepath.Join(data, "vmcni-tap.conflist"), `{"name":"vmcni-tap"}`, 0o644)
	write(t, filepath.Join(data, "notes.txt"), "not a conflist", 0o644)
	symlink(t, filepath.Base(data), filepath.Join(o.SrcConf, "..data"))
	symlink(t, "..data/vmcni-tap.conflist", filepath.Join(o.SrcConf, "vmcni-tap.conflist"))
	symlink(t, "..data/notes.txt", filepath.Join(o.SrcConf, "notes.txt"))
	write(t, filepath.Join(o.SrcConf, ".hidden.conflist"), "{}", 0o644)
	return tree{opts: o, root: root}
}

func write(t *testing.T, p, data string, perm os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), perm); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, p string) {
	t.Helper()
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

// checkInstalled asserts dir holds exactly want (name -> content) with
// mode perm, as regular files.
func checkInstalled(t *testing.T, dir string, want map[string]string, perm os.FileMode) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		st, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if !st.Mode().IsRegular() || st.Mode().Perm() != perm {
			t.Errorf("%s: mode %v, want a regular file %v", p, st.Mode(), perm)
		}
		data, _ := os.ReadFile(p)
		got[e.Name()] = string(data)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s holds %v, want %v (and no temporary files)", dir, got, want)
	}
}

var (
	wantBins  = map[string]string{"vm-bridge": "bridge-binary", "vm-vpp": "vpp-binary"}
	wantConfs = map[string]string{"vmcni-tap.conflist": `{"name":"vmcni-tap"}`}
)

func TestInstallIsIdempotent(t *testing.T) {
	tr := newTree(t)
	for i := 0; i < 2; i++ {
		res, err := Install(tr.opts)
		if err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		want := Result{BinDir: tr.opts.BinDir, ConfDir: tr.opts.ConfDir,
			Binaries: []string{"vm-bridge", "vm-vpp"}, Conflists: []string{"vmcni-tap.conflist"}}
		if !reflect.DeepEqual(res, want) {
			t.Errorf("run %d: result %+v, want %+v", i, res, want)
		}
		checkInstalled(t, tr.opts.BinDir, wantBins, 0o755)
		checkInstalled(t, tr.opts.ConfDir, wantConfs, 0o644)
	}
}

func TestResultString(t *testing.T) {
	r := Result{BinDir: "/b", ConfDir: "/c", Binaries: []string{"vm-bridge", "vm-vpp"}}
	if got, want := r.String(), "vmcni: installed vm-bridge vm-vpp into /b, no conflists into /c"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestInstallWithoutConfigDir(t *testing.T) {
	tr := newTree(t)
	tr.opts.SrcConf = filepath.Join(tr.root, "missing")
	res, err := Install(tr.opts)
	if err != nil || len(res.Conflists) != 0 {
		t.Fatalf("Install = %+v, %v; want the binaries only", res, err)
	}
	checkInstalled(t, tr.opts.BinDir, wantBins, 0o755)
	if _, err := os.Stat(tr.opts.ConfDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("conf dir created with nothing to put in it (%v)", err)
	}
}

func TestInstallReplacesSymlinkWithoutFollowingIt(t *testing.T) {
	tr := newTree(t)
	victim := filepath.Join(tr.root, "victim")
	write(t, victim, "untouched", 0o600)
	if err := os.MkdirAll(tr.opts.BinDir, 0o755); err != nil {
		t.Fatal(err)
	}
	symlink(t, victim, filepath.Join(tr.opts.BinDir, "vm-bridge"))
	if _, err := Install(tr.opts); err != nil {
		t.Fatal(err)
	}
	checkInstalled(t, tr.opts.BinDir, wantBins, 0o755)
	st, _ := os.Stat(victim)
	if data, _ := os.ReadFile(victim); string(data) != "untouched" || st.Mode().Perm() != 0o600 {
		t.Errorf("symlink target changed: %q %v", data, st.Mode())
	}
}

func TestInstallRefusesNonRegularSources(t *testing.T) {
	for _, tc := range []struct {
		name string
		make func(t *testing.T, tr tree)
		want string
	}{
		{"directory", func(t *testing.T, tr tree) {
			if err := os.Mkdir(filepath.Join(tr.opts.SrcBin, "vm-x"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, "is not a regular file"},
		{"fifo", func(t *testing.T, tr tree) {
			if err := syscall.Mkfifo(filepath.Join(tr.opts.SrcBin, "vm-x"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "is not a regular file"},
		{"dangling symlink", func(t *testing.T, tr tree) {
			symlink(t, "nowhere", filepath.Join(tr.opts.SrcConf, "x.conflist"))
		}, "no such file or directory"},
		{"empty bin dir", func(t *testing.T, tr tree) {
			for n := range wantBins {
				if err := os.Remove(filepath.Join(tr.opts.SrcBin, n)); err != nil {
					t.Fatal(err)
				}
			}
		}, "no binaries in"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTree(t)
			tc.make(t, tr)
			_, err := Install(tr.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			for _, dir := range []string{tr.opts.BinDir, tr.opts.ConfDir} {
				ents, _ := os.ReadDir(dir)
				for _, e := range ents {
					if strings.HasPrefix(e.Name(), "."+safefile.TempPrefix) {
						t.Errorf("temporary file %s left in %s", e.Name(), dir)
					}
				}
			}
		})
	}
}

func TestInstallFailsOnDirectoryAtTarget(t *testing.T) {
	tr := newTree(t)
	if err := os.MkdirAll(filepath.Join(tr.opts.BinDir, "vm-vpp", "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	res, err := Install(tr.opts)
	if err == nil || !strings.Contains(err.Error(), `replace "`+filepath.Join(tr.opts.BinDir, "vm-vpp")+`"`) {
		t.Fatalf("err = %v, want a replace error naming the target", err)
	}
	if !reflect.DeepEqual(res.Binaries, []string{"vm-bridge"}) {
		t.Errorf("result lists %v, want what was installed before the failure", res.Binaries)
	}
	ents, _ := os.ReadDir(tr.opts.BinDir)
	if len(ents) != 2 {
		t.Errorf("bin dir holds %d entries, want vm-bridge and the directory (no temporary file)", len(ents))
	}
}
