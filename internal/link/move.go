package link

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// MoveToNetns moves l into the network namespace open at nsFd and names it
// newName there, in one RTM_SETLINK request carrying IFLA_NET_NS_FD and
// IFLA_IFNAME (what `ip link set dev X netns N name Y` sends). The kernel
// does both under one RTNL hold, so no other process sees the device in the
// target namespace under its old name, and a clash of the old name there is
// resolved by using newName directly. The device arrives down. It acts from
// the calling thread's namespace (l must be visible there).
//
// The call is all or nothing. When newName is already taken in the target
// namespace the kernel still moves the device (under its old name) and only
// then fails the rename; MoveToNetns then moves it back under its old name
// before returning the error, so a failed call leaves the device where it
// was (possibly under another ifindex: look it up again by name).
func MoveToNetns(l netlink.Link, nsFd int, newName string) error {
	if err := ValidateName(newName); err != nil {
		return err
	}
	err := retry(func() error {
		req := nl.NewNetlinkRequest(unix.RTM_SETLINK, unix.NLM_F_ACK)
		msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
		msg.Index = int32(l.Attrs().Index)
		req.AddData(msg)
		req.AddData(nl.NewRtAttr(unix.IFLA_NET_NS_FD, nl.Uint32Attr(uint32(nsFd))))
		req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(newName)))
		_, err := req.Execute(unix.NETLINK_ROUTE, 0)
		return err
	})
	if err != nil {
		err = fmt.Errorf("move link %q to another netns as %q: %w", l.Attrs().Name, newName, err)
		return errors.Join(err, undoHalfMove(l, nsFd))
	}
	return nil
}

// undoHalfMove brings l back from the namespace at nsFd when a failed
// move-and-rename left it there under its old name. When l is still here
// (under its name and index) nothing moved and it does nothing.
func undoHalfMove(l netlink.Link, nsFd int) error {
	name := l.Attrs().Name
	if here, err := netlink.LinkByIndex(l.Attrs().Index); err == nil && here.Attrs().Name == name {
		return nil
	}
	// Route netlink only: a handle for every family would also open
	// NETLINK_XFRM, which fails (EPROTONOSUPPORT) where xfrm_user is a
	// module not loaded, as on Debian's generic kernel.
	there, err := netlink.NewHandleAt(netns.NsHandle(nsFd), unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("open the target netns to undo the move of %q: %w", name, err)
	}
	defer there.Close()
	moved, err := there.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find %q in the target netns to undo its move: %w", name, err)
	}
	self, err := netns.Get()
	if err != nil {
		return fmt.Errorf("open this netns to undo the move of %q: %w", name, err)
	}
	defer self.Close()
	if err := there.LinkSetNsFd(moved, int(self)); err != nil {
		return fmt.Errorf("move %q back after the failed rename: %w", name, err)
	}
	return nil
}

// SetDown brings a link administratively down.
func SetDown(l netlink.Link) error {
	if err := retry(func() error { return netlink.LinkSetDown(l) }); err != nil {
		return fmt.Errorf("set %q down: %w", l.Attrs().Name, err)
	}
	return nil
}

// Rename renames a link (it must be down).
func Rename(l netlink.Link, name string) error {
	if err := retry(func() error { return netlink.LinkSetName(l, name) }); err != nil {
		return fmt.Errorf("rename %q to %q: %w", l.Attrs().Name, name, err)
	}
	return nil
}
