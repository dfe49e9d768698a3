package sriov

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/vmcni/vmcni/internal/cnierr"
	"github.com/vmcni/vmcni/internal/ipam"
	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/netns"
	"github.com/vmcni/vmcni/internal/plugin"
)

// netdev applies the PF-side settings, moves the VF netdev into the pod
// netns as CNI_IFNAME, sets MAC and MTU, and configures IPAM's addresses.
// The pod gets a real netdev: there is no VM device, so no hint.
func (a *addition) netdev(ctx context.Context, mac net.HardwareAddr) (plugin.Outcome, error) {
	conf, args, st := a.Conf, a.Args, a.st
	// Restoring the host netdev's MAC must come after the PF-side admin MAC
	// is restored (an untrusted VF may not change its MAC while the PF
	// imposes one), so this state-based step is registered before the
	// knobs and runs after their undo steps.
	a.Undo("restore netdev mac", func() error { return link.RestoreMAC(st.Netdev, st.NetdevMAC) })
	if err := a.applyVF(mac); err != nil {
		return plugin.Outcome{}, err
	}
	podNS, err := netns.Open(args.Netns)
	if err != nil {
		return plugin.Outcome{}, cnierr.Env("CNI_NETNS: %w", err)
	}
	defer podNS.Close()
	// marker: CNI_IFNAME in the pod is the VF only once the move succeeded
	// (MoveToNetns undoes a half move itself); a pod interface of that name
	// that was there before is not ours to take.
	moved := false
	err = a.Do("netdev-move", func() error {
		if !moved {
			return nil
		}
		return returnNetdev(args.Netns, args.IfName, st.Netdev, st.NetdevMTU, conf.bindTimeout)
	}, func() error {
		l, lerr := link.ByName(st.Netdev)
		if lerr != nil {
			return lerr
		}
		if merr := link.MoveToNetns(l, int(podNS.Fd()), args.IfName); merr != nil {
			return fmt.Errorf("move VF %q netdev into netns %q: %w", st.PCI, args.Netns, merr)
		}
		moved = true
		return nil
	})
	if err != nil {
		return plugin.Outcome{}, err
	}
	iface := &current.Interface{Name: args.IfName, Sandbox: args.Netns, PciID: st.PCI}
	err = a.Do("netdev-config", nil, func() error {
		return netns.Do(args.Netns, func() error { return configurePodNetdev(iface, mac, conf.MTU) })
	})
	if err != nil {
		return plugin.Outcome{}, err
	}
	st.GuestMAC = iface.Mac
	res, err := a.Allocate(ctx)
	if err != nil {
		return plugin.Outcome{}, err
	}
	res.CNIVersion = current.ImplementedSpecVersion
	res.Interfaces = []*current.Interface{iface}
	out := plugin.Outcome{Result: res, PodIf: 0}
	if len(res.IPs) == 0 {
		return out, nil
	}
	for _, ip := range res.IPs {
		ip.Interface = current.Int(0)
	}
	return out, a.Do("addresses", nil, func() error {
		return netns.Do(args.Netns, func() error { return ipam.ConfigureIface(args.IfName, res) })
	})
}

// configurePodNetdev sets the MAC (when given) and MTU (when non-zero) of
// iface (in the calling thread's netns), brings it up, and records its MAC
// and MTU in iface.
func configurePodNetdev(iface *current.Interface, mac net.HardwareAddr, mtu int) error {
	pod, err := link.ByName(iface.Name)
	if err != nil {
		return err
	}
	if mac != nil && pod.Attrs().HardwareAddr.String() != mac.String() {
		if err = setVFMAC(pod, mac); err != nil {
			return err
		}
	}
	if mtu != 0 && pod.Attrs().MTU != mtu {
		if err = link.SetMTU(pod, mtu); err != nil {
			return err
		}
	}
	if err = link.SetUp(pod); err != nil {
		return err
	}
	if pod, err = link.ByName(iface.Name); err != nil {
		return err
	}
	iface.Mac, iface.Mtu = pod.Attrs().HardwareAddr.String(), pod.Attrs().MTU
	return nil
}

// setVFMAC gives the VF netdev mac, the administrative MAC ADD just set
// on the PF. A VF driver asks its PF for a MAC change, and a PF that holds
// an administrative MAC refuses any (igb: "attempted to override
// administratively set MAC address"); igbvf adopts the administrative MAC
// only when it resets, which it does when the link goes down. So when the
// direct change is refused, the link is cycled up and down and the MAC
// read again.
func setVFMAC(l netlink.Link, mac net.HardwareAddr) error {
	err := link.SetMAC(l, mac)
	if !errors.Is(err, unix.EADDRNOTAVAIL) {
		return err
	}
	if cerr := errors.Join(link.SetUp(l), link.SetDown(l)); cerr != nil {
		return errors.Join(err, cerr)
	}
	now, rerr := link.ByName(l.Attrs().Name)
	if rerr != nil {
		return errors.Join(err, rerr)
	}
	if now.Attrs().HardwareAddr.String() != mac.String() {
		return fmt.Errorf("%w (after a reset the VF has %s)", err, now.Attrs().HardwareAddr)
	}
	return nil
}

// returnNetdev moves CNI_IFNAME from the pod netns back to the calling
// thread's netns under its original name, with its original MTU. A missing
// link is success; a missing netns gives netns.ErrGone. When another link
// holds the name in the host (a VF rebound at the same time got it from
// the kernel), the netdev comes back under a temporary name and takes its
// own once free (renameWhenFree).
func returnNetdev(nsPath, ifName, hostName string, mtu int, timeout time.Duration) error {
	host, err := vnetns.Get()
	if err != nil {
		return fmt.Errorf("open host netns: %w", err)
	}
	defer host.Close()
	tempName := ""
	err = netns.Do(nsPath, func() error {
		l, lerr := link.ByName(ifName)
		if link.IsNotFound(lerr) {
			return nil
		}
		if lerr != nil {
			return lerr
		}
		if lerr = link.SetDown(l); lerr != nil {
			return lerr
		}
		if mtu != 0 && l.Attrs().MTU != mtu {
			if lerr = link.SetMTU(l, mtu); lerr != nil {
				return lerr
			}
		}
		lerr = link.MoveToNetns(l, int(host), hostName)
		if !errors.Is(lerr, unix.EEXIST) {
			return lerr
		}
		tempName = temporaryName(l)
		return link.MoveToNetns(l, int(host), tempName)
	})
	if err != nil || tempName == "" {
		return err
	}
	l, err := link.ByName(tempName)
	if err != nil {
		return err
	}
	return renameWhenFree(l, hostName, timeout)
}

// temporaryName is a name for l while it waits for its own.
func temporaryName(l netlink.Link) string { return fmt.Sprintf("vmcnivf%d", l.Attrs().Index) }

// reclaimNetdev renames the VF's netdev back to hostName, and restores its
// MTU, when it is in the host netns under another name: the kernel returns a physical netdev to
// the init netns when its netns is destroyed, keeping the pod's name (or
// dev%d on a clash). Destruction is asynchronous (a workqueue runs it after
// the last reference is gone), so a DEL right after the netns was deleted
// polls up to timeout for the netdev to show in the host's sysfs net/
// entry; when it does not (the netns is still held by a process, or the VF
// left its network driver), there is nothing to rename.
func reclaimNetdev(hw pci, addr, hostName string, mtu int, timeout time.Duration, log *slog.Logger) error {
	deadline := time.Now().Add(timeout)
	for {
		names, err := hostNetdevs(hw, addr)
		if err != nil || len(names) > 0 {
			return errors.Join(err, restoreNetdevs(names, hostName, mtu, timeout))
		}
		if drv, err := hw.Driver(addr); err != nil || drv == "" || drv == VFIODriver {
			return err // no netdev will come
		}
		if time.Now().After(deadline) {
			log.Warn("VF netdev did not return to the host netns; not renaming it", "pci", addr, "waited", timeout)
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// hostNetdevs returns the links of VF addr in the calling thread's netns
// (sysfs net/ entries that name a link here).
func hostNetdevs(hw pci, addr string) ([]netlink.Link, error) {
	names, err := hw.Netdevs(addr)
	if err != nil {
		return nil, err
	}
	var links []netlink.Link
	for _, n := range names {
		l, err := link.ByName(n)
		if link.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		links = append(links, l)
	}
	return links, nil
}

// restoreNetdevs gives each link its host name and original MTU (when
// mtu is not 0), bringing it down first when it needs renaming: the kernel
// returns a VF netdev from a destroyed netns with the pod's name and MTU.
func restoreNetdevs(links []netlink.Link, hostName string, mtu int, timeout time.Duration) error {
	var errs []error
	for _, l := range links {
		var err error
		if mtu != 0 && l.Attrs().MTU != mtu {
			err = link.SetMTU(l, mtu)
		}
		if err == nil && l.Attrs().Name != hostName {
			err = link.SetDown(l)
			if err == nil {
				err = renameWhenFree(l, hostName, timeout)
			}
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// renameWhenFree renames l to name. Another link may hold the name for a
// while: a driver bound again names its new netdev after the first free
// ethN, which can be the name another VF, being put back at the same
// time, had before, while that VF's netdev holds the name this one wants.
// Then l gives its own name up for a temporary one (so that the other can
// have it) and retries until name is free or timeout passes; DEL fails
// then, keeping the record, and a later DEL renames it.
func renameWhenFree(l netlink.Link, name string, timeout time.Duration) error {
	err := link.Rename(l, name)
	if !errors.Is(err, unix.EEXIST) {
		return err
	}
	if terr := link.Rename(l, temporaryName(l)); terr != nil {
		return errors.Join(err, terr)
	}
	for deadline := time.Now().Add(timeout); ; {
		err = link.Rename(l, name)
		if !errors.Is(err, unix.EEXIST) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}
