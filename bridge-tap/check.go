package bridgetap

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/containernetworking/cni/pkg/skel"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"

	"github.com/vmcni/vmcni/internal/cnierr"
	"github.com/vmcni/vmcni/internal/ipam"
	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/netns"
	"github.com/vmcni/vmcni/internal/plugin"
	"github.com/vmcni/vmcni/internal/store"
	"github.com/vmcni/vmcni/pkg/hint"
)

// Check implements CNI CHECK: the record and hint exist, prevResult carries
// the hint, and the plumbing is whole (links, enslavement, redirect filters,
// MACs, MTU, addresses; IPAM CHECK when standalone).
func (p *Plugin) Check(args *skel.CmdArgs) error {
	conf, err := ParseConfig(args.StdinData, args.Args)
	if err != nil {
		return err
	}
	if err = conf.Validate(); err != nil {
		return err
	}
	if err = plugin.ValidateArgs(args.ContainerID, args.IfName); err != nil {
		return err
	}
	if conf.Prev == nil {
		return cnierr.Config("CHECK needs prevResult")
	}
	rec, err := store.New(conf.StateDir).GetComplete(args.ContainerID, args.IfName)
	if err != nil {
		return err
	}
	st, err := stateOf(rec)
	if err != nil {
		return err
	}
	h, err := hint.Read(conf.StateDir, args.ContainerID, args.IfName)
	if err != nil {
		return fmt.Errorf("hint: %w", err)
	}
	if err := hint.CheckResult(conf.Prev, h); err != nil {
		return err
	}
	if !st.Chained {
		a := ipam.Attachment{ContainerID: args.ContainerID, Netns: args.Netns, IfName: args.IfName, Args: args.Args}
		if err := (ipam.Delegate{Type: conf.IPAM.Type, Config: args.StdinData}).Check(context.Background(), a); err != nil {
			return err
		}
		if err := checkHostVeth(st); err != nil {
			return err
		}
	}
	return netns.Do(args.Netns, func() error { return checkNetns(st, h, conf.Prev, args.IfName) })
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
	if err := checkAddresses(pod, prev, ifName); err != nil {
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

// checkAddresses verifies that the pod interface carries every address the
// result assigns to it.
func checkAddresses(pod netlink.Link, prev *current.Result, ifName string) error {
	addrs, err := netlink.AddrList(pod, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("list addresses of %q: %w", ifName, err)
	}
	have := map[string]bool{}
	for _, a := range addrs {
		have[a.IPNet.String()] = true
	}
	for _, ip := range prev.IPs {
		if ip.Interface == nil || *ip.Interface >= len(prev.Interfaces) {
			continue
		}
		iface := prev.Interfaces[*ip.Interface]
		if iface.Name != ifName || iface.Sandbox == "" {
			continue
		}
		want := (&net.IPNet{IP: ip.Address.IP, Mask: ip.Address.Mask}).String()
		if !have[want] {
			return fmt.Errorf("%q lacks address %s", ifName, want)
		}
	}
	return nil
}
