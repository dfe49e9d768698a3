// Package safefile reads and replaces files without surprises.
//
// Write replaces a file in one step: readers of the target name see either
// the old file or the complete new one, never a partial write. It fills a
// hidden temporary file in the target's directory (created with O_EXCL, so
// a symlink planted at any name is never followed), gives it its permission
// bits, fsyncs it, renames it over the target and fsyncs the directory.
// rename(2) replaces whatever is at the target name: a symlink there is
// replaced, not followed. On any failure the temporary file is removed and
// the target is left as it was.
//
// OpenRegular opens a source file only if it is a regular file.
package safefile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// TempPrefix starts the name of every temporary file Write creates, after
// the leading dot: ".vmcni-tmp-<target>-<random>".
const TempPrefix = "vmcni-tmp-"

// Write atomically replaces path with what fill writes, with permission
// bits perm (not subject to the umask). The parent directory must exist.
func Write(path string, perm os.FileMode, fill func(w io.Writer) error) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+TempPrefix+base+"-*")
	if err != nil {
		return fmt.Errorf("create temporary file for %q: %w", path, err)
	}
	if err := finish(tmp, perm, fill); err != nil {
		return errors.Join(fmt.Errorf("write %q: %w", path, err), removeTemp(tmp.Name()))
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return errors.Join(fmt.Errorf("replace %q: %w", path, err), removeTemp(tmp.Name()))
	}
	if err := SyncDir(dir); err != nil {
		return fmt.Errorf("replace %q: %w", path, err)
	}
	return nil
}

// finish fills, chmods, fsyncs and closes tmp; it closes tmp on every path.
func finish(tmp *os.File, perm os.FileMode, fill func(w io.Writer) error) error {
	err := fill(tmp)
	if err == nil {
		err = tmp.Chmod(perm)
	}
	if err == nil {
		err = tmp.Sync()
	}
	return errors.Join(err, tmp.Close())
}

func removeTemp(name string) error {
	if err := os.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove temporary file %q: %w", name, err)
	}
	return nil
}

// SyncDir fsyncs directory dir, making the renames done in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory %q: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync directory %q: %w", dir, err)
	}
	return nil
}

// OpenRegular opens p for reading only if it is a regular file (a symlink
// to one is followed). Anything else (directory, device, FIFO, socket) is
// refused before it is opened, so a FIFO cannot block the caller, and
// checked again on the open file, so a swap in between is caught too.
func OpenRegular(p string) (*os.File, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%q is not a regular file (%v)", p, st.Mode().Type())
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	fst, err := f.Stat()
	if err == nil && !os.SameFile(st, fst) {
		err = fmt.Errorf("%q changed while being opened", p)
	}
	if err != nil {
		return nil, errors.Join(err, f.Close())
	}
	return f, nil
}
