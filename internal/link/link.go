// Package link is vmcni's gateway to netlink for links, addresses, qdiscs
// and filters: the plugins change them through here (vm-sriov's PF-side VF
// settings go through its own VFController, tap creation through the tun
// ioctls in this package).
//
// Calls act in the network namespace of the calling OS thread (wrap them in
// netns.Do to act inside a pod). Dump calls are retried when the kernel
// reports an interrupted dump (netlink.ErrDumpInterrupted) and every call is
// retried on EINTR/EAGAIN/EBUSY, a few times. Helpers are named for what they
// do instead of taking positional booleans. Deletions treat "not found" as
// success, so DEL paths can call them blindly.
package link

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
)

const attempts = 5

// retry runs fn until it succeeds, fails with a non-transient error, or the
// attempts are used up.
func retry(fn func() error) error {
	var err error
	for i := 0; i < attempts; i++ {
		err = fn()
		if err == nil || !transient(err) {
			return err
		}
		time.Sleep(time.Duration(i+1) * time.Millisecond)
	}
	return err
}

func transient(err error) bool {
	return errors.Is(err, netlink.ErrDumpInterrupted) || errors.Is(err, syscall.EINTR) ||
		errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EBUSY)
}

// IsNotFound reports whether err says a link does not exist.
func IsNotFound(err error) bool {
	var notFound netlink.LinkNotFoundError
	return errors.As(err, &notFound) || errors.Is(err, syscall.ENODEV)
}

// ByName returns the link called name.
func ByName(name string) (netlink.Link, error) {
	var l netlink.Link
	err := retry(func() (err error) { l, err = netlink.LinkByName(name); return err })
	if err != nil {
		return nil, fmt.Errorf("find link %q: %w", name, err)
	}
	return l, nil
}

// Exists reports whether a link called name exists.
func Exists(name string) bool {
	_, err := ByName(name)
	return err == nil
}

// DeleteByName deletes the link called name; a missing link is success.
func DeleteByName(name string) error {
	l, err := ByName(name)
	if IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	err = retry(func() error { return netlink.LinkDel(l) })
	if err != nil && !IsNotFound(err) {
		return fmt.Errorf("delete link %q: %w", name, err)
	}
	return nil
}

// SetUp brings a link administratively up.
func SetUp(l netlink.Link) error {
	if err := retry(func() error { return netlink.LinkSetUp(l) }); err != nil {
		return fmt.Errorf("set %q up: %w", l.Attrs().Name, err)
	}
	return nil
}

// SetMAC changes a link's hardware address.
func SetMAC(l netlink.Link, mac net.HardwareAddr) error {
	if err := retry(func() error { return netlink.LinkSetHardwareAddr(l, mac) }); err != nil {
		return fmt.Errorf("set mac of %q to %s: %w", l.Attrs().Name, mac, err)
	}
	return nil
}

// SetMTU changes a link's MTU.
func SetMTU(l netlink.Link, mtu int) error {
	if err := retry(func() error { return netlink.LinkSetMTU(l, mtu) }); err != nil {
		return fmt.Errorf("set mtu of %q to %d: %w", l.Attrs().Name, mtu, err)
	}
	return nil
}

// SetMaster enslaves l to master (a bridge).
func SetMaster(l, master netlink.Link) error {
	if err := retry(func() error { return netlink.LinkSetMaster(l, master) }); err != nil {
		return fmt.Errorf("enslave %q to %q: %w", l.Attrs().Name, master.Attrs().Name, err)
	}
	return nil
}

// SetTxQLen changes a link's transmit queue length.
func SetTxQLen(l netlink.Link, qlen int) error {
	if err := retry(func() error { return netlink.LinkSetTxQLen(l, qlen) }); err != nil {
		return fmt.Errorf("set txqueuelen of %q: %w", l.Attrs().Name, err)
	}
	return nil
}

// RandomMAC returns a random locally administered unicast MAC.
func RandomMAC() net.HardwareAddr {
	mac := make(net.HardwareAddr, 6)
	_, _ = rand.Read(mac)
	mac[0] = (mac[0] | 0x02) &^ 0x01
	return mac
}

// ValidateName checks a Linux interface name: 1-15 bytes, no '/', ':' or
// whitespace, not "." or "..".
func ValidateName(name string) error {
	if name == "" || len(name) > 15 {
		return fmt.Errorf("interface name %q must be 1 to 15 bytes", name)
	}
	if name == "." || name == ".." {
		return fmt.Errorf("interface name %q is reserved", name)
	}
	for _, c := range name {
		if c == '/' || c == ':' || c <= ' ' || c == 0x7f {
			return fmt.Errorf("interface name %q contains %q", name, c)
		}
	}
	return nil
}

// Ports returns the links enslaved to master.
func Ports(master netlink.Link) ([]netlink.Link, error) {
	var all []netlink.Link
	if err := retry(func() (err error) { all, err = netlink.LinkList(); return err }); err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	var ports []netlink.Link
	for _, l := range all {
		if l.Attrs().MasterIndex == master.Attrs().Index {
			ports = append(ports, l)
		}
	}
	return ports, nil
}

// EnsureAddress adds addr to l unless it is there; added tells which.
func EnsureAddress(l netlink.Link, addr *net.IPNet) (added bool, err error) {
	err = retry(func() error { return netlink.AddrAdd(l, &netlink.Addr{IPNet: addr}) })
	if errors.Is(err, syscall.EEXIST) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("add address %s to %q: %w", addr, l.Attrs().Name, err)
	}
	return true, nil
}

// RemoveAddress removes addr from l; a missing address is success.
func RemoveAddress(l netlink.Link, addr *net.IPNet) error {
	err := retry(func() error { return netlink.AddrDel(l, &netlink.Addr{IPNet: addr}) })
	if err == nil || errors.Is(err, syscall.EADDRNOTAVAIL) || IsNotFound(err) {
		return nil
	}
	return fmt.Errorf("remove address %s from %q: %w", addr, l.Attrs().Name, err)
}

// SetAllMulticast makes l receive all multicast frames.
func SetAllMulticast(l netlink.Link) error {
	if err := retry(func() error { return netlink.LinkSetAllmulticastOn(l) }); err != nil {
		return fmt.Errorf("set allmulticast on %q: %w", l.Attrs().Name, err)
	}
	return nil
}

// SetAlias sets l's alias (IFLA_IFALIAS, at most 255 bytes).
func SetAlias(l netlink.Link, alias string) error {
	if err := retry(func() error { return netlink.LinkSetAlias(l, alias) }); err != nil {
		return fmt.Errorf("set alias of %q: %w", l.Attrs().Name, err)
	}
	return nil
}

// RestoreMAC gives the link called name the MAC mac (as text) back when
// it has another one. An empty name, an unparsable mac or a missing link
// is success: there is nothing to restore.
func RestoreMAC(name, mac string) error {
	want, err := net.ParseMAC(mac)
	if name == "" || err != nil {
		return nil
	}
	l, err := ByName(name)
	if IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if l.Attrs().HardwareAddr.String() == want.String() {
		return nil
	}
	return SetMAC(l, want)
}

// DeleteBridgeIfUnused removes the bridge called name unless something is
// plugged into it (a concurrent ADD, another pod). A missing bridge is
// success.
func DeleteBridgeIfUnused(name string) error {
	br, err := ByName(name)
	if IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	ports, err := Ports(br)
	if err != nil || len(ports) > 0 {
		return err
	}
	return DeleteByName(name)
}
