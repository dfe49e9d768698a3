// Package socketdir lays out the directories that hold an attachment's
// vhost-user or memif socket, for vm-vhostuser and vm-vpp alike.
//
// Layout: <root>/<containerID>/<ifName>/<file>. The container's directory
// is 0711 (traversable, not listable); the attachment's has the configured
// mode, group-owned by the configured group, so a VMM running as that group
// can create or connect to the socket. Nesting keeps attachments apart
// (no "a-b"+"c" versus "a"+"b-c" collision), and DEL of one never touches
// another's directory.
//
// Safety: For checks, before any side effect, that the socket stays inside
// root and that its path fits sun_path (108 bytes with the NUL, so 107);
// ParseMode refuses other-writable modes (a local user could swap in a
// socket and reach guest memory); Make and Remove refuse a directory that
// is a symlink or not a directory.
package socketdir

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/vmcni/vmcni/internal/cnierr"
	"github.com/vmcni/vmcni/pkg/hint"
)

// MaxSocketPath is sun_path's size (108) minus the terminating NUL.
const MaxSocketPath = 107

// Paths are an attachment's directory and socket.
type Paths struct {
	Dir    string `json:"dir"`
	Socket string `json:"socket"`
}

// For returns the directory and socket file of (containerID, ifName) under
// root and checks them: root clean and absolute, the socket inside root
// and within MaxSocketPath bytes. Errors are CNI errors: code 4 for a key
// that cannot name a directory, 7 for the rest.
func For(root, containerID, ifName, file string) (Paths, error) {
	if err := hint.ValidateKey(containerID, ifName); err != nil {
		return Paths{}, cnierr.Env("%w", err)
	}
	if !filepath.IsAbs(root) || filepath.Clean(root) != root {
		return Paths{}, cnierr.Config("socketDir %q must be a clean absolute path", root)
	}
	dir := filepath.Join(root, containerID, ifName)
	if filepath.Dir(filepath.Dir(dir)) != root {
		return Paths{}, cnierr.Config("attachment directory %q escapes socketDir %q", dir, root)
	}
	sock := filepath.Join(dir, file)
	if len(sock) > MaxSocketPath {
		return Paths{}, cnierr.Config("socket path %q is %d bytes; unix sockets allow %d (shorten socketDir or the container ID)",
			sock, len(sock), MaxSocketPath)
	}
	return Paths{Dir: dir, Socket: sock}, nil
}

// ParseMode parses an octal directory mode: permission bits only, rwx for
// the owner, no write for others.
func ParseMode(s string) (os.FileMode, error) {
	mode, err := strconv.ParseUint(s, 8, 32)
	if err != nil || mode > 0o777 || mode&0o700 != 0o700 || mode&0o002 != 0 {
		return 0, cnierr.Config("socketDirMode %q must be octal permission bits with rwx for the owner and no write for others", s)
	}
	return os.FileMode(mode), nil
}

// LookupGroup resolves a group name or numeric gid; "" gives -1 (leave
// the directory's group alone). An unknown group is code 7.
func LookupGroup(group string) (int, error) {
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

// Make creates the container's directory (0711) and the attachment's
// directory with mode, group-owned by gid (-1: unchanged). Neither may be
// a symlink or another kind of file: a directory planted in root must not
// redirect the socket elsewhere. An attachment directory that exists
// already is refused (code 7): it is not this attachment's. created
// reports whether this call made the attachment's directory, also when a
// later step failed: only then is Remove the undo.
func Make(p Paths, gid int, mode os.FileMode) (created bool, err error) {
	parent := filepath.Dir(p.Dir)
	if err = os.MkdirAll(filepath.Dir(parent), 0o755); err != nil {
		return false, fmt.Errorf("create socketDir %q: %w", filepath.Dir(parent), err)
	}
	if err = os.Mkdir(parent, 0o711); err != nil && !errors.Is(err, os.ErrExist) {
		return false, fmt.Errorf("create %q: %w", parent, err)
	}
	if err = realDir(parent); err != nil {
		return false, err
	}
	err = os.Mkdir(p.Dir, mode)
	if errors.Is(err, os.ErrExist) {
		return false, cnierr.Config("attachment directory %q already exists and is not ours", p.Dir)
	}
	if err != nil {
		return false, fmt.Errorf("create socket directory %q: %w", p.Dir, err)
	}
	// Mkdir's mode is masked by umask; set it exactly.
	if err := os.Chmod(p.Dir, mode); err != nil {
		return true, fmt.Errorf("chmod %q: %w", p.Dir, err)
	}
	if gid >= 0 {
		if err := os.Chown(p.Dir, -1, gid); err != nil {
			return true, fmt.Errorf("chown %q to gid %d: %w", p.Dir, gid, err)
		}
	}
	return true, nil
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

// Remove removes the attachment's directory with whatever socket is left
// in it, and the container's directory when empty. Missing directories
// are not an error; a symlink or file in the directory's place is left
// alone and reported.
func Remove(p Paths) error {
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

// Step is Make as an undoable ADD step: undo removes the directory only
// when do created it (a directory that was there is not this attachment's),
// and is harmless when do never ran. Register undo before running do.
func Step(p Paths, gid int, mode os.FileMode) (undo, do func() error) {
	created := false
	undo = func() error {
		if !created {
			return nil
		}
		return Remove(p)
	}
	do = func() (err error) {
		created, err = Make(p, gid, mode)
		return err
	}
	return undo, do
}
