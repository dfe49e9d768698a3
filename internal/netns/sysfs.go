package netns

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ReadSysfs reads files of the namespace's own view of /sys/class/net.
// sysfs shows the links of the netns of whoever mounted it, so this runs on a
// throwaway OS thread that enters the netns and a private mount namespace,
// mounts a fresh sysfs and reads rel (a glob relative to /sys/class/net).
// The thread is never returned to the Go scheduler.
func ReadSysfs(path, rel string) (map[string][]byte, error) {
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
	base := filepath.Join(dir, "class", "net")
	matches, err := filepath.Glob(filepath.Join(base, rel))
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(matches))
	for _, m := range matches {
		data, err := os.ReadFile(m)
		if err != nil {
			return nil, err
		}
		relName, _ := filepath.Rel(base, m)
		out[relName] = data
	}
	return out, nil
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
