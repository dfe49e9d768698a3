package netns

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ReadSysfs reads files of the namespace's own view of /sys/class/net: rel
// is a glob relative to it, and the result maps each match (relative to
// /sys/class/net) to its content.
//
// sysfs shows the links of the netns that was current when it was
// mounted. ReadSysfs mounts a fresh, read-only sysfs from inside the netns
// as a detached mount (fsopen and fsmount: it appears in no mount table
// and no mount namespace is copied) and reads it through its file
// descriptor; the mount goes when the descriptor is closed. Kernels
// without that API (before 5.2, or a seccomp filter that refuses it) get
// the older way: a throwaway OS thread in a private mount namespace.
func ReadSysfs(path, rel string) (map[string][]byte, error) {
	mnt, err := mountSysfs(path)
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
		return readSysfsInPrivateMountNS(path, rel)
	}
	if err != nil {
		return nil, err
	}
	defer unix.Close(mnt)
	root, err := os.OpenRoot("/proc/self/fd/" + strconv.Itoa(mnt))
	if err != nil {
		return nil, fmt.Errorf("open detached sysfs: %w", err)
	}
	defer root.Close()
	return readGlob(root.FS(), "class/net", rel)
}

// mountSysfs returns the descriptor of a detached sysfs mount made in the
// netns at path (sysfs takes the netns of the thread that opens it).
func mountSysfs(path string) (mnt int, err error) {
	err = Do(path, func() (err error) {
		var fsfd int
		if fsfd, err = unix.Fsopen("sysfs", unix.FSOPEN_CLOEXEC); err != nil {
			return fmt.Errorf("fsopen sysfs: %w", err)
		}
		defer unix.Close(fsfd)
		if err = unix.FsconfigCreate(fsfd); err != nil {
			return fmt.Errorf("create sysfs: %w", err)
		}
		attrs := unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC
		if mnt, err = unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, attrs); err != nil {
			return fmt.Errorf("mount sysfs: %w", err)
		}
		return nil
	})
	return mnt, err
}

// readGlob reads the files matching pattern under dir of fsys, keyed by
// their path relative to dir.
func readGlob(fsys fs.FS, dir, pattern string) (map[string][]byte, error) {
	matches, err := fs.Glob(fsys, dir+"/"+pattern)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(matches))
	for _, m := range matches {
		data, err := fs.ReadFile(fsys, m)
		if err != nil {
			return nil, err
		}
		out[strings.TrimPrefix(m, dir+"/")] = data
	}
	return out, nil
}

// readSysfsInPrivateMountNS is ReadSysfs without the new mount API: a
// throwaway OS thread enters the netns and a private mount namespace,
// mounts a fresh sysfs on a temporary directory and reads it there. The
// thread is never returned to the Go scheduler.
func readSysfsInPrivateMountNS(path, rel string) (map[string][]byte, error) {
	type reply struct {
		files map[string][]byte
		err   error
	}
	ch := make(chan reply, 1)
	go func() {
		runtime.LockOSThread() // not unlocked: the thread dies with the goroutine
		files, err := readSysfsOnThread(path, rel)
		ch <- reply{files, err}
	}()
	r := <-ch
	return r.files, r.err
}

func readSysfsOnThread(path, rel string) (map[string][]byte, error) {
	if err := unix.Unshare(unix.CLONE_NEWNS | unix.CLONE_FS); err != nil {
		return nil, fmt.Errorf("unshare mount namespace: %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return nil, fmt.Errorf("make mounts private: %w", err)
	}
	target, err := openNS(path)
	if err != nil {
		return nil, err
	}
	defer unix.Close(target)
	if err = unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		return nil, fmt.Errorf("enter netns %q: %w", path, err)
	}
	dir, err := os.MkdirTemp("", "vmcni-sysfs")
	if err != nil {
		return nil, err
	}
	defer os.Remove(dir)
	if err = unix.Mount("sysfs", dir, "sysfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NOEXEC|unix.MS_NODEV, ""); err != nil {
		return nil, fmt.Errorf("mount sysfs: %w", err)
	}
	defer func() { _ = unix.Unmount(dir, unix.MNT_DETACH) }()
	return readGlob(os.DirFS(dir), "class/net", rel)
}

func openNS(path string) (int, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		if os.IsNotExist(err) {
			return -1, fmt.Errorf("%w: %q", ErrGone, path)
		}
		return -1, fmt.Errorf("open netns %q: %w", path, err)
	}
	return fd, nil
}

// MacvtapChardev returns the major:minor of the char device of the macvtap
// called name in the netns at path (/sys/class/net/<name>/macvtap/tap*/dev
// as that netns sees it). /dev/tap<ifindex> may be missing or belong to
// another netns's macvtap: open a private node made from these numbers.
func MacvtapChardev(path, name string) (major, minor uint32, err error) {
	files, err := ReadSysfs(path, name+"/macvtap/tap*/dev")
	if err != nil {
		return 0, 0, fmt.Errorf("read char device of macvtap %q: %w", name, err)
	}
	for _, data := range files {
		maj, min, ok := strings.Cut(strings.TrimSpace(string(data)), ":")
		ma, err1 := strconv.ParseUint(maj, 10, 32)
		mi, err2 := strconv.ParseUint(min, 10, 32)
		if ok && err1 == nil && err2 == nil {
			return uint32(ma), uint32(mi), nil
		}
	}
	return 0, 0, fmt.Errorf("macvtap %q has no char device in sysfs", name)
}
