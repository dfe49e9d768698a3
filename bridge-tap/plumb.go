package bridgetap

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"

	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/netns"
	"github.com/vmcni/vmcni/pkg/hint"
)

// macvtapTxQLen replaces macvtap's default txqueuelen (500), which drops
// frames under load.
const macvtapTxQLen = 1000

// plumbVM builds the VM device in the pod netns for the configured mode and
// returns the hint describing it; completeHint adds the guest's addresses.
func (a *addition) plumbVM(ctx context.Context) (*hint.Hint, error) {
	conf := a.Conf
	pod := a.pod
	if conf.Chained() {
		var err error
		if pod, err = a.inspectPodInterface(); err != nil {
			return nil, fmt.Errorf("pod interface: %w", err)
		}
	}
	podMAC := pod.mac
	guestMAC := a.guestMAC(podMAC)
	mtu := conf.MTU
	if mtu == 0 {
		mtu = pod.mtu
	}
	a.podMACNow = podMAC
	a.st.PodMAC, a.st.GuestMAC = podMAC.String(), guestMAC.String()
	var err error
	if conf.Chained() {
		// recorded before the pod interface changes: DEL restores its MAC
		// and leaves a shared ingress qdisc (standalone, the interface is
		// ours and goes whole)
		if err = a.Save(); err != nil {
			return nil, err
		}
	}

	h := &hint.Hint{Netns: a.Args.Netns, Guest: hint.Guest{MAC: guestMAC.String(), MTU: mtu}}
	switch conf.Mode {
	case ModeTCFilter:
		err = a.plumbTCFilter(ctx, mtu)
		h.Kind, h.Tap = hint.KindTap, a.tapHint()
	case ModeBridge:
		err = a.plumbBridge(ctx, mtu, podMAC)
		h.Kind, h.Tap = hint.KindTap, a.tapHint()
	case ModeMacvtap:
		h.Kind = hint.KindMacvtap
		h.Macvtap, err = a.plumbMacvtap(ctx, mtu, podMAC, guestMAC)
	}
	if err != nil {
		return nil, err
	}
	return h, nil
}

// inspectPodInterface reads the MAC and MTU of the pod interface a
// previous plugin made (chained) and, in tcfilter mode, whether it has an
// ingress qdisc already.
func (a *addition) inspectPodInterface() (podInterface, error) {
	var pod netlink.Link
	err := a.inNetns(func() (err error) {
		if pod, err = link.ByName(a.st.Names.Pod); err != nil || a.Conf.Mode != ModeTCFilter {
			return err
		}
		// An ingress qdisc already on the pod interface belongs to another
		// component (a CNI before us, a service mesh): recorded, so that
		// rollback and DEL remove only vmcni's filter from it.
		a.st.PodIngressShared, err = link.HasIngress(pod)
		return err
	})
	if err != nil {
		return podInterface{}, err
	}
	return podInterface{mac: pod.Attrs().HardwareAddr, mtu: pod.Attrs().MTU}, nil
}

// completeHint fills the guest's addresses, routes and DNS from the result,
// and makes the pod interface's entry report its MAC as it is now (so the
// previous plugin's CHECK still holds; the guest's MAC is in the hint).
func (a *addition) completeHint(h *hint.Hint, res *current.Result, podIf int) error {
	g := hint.GuestFromResult(res, podIf, h.Guest.MAC, h.Guest.MTU)
	h.Guest = g
	if a.podMACNow != nil {
		res.Interfaces[podIf].Mac = a.podMACNow.String()
		return nil
	}
	return a.inNetns(func() error {
		now, err := link.ByName(a.st.Names.Pod)
		if err == nil {
			res.Interfaces[podIf].Mac = now.Attrs().HardwareAddr.String()
		}
		return err
	})
}

func (a *addition) tapHint() *hint.Tap {
	return &hint.Tap{
		Name: a.st.Names.Tap, MAC: a.tapMAC, Netns: a.Args.Netns, Queues: a.Conf.Queues,
		VnetHdr: *a.Conf.VnetHdr, Wiring: a.Conf.Mode,
	}
}

// inNetns runs fn in the pod netns (undo steps run outside it).
func (a *addition) inNetns(fn func() error) error {
	return netns.Do(a.Args.Netns, fn)
}

// createTap makes the tap (step "tap"); its undo deletes it by name
// unless the name was taken by a link that is not ours.
func (a *addition) createTap(ctx context.Context, mtu int) (netlink.Link, error) {
	conf, name := a.Conf, a.st.Names.Tap
	var tap netlink.Link
	ours := true
	err := a.Do("tap", func() error {
		if !ours {
			return nil
		}
		return a.inNetnsIfExists(func() error { return link.DeleteByName(name) })
	}, func() (err error) {
		tap, err = link.CreateTap(ctx, link.Tap{
			Name: name, Queues: conf.Queues, VnetHdr: *conf.VnetHdr,
			Owner: conf.TapOwner, Group: conf.TapGroup, MTU: mtu,
			LinkGroup: a.st.Group, Alias: a.deviceAlias(),
		})
		if errors.Is(err, syscall.EBUSY) { // IFF_TUN_EXCL: the name is taken
			ours = false
		}
		if err != nil {
			return err
		}
		a.tapMAC = tap.Attrs().HardwareAddr.String()
		return nil
	})
	return tap, err
}

// markDevice puts a VM device in the attachment's link group (DEL deletes
// the group in one batch) and gives it the vmcni alias (deviceAlias).
func (a *addition) markDevice(l netlink.Link) error {
	return link.Apply(l, link.Settings{Group: a.st.Group, Alias: a.deviceAlias()})
}

// deviceAlias is the alias of a VM device: it carries the guest MAC and
// queues, for runtimes that scan the netns instead of reading the result.
func (a *addition) deviceAlias() string {
	return hint.DeviceAlias{GuestMAC: a.st.GuestMAC, Queues: a.Conf.Queues}.String()
}

// inNetnsIfExists is inNetns for undo/DEL steps: a vanished netns took its
// links with it, so it counts as success.
func (a *addition) inNetnsIfExists(fn func() error) error {
	return ignoreGone(a.inNetns(fn))
}

// podAndTap finds the pod interface and creates the tap beside it (in the
// pod netns).
func (a *addition) podAndTap(ctx context.Context, mtu int) (pod, tap netlink.Link, err error) {
	if pod, err = link.ByName(a.st.Names.Pod); err != nil {
		return nil, nil, err
	}
	tap, err = a.createTap(ctx, mtu)
	return pod, tap, err
}

func (a *addition) plumbTCFilter(ctx context.Context, mtu int) error {
	names := a.st.Names
	return a.inNetns(func() error {
		pod, tap, err := a.podAndTap(ctx, mtu)
		if err != nil {
			return err
		}
		shared := a.st.PodIngressShared
		err = a.Do("redirect-pod-to-tap", func() error {
			return a.inNetnsIfExists(func() error { return removeRedirectByName(names.Pod, shared) })
		}, func() error { return link.RedirectIngress(pod, tap) })
		if err != nil {
			return err
		}
		// the tap's qdisc goes with the tap
		return a.Do("redirect-tap-to-pod", nil, func() error { return link.RedirectIngress(tap, pod) })
	})
}

// changePodMAC gives the pod interface a fresh MAC so the guest can use the
// original one (a bridge or macvtap would otherwise see the guest's MAC as
// local and drop its frames). With a nil newMAC it only arranges for the
// original to come back (passthru macvtap rewrites the pod's MAC itself).
func (a *addition) changePodMAC(pod netlink.Link, podMAC, newMAC net.HardwareAddr) error {
	name := a.st.Names.Pod
	return a.Do("pod-mac", func() error {
		return a.inNetnsIfExists(func() error { return link.RestoreMAC(name, podMAC.String()) })
	}, func() error {
		a.podMACNow = newMAC // (nil: the kernel changes it, passthru)
		if newMAC == nil {
			return nil
		}
		return link.SetMAC(pod, newMAC)
	})
}

func (a *addition) plumbBridge(ctx context.Context, mtu int, podMAC net.HardwareAddr) error {
	names := a.st.Names
	return a.inNetns(func() error {
		pod, tap, err := a.podAndTap(ctx, mtu)
		if err != nil {
			return err
		}
		var br netlink.Link
		ours := true // marker: a link of that name that was there is not ours
		err = a.Do("netns-bridge", func() error {
			if !ours {
				return nil
			}
			return a.inNetnsIfExists(func() error { return link.DeleteByName(names.NetnsBridge) })
		}, func() error {
			if br, err = link.CreateBridge(ctx, names.NetnsBridge, mtu); err != nil {
				ours = !errors.Is(err, syscall.EEXIST)
				return err
			}
			return link.SetGroup(br, a.st.Group)
		})
		if err != nil {
			return err
		}
		if err := silenceBridge(names.NetnsBridge); err != nil {
			return err
		}
		if *a.Conf.DisableBridgeNF {
			disableBridgeNetfilter()
		}
		if err := a.changePodMAC(pod, podMAC, link.RandomMAC()); err != nil {
			return err
		}
		return a.Do("enslave", nil, func() error {
			if err := link.SetMaster(tap, br); err != nil {
				return err
			}
			if err := link.SetMaster(pod, br); err != nil {
				return err
			}
			return link.DisableLearning(pod, tap)
		})
	})
}

// silenceBridge stops the in-netns bridge device from speaking for the pod:
// the pod netns still owns the guest's addresses (they stay on the pod
// interface), so with default sysctls the bridge would answer ARP for the
// guest's IP with its own MAC and swallow the traffic. arp_ignore=8 makes it
// answer no ARP; IPv6 is off on it (no link-local, no DAD, no RS).
func silenceBridge(name string) error {
	for _, s := range []struct{ path, value string }{
		{"/proc/sys/net/ipv4/conf/" + name + "/arp_ignore", "8"},
		{"/proc/sys/net/ipv6/conf/" + name + "/disable_ipv6", "1"},
	} {
		if err := os.WriteFile(s.path, []byte(s.value), 0o644); err != nil {
			return fmt.Errorf("silence bridge %q: %w", name, err)
		}
	}
	return nil
}

// disableBridgeNetfilter turns br_netfilter off in the calling thread's
// netns (/proc/sys/net is per netns). Best effort: the sysctls are absent
// when br_netfilter is not built in.
func disableBridgeNetfilter() {
	for _, key := range []string{"bridge-nf-call-iptables", "bridge-nf-call-ip6tables", "bridge-nf-call-arptables"} {
		_ = os.WriteFile("/proc/sys/net/bridge/"+key, []byte("0"), 0o644)
	}
}

func (a *addition) plumbMacvtap(ctx context.Context, mtu int, podMAC, guestMAC net.HardwareAddr) (*hint.Macvtap, error) {
	conf, names := a.Conf, a.st.Names
	var ifindex int
	err := a.inNetns(func() error {
		pod, err := link.ByName(names.Pod)
		if err != nil {
			return err
		}
		// passthru gives the pod interface the macvtap's (guest's) MAC
		var newMAC net.HardwareAddr
		if conf.MacvtapMode != "passthru" {
			newMAC = link.RandomMAC()
		}
		if err = a.changePodMAC(pod, podMAC, newMAC); err != nil {
			return err
		}
		ours := true // marker: a link of that name that was there is not ours
		return a.Do("macvtap", func() error {
			if !ours {
				return nil
			}
			return a.inNetnsIfExists(func() error { return link.DeleteByName(names.Macvtap) })
		}, func() error {
			mvt, err := link.CreateMacvtap(ctx, link.Macvtap{
				Name: names.Macvtap, Parent: pod, Mode: conf.MacvtapMode, MAC: guestMAC, MTU: mtu, TxQLen: macvtapTxQLen,
			})
			if err != nil {
				ours = !errors.Is(err, syscall.EEXIST)
				return err
			}
			ifindex = mvt.Attrs().Index
			if err := a.markDevice(mvt); err != nil {
				return err
			}
			// IPv6 neighbour discovery is multicast; without allmulticast
			// the macvtap's filter drops it and the guest has no IPv6.
			return link.SetAllMulticast(mvt)
		})
	})
	if err != nil {
		return nil, err
	}
	h := &hint.Macvtap{
		Name: names.Macvtap, Netns: a.Args.Netns, Ifindex: ifindex,
		Mode: conf.MacvtapMode, Queues: conf.Queues, VnetHdr: *conf.VnetHdr,
	}
	a.lookupChardev(h)
	return h, nil
}

// lookupChardev fills h's Major and Minor in the background: reading the
// pod netns's sysfs (a fresh mount of it) overlaps the pod interface's
// configuration; waitChardev joins it.
func (a *addition) lookupChardev(h *hint.Macvtap) {
	a.chardev = inBackground(func() (_ struct{}, err error) {
		h.Major, h.Minor, err = netns.MacvtapChardev(h.Netns, h.Name)
		return
	})
}

// waitChardev waits for the char device lookup, if one was started.
func (a *addition) waitChardev() error {
	_, err := a.chardev.wait()
	return err
}
