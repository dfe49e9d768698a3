package launcher

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/vmcni/vmcni/pkg/netns"
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
		for q := 0; q < queues; q++ {
			fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
			if err != nil {
				return err
			}
			req, err := unix.NewIfreq(name)
			if err != nil {
				unix.Close(fd)
				return err
			}
			req.SetUint16(flags)
			if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, req); err != nil {
				unix.Close(fd)
				return fmt.Errorf("attach to tap %q queue %d: %w", name, q, err)
			}
			files = append(files, os.NewFile(uintptr(fd), "tap:"+name))
		}
		return nil
	})
	if err != nil {
		closeAll(files)
		return nil, err
	}
	return files, nil
}

// OpenMacvtap opens the macvtap char device major:minor once per queue
// through a private device node (/dev/tap<ifindex> may be missing or name
// another netns's macvtap). The node is removed once opened.
func OpenMacvtap(major, minor uint32, queues int) ([]*os.File, error) {
	if queues < 1 {
		queues = 1
	}
	dir, err := os.MkdirTemp("", "vmnet-macvtap")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	node := filepath.Join(dir, "tap")
	if err := unix.Mknod(node, unix.S_IFCHR|0o600, int(unix.Mkdev(major, minor))); err != nil {
		return nil, fmt.Errorf("mknod macvtap %d:%d: %w", major, minor, err)
	}
	var files []*os.File
	for q := 0; q < queues; q++ {
		f, err := os.OpenFile(node, os.O_RDWR, 0)
		if err != nil {
			closeAll(files)
			return nil, fmt.Errorf("open macvtap %d:%d: %w", major, minor, err)
		}
		files = append(files, f)
	}
	return files, nil
}

func closeAll(files []*os.File) {
	for _, f := range files {
		_ = f.Close()
	}
}
