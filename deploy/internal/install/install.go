// Package install copies the vmcni plugins and conflists from the image
// onto the node: the work of the DaemonSet's init container.
//
// Contract of Install:
//
//   - Every entry of SrcBin is installed into BinDir with mode 0755, then
//     every "*.conflist" of SrcConf (names starting with "." are skipped:
//     a ConfigMap volume keeps its own "..data" entries there) into ConfDir
//     with mode 0644. Binaries come first, so a runtime never reads a
//     conflist whose plugins are not there yet.
//   - Each file is replaced atomically (hidden temporary file in the target
//     directory, fsync, chmod, rename; see deploy/internal/safefile): a
//     runtime never executes a partial binary, a symlink at the target
//     name is replaced and never followed, and no temporary file is left
//     behind, on success or failure.
//   - A source must be a regular file (a symlink to one, as in a ConfigMap
//     volume, is followed); anything else fails the installation. SrcBin
//     must hold at least one file; a missing SrcConf installs no conflist.
//   - BinDir and ConfDir are created (0755) when missing.
//   - Install is idempotent: running it again installs the same files.
package install

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/vmcni/vmcni/deploy/internal/safefile"
)

// Defaults of Options, as the image and the DaemonSet lay them out.
const (
	DefaultSrcBin  = "/opt/vmcni/bin"
	DefaultSrcConf = "/config"
	DefaultBinDir  = "/host/opt/cni/bin"
	DefaultConfDir = "/host/etc/cni/multus/net.d"
)

// Options says where Install copies from and to.
type Options struct {
	// SrcBin (optional) is the directory of plugin binaries; defaults to
	// DefaultSrcBin.
	SrcBin string
	// SrcConf (optional) is the directory of conflists; defaults to
	// DefaultSrcConf.
	SrcConf string
	// BinDir (optional) is the node's CNI binary directory as mounted;
	// defaults to DefaultBinDir.
	BinDir string
	// ConfDir (optional) is the node's Multus conflist directory as
	// mounted; defaults to DefaultConfDir.
	ConfDir string
}

// withDefaults fills the empty fields of o.
func (o Options) withDefaults() Options {
	for _, f := range []struct {
		v   *string
		def string
	}{{&o.SrcBin, DefaultSrcBin}, {&o.SrcConf, DefaultSrcConf}, {&o.BinDir, DefaultBinDir}, {&o.ConfDir, DefaultConfDir}} {
		if *f.v == "" {
			*f.v = f.def
		}
	}
	return o
}

// Result says what Install installed.
type Result struct {
	BinDir    string   // where the binaries went
	ConfDir   string   // where the conflists went
	Binaries  []string // file names installed into BinDir, sorted
	Conflists []string // file names installed into ConfDir, sorted
}

// String is the one line the installer prints.
func (r Result) String() string {
	conf := "no conflists"
	if len(r.Conflists) > 0 {
		conf = strings.Join(r.Conflists, " ")
	}
	return fmt.Sprintf("vmcni: installed %s into %s, %s into %s",
		strings.Join(r.Binaries, " "), r.BinDir, conf, r.ConfDir)
}

// Install copies the binaries and conflists of o (see the package doc).
func Install(o Options) (Result, error) {
	o = o.withDefaults()
	res := Result{BinDir: o.BinDir, ConfDir: o.ConfDir}
	bins, err := list(o.SrcBin, func(string) bool { return true })
	if err != nil {
		return res, fmt.Errorf("list binaries: %w", err)
	}
	if len(bins) == 0 {
		return res, fmt.Errorf("no binaries in %q", o.SrcBin)
	}
	confs, err := list(o.SrcConf, func(n string) bool {
		return !strings.HasPrefix(n, ".") && strings.HasSuffix(n, ".conflist")
	})
	if errors.Is(err, os.ErrNotExist) {
		confs, err = nil, nil
	}
	if err != nil {
		return res, fmt.Errorf("list conflists: %w", err)
	}
	if res.Binaries, err = copyAll(o.SrcBin, bins, o.BinDir, 0o755); err != nil {
		return res, err
	}
	if res.Conflists, err = copyAll(o.SrcConf, confs, o.ConfDir, 0o644); err != nil {
		return res, err
	}
	return res, nil
}

// list returns the sorted names in dir that keep accepts.
func list(dir string, keep func(name string) bool) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if keep(e.Name()) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// copyAll installs names from src into dst (created if missing) with perm
// and returns the names installed so far.
func copyAll(src string, names []string, dst string, perm os.FileMode) ([]string, error) {
	if len(names) == 0 {
		return nil, nil
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return nil, fmt.Errorf("create %q: %w", dst, err)
	}
	var done []string
	for _, n := range names {
		if err := copyFile(filepath.Join(src, n), filepath.Join(dst, n), perm); err != nil {
			return done, err
		}
		done = append(done, n)
	}
	return done, nil
}

// copyFile atomically replaces dst with the regular file src.
func copyFile(src, dst string, perm os.FileMode) error {
	in, err := safefile.OpenRegular(src)
	if err != nil {
		return fmt.Errorf("install %q: %w", src, err)
	}
	defer in.Close()
	return safefile.Write(dst, perm, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
}
