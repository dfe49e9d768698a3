package launcher

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/vmcni/vmcni/internal/netns"
)

// OpenTap opens one fd per queue on the persistent tap name inside the netns
// at nsPath (a tap fd belongs to the netns it is opened in, so TUNSETIFF
// runs on a thread inside it). The flags must match the tap's: vnetHdr and,
// for queues > 1, IFF_MULTI_QUEUE.
func OpenTap(nsPath, name string, queues int, vnetHdr bool) ([]*os.File, error) {
	if queues < 1 {
		queues = 1
	}
	flags := uint16(unix.IFF_TAP | unix.IFF_NO_PI)
	if vnetHdr {
		flags |= unix.IFF_VNET_HDR
	}
	if queues > 1 {
		flags |= unix.IFF_MULTI_QUEUE
	}
	var files []*os.File
	err := netns.Do(nsPath, func() error {
		fds, err := openCharDev(tunPath, tunMajor, tunMinor, queues)
		if err != nil {
			return fmt.Errorf("open tun device: %w", err)
		}
		for _, fd := range fds {
			files = append(files, os.NewFile(uintptr(fd), "tap:"+name))
		}
		for q, f := range files {
			req, err := unix.NewIfreq(name)
			if err != nil {
				return err
			}
			req.SetUint16(flags)
			if err := unix.IoctlIfreq(int(f.Fd()), unix.TUNSETIFF, req); err != nil {
				return fmt.Errorf("attach to tap %q queue %d: %w", name, q, err)
			}
		}
		return nil
	})
	if err != nil {
		closeAll(files)
		return nil, err
	}
	return files, nil
}

// The tun/tap clone device.
const (
	tunPath  = "/dev/net/tun"
	tunMajor = 10
	tunMinor = 200
)

// OpenMacvtap opens the macvtap char device major:minor once per queue
// through a private device node (/dev/tap<ifindex> may be missing or name
// another netns's macvtap). The node is removed once opened.
func OpenMacvtap(major, minor uint32, queues int) ([]*os.File, error) {
	if queues < 1 {
		queues = 1
	}
	fds, err := openCharDev("", major, minor, queues)
	if err != nil {
		return nil, fmt.Errorf("open macvtap %d:%d: %w", major, minor, err)
	}
	files := make([]*os.File, len(fds))
	for i, fd := range fds {
		files[i] = os.NewFile(uintptr(fd), fmt.Sprintf("macvtap:%d:%d", major, minor))
	}
	return files, nil
}

// openCharDev opens the char device major:minor n times, read-write and
// close-on-exec: through path when it is set and exists, else through a
// private node made in a temporary directory of os.TempDir() and, should
// that fail (a nodev mount), of /dev, removed once opened. In a container
// /dev holds neither /dev/tap<ifindex> nor, unless privileged,
// /dev/net/tun; making the node needs CAP_MKNOD and the device cgroup
// must allow it.
func openCharDev(path string, major, minor uint32, n int) ([]int, error) {
	if path != "" {
		fds, err := openN(path, n)
		if !errors.Is(err, unix.ENOENT) {
			return fds, err
		}
	}
	var errs []error
	for _, parent := range []string{os.TempDir(), "/dev"} {
		fds, err := openPrivateNode(parent, major, minor, n)
		if err == nil {
			return fds, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

func openPrivateNode(parent string, major, minor uint32, n int) ([]int, error) {
	dir, err := os.MkdirTemp(parent, "vmnet-dev")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	node := filepath.Join(dir, "dev")
	if err := unix.Mknod(node, unix.S_IFCHR|0o600, int(unix.Mkdev(major, minor))); err != nil {
		return nil, fmt.Errorf("mknod %s (%d:%d): %w", node, major, minor, err)
	}
	return openN(node, n)
}

// openN opens path n times; on error it closes what it opened.
func openN(path string, n int) ([]int, error) {
	var fds []int
	for i := 0; i < n; i++ {
		fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			for _, f := range fds {
				unix.Close(f)
			}
			return nil, fmt.Errorf("open %s: %w", path, err)
		}
		fds = append(fds, fd)
	}
	return fds, nil
}

func closeAll(files []*os.File) {
	for _, f := range files {
		_ = f.Close()
	}
}
