package bridgetap

import (
	"context"
	"errors"
	"fmt"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ip"
	"github.com/vishvananda/netlink"

	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/netns"
	"github.com/vmcni/vmcni/internal/plugin"
	"github.com/vmcni/vmcni/pkg/hint"
)

// check is vm-bridge's CHECK, after the engine's (record, hint, prevResult
// carrying the hint; IPAM CHECK when standalone): the host veth on its
// bridge (standalone), and in the pod netns the pod interface's addresses
// and routes and the VM plumbing (links, enslavement, redirect filters,
// MACs, MTU).
func check(_ context.Context, c *plugin.Checking[*NetConf, state]) error {
	st := c.State
	if !st.Chained {
		if err := checkHostVeth(st); err != nil {
			return err
		}
	}
	return netns.Do(c.Args.Netns, func() error { return checkNetns(st, c.Hint, c.Conf.Prev, c.Args.IfName) })
}

func checkHostVeth(st *state) error {
	veth, err := link.ByName(st.Names.HostVeth)
	if err != nil {
		return err
	}
	br, err := link.ByName(st.Bridge)
	if err != nil {
		return err
	}
	if veth.Attrs().MasterIndex != br.Attrs().Index {
		return fmt.Errorf("host veth %q is not on bridge %q", st.Names.HostVeth, st.Bridge)
	}
	return nil
}

// checkNetns verifies the plumbing inside the pod netns.
func checkNetns(st *state, h *hint.Hint, prev *current.Result, ifName string) error {
	names := st.Names
	pod, err := link.ByName(names.Pod)
	if err != nil {
		return err
	}
	if err := checkAddresses(prev, ifName); err != nil {
		return err
	}
	podMACIsGuest := pod.Attrs().HardwareAddr.String() == h.Guest.MAC
	switch st.Mode {
	case ModeTCFilter:
		tap, err := checkTap(names.Tap, h.Guest.MTU)
		if err != nil {
			return err
		}
		return errors.Join(
			checkRedirect(pod, tap),
			checkRedirect(tap, pod),
		)
	case ModeBridge:
		tap, err := checkTap(names.Tap, h.Guest.MTU)
		if err != nil {
			return err
		}
		br, err := link.ByName(names.NetnsBridge)
		if err != nil {
			return err
		}
		if podMACIsGuest {
			return fmt.Errorf("pod interface %q carries the guest MAC; the bridge would swallow the guest's frames", names.Pod)
		}
		return errors.Join(checkMaster(pod, br), checkMaster(tap, br))
	case ModeMacvtap:
		l, err := link.ByName(names.Macvtap)
		if err != nil {
			return err
		}
		if _, ok := l.(*netlink.Macvtap); !ok {
			return fmt.Errorf("%q is a %s, not a macvtap", names.Macvtap, l.Type())
		}
		if l.Attrs().ParentIndex != pod.Attrs().Index {
			return fmt.Errorf("macvtap %q is not on %q", names.Macvtap, names.Pod)
		}
		if l.Attrs().HardwareAddr.String() != h.Guest.MAC {
			return fmt.Errorf("macvtap %q has mac %s, the guest uses %s", names.Macvtap, l.Attrs().HardwareAddr, h.Guest.MAC)
		}
		if podMACIsGuest && h.Macvtap.Mode != "passthru" {
			return fmt.Errorf("pod interface %q carries the guest MAC", names.Pod)
		}
	}
	return nil
}

func checkTap(name string, mtu int) (netlink.Link, error) {
	tap, err := link.ByName(name)
	if err != nil {
		return nil, err
	}
	if _, ok := tap.(*netlink.Tuntap); !ok {
		return nil, fmt.Errorf("%q is a %s, not a tap", name, tap.Type())
	}
	if mtu != 0 && tap.Attrs().MTU != mtu {
		return nil, fmt.Errorf("tap %q has mtu %d, want %d", name, tap.Attrs().MTU, mtu)
	}
	return tap, nil
}

func checkRedirect(from, to netlink.Link) error {
	target, err := link.RedirectTarget(from)
	if err != nil {
		return err
	}
	if target != to.Attrs().Index {
		return fmt.Errorf("ingress of %q is not redirected to %q", from.Attrs().Name, to.Attrs().Name)
	}
	return nil
}

func checkMaster(l, master netlink.Link) error {
	if l.Attrs().MasterIndex != master.Attrs().Index {
		return fmt.Errorf("%q is not enslaved to %q", l.Attrs().Name, master.Attrs().Name)
	}
	return nil
}

// checkAddresses verifies that the pod interface carries every address
// the result assigns to it, and that the result's routes are in place.
func checkAddresses(prev *current.Result, ifName string) error {
	var ips []*current.IPConfig
	for _, ip := range prev.IPs {
		if ip.Interface == nil || *ip.Interface >= len(prev.Interfaces) {
			continue
		}
		if iface := prev.Interfaces[*ip.Interface]; iface.Name == ifName && iface.Sandbox != "" {
			ips = append(ips, ip)
		}
	}
	if err := ip.ValidateExpectedInterfaceIPs(ifName, ips); err != nil {
		return err
	}
	return ip.ValidateExpectedRoute(prev.Routes)
}
