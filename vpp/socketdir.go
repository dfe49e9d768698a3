package vpp

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/vmcni/vmcni/internal/cnierr"
)

// lookupGroup resolves the group config (a name or a numeric gid); -1
// means "leave the directory's group alone". An unknown group is code 7.
func lookupGroup(group string) (int, error) {
	if group == "" {
		return -1, nil
	}
	if gid, err := strconv.ParseUint(group, 10, 31); err == nil {
		return int(gid), nil
	}
	g, err := user.LookupGroup(group)
	if err != nil {
		return -1, cnierr.Config("group %q: %w", group, err)
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return -1, cnierr.Config("group %q has gid %q: %w", group, g.Gid, err)
	}
	return gid, nil
}

// makeSocketDir creates <socketDir>/<containerID> (0711: traversable, not
// listable) and the per-attachment directory with mode, group-owned by gid.
// Neither may be a symlink: a directory planted in socketDir must not
// redirect VPP's socket elsewhere.
func makeSocketDir(p paths, gid int, mode uint32) error {
	parent := filepath.Dir(p.Dir)
	if err := os.MkdirAll(filepath.Dir(parent), 0o755); err != nil {
		return fmt.Errorf("create socketDir %q: %w", filepath.Dir(parent), err)
	}
	if err := os.Mkdir(parent, 0o711); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("create %q: %w", parent, err)
	}
	if err := realDir(parent); err != nil {
		return err
	}
	if err := os.Mkdir(p.Dir, os.FileMode(mode)); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("create socket directory %q: %w", p.Dir, err)
	}
	if err := realDir(p.Dir); err != nil {
		return err
	}
	// Mkdir's mode is masked by umask; set it exactly.
	if err := os.Chmod(p.Dir, os.FileMode(mode)); err != nil {
		return fmt.Errorf("chmod %q: %w", p.Dir, err)
	}
	if gid >= 0 {
		if err := os.Chown(p.Dir, -1, gid); err != nil {
			return fmt.Errorf("chown %q to gid %d: %w", p.Dir, gid, err)
		}
	}
	return nil
}

func realDir(path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return cnierr.Config("%q is not a directory (%s): refusing to put a socket through it", path, fi.Mode().Type())
	}
	return nil
}

// removeSocketDir removes the per-attachment directory with whatever
// socket is left in it, and the container's directory when empty. Missing
// directories are not an error.
func removeSocketDir(p paths) error {
	if fi, err := os.Lstat(p.Dir); err == nil && !fi.IsDir() {
		return fmt.Errorf("%q is not a directory, leaving it", p.Dir)
	}
	if err := os.RemoveAll(p.Dir); err != nil {
		return fmt.Errorf("remove socket directory %q: %w", p.Dir, err)
	}
	err := os.Remove(filepath.Dir(p.Dir))
	if err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ENOTEMPTY) && !errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("remove %q: %w", filepath.Dir(p.Dir), err)
	}
	return nil
}
