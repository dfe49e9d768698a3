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

	"github.com/vmcni/vmcni/internal/cnierr"
	"github.com/vmcni/vmcni/internal/ipam"
	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/masq"
	"github.com/vmcni/vmcni/internal/netns"
)

// createPodInterface makes the host bridge (if missing) and the veth whose
// peer is created directly in the pod netns as CNI_IFNAME.
func (a *addition) createPodInterface(ctx context.Context) error {
	conf, args, names := a.Conf, a.Args, a.st.Names
	var br *netlink.Bridge
	isNew := false // marker: only a bridge this ADD created is removed
	err := a.Do("bridge", func() error {
		if !isNew {
			return nil
		}
		return link.DeleteBridgeIfUnused(conf.Bridge)
	}, func() (err error) {
		br, isNew, err = link.EnsureBridge(ctx, conf.Bridge, conf.MTU)
		return err
	})
	if err != nil {
		return err
	}
	mtu := conf.MTU
	if mtu == 0 {
		mtu = br.Attrs().MTU
	}
	podNS, err := netns.Open(args.Netns)
	if err != nil {
		return cnierr.Env("CNI_NETNS: %w", err)
	}
	defer podNS.Close()
	// The pod end's MAC is chosen here (the guest's when configured), so
	// the VM plumbing needs no lookup of it.
	a.pod = podInterface{mac: conf.GuestMAC(), mtu: mtu}
	if a.pod.mac == nil {
		a.pod.mac = link.RandomMAC()
	}
	ours := true // marker: a veth that was there before is not ours
	return a.Do("veth", func() error {
		if !ours {
			return nil
		}
		return link.DeleteByName(names.HostVeth)
	}, func() error {
		host, err := link.CreateVeth(ctx, link.Veth{
			HostName: names.HostVeth, PeerName: names.Pod, PeerNetnsFd: int(podNS.Fd()),
			MTU: mtu, PeerMAC: a.pod.mac, MasterIndex: br.Attrs().Index,
		})
		if errors.Is(err, syscall.EEXIST) {
			ours = false
		}
		if err != nil {
			return err
		}
		return a.keepHostLinks(host)
	})
}

// keepHostLinks keeps the bridge, as it is now, and the host end for the
// result: a bridge that was there before may have taken its MAC from its
// new port.
func (a *addition) keepHostLinks(host netlink.Link) error {
	current, err := link.ByName(a.Conf.Bridge)
	if err != nil {
		return err
	}
	a.hostLinks = []netlink.Link{current, host}
	return nil
}

// configurePodInterface waits for the IPAM result, builds the CNI result
// around it, configures addresses and routes on the pod interface, and
// sets up the gateway and masquerade. It returns the result and the pod
// interface's index in it.
func (a *addition) configurePodInterface() (*current.Result, int, error) {
	conf, args, names := a.Conf, a.Args, a.st.Names
	res, ipamErr := a.ipam.wait()
	if ipamErr != nil {
		return nil, -1, ipamErr
	}
	if err := a.Step("ipam"); err != nil {
		return nil, -1, err
	}
	br, host := a.hostLinks[0], a.hostLinks[1]
	res.CNIVersion = current.ImplementedSpecVersion
	res.Interfaces = []*current.Interface{
		{Name: br.Attrs().Name, Mac: br.Attrs().HardwareAddr.String()},
		{Name: host.Attrs().Name, Mac: host.Attrs().HardwareAddr.String()},
		{Name: names.Pod, Sandbox: args.Netns, Mtu: host.Attrs().MTU},
	}
	const podIf = 2
	for _, ip := range res.IPs {
		ip.Interface = current.Int(podIf)
	}
	if len(res.DNS.Nameservers) == 0 && len(conf.DNS.Nameservers) > 0 {
		res.DNS = conf.DNS
	}
	err := a.Do("addresses", nil, func() error {
		return netns.Do(args.Netns, func() error {
			// In the attachment's link group, DEL takes the pod end (and
			// its host peer) in the VM device's batch.
			pod, err := link.ByName(names.Pod)
			if err == nil {
				err = link.SetGroup(pod, a.st.Group)
			}
			if err != nil {
				return err
			}
			return ipam.ConfigureIface(names.Pod, res)
		})
	})
	if err != nil {
		return nil, -1, err
	}
	if conf.IsGateway {
		if err = a.Do("gateway", nil, func() error { return a.addGateways(br, res) }); err != nil {
			return nil, -1, err
		}
	}
	if conf.IPMasq {
		rule := masq.Rule{Network: conf.Name, ContainerID: args.ContainerID, IfName: args.IfName}
		for _, ip := range res.IPs {
			rule.Sources = append(rule.Sources, &ip.Address)
		}
		err = a.Do("masquerade", func() error { return masq.Remove(rule) }, func() error { return masq.Add(rule) })
		if err != nil {
			return nil, -1, err
		}
	}
	return res, podIf, nil
}

// addGateways puts each IP's gateway on the host bridge (shared by every
// pod on it; never removed by DEL) and enables forwarding.
func (a *addition) addGateways(br netlink.Link, res *current.Result) error {
	for _, ip := range res.IPs {
		if ip.Gateway == nil {
			continue
		}
		gw := &net.IPNet{IP: ip.Gateway, Mask: ip.Address.Mask}
		added := false // marker: a gateway address already there is shared
		a.Undo("remove gateway "+gw.String(), func() error {
			if !added {
				return nil
			}
			return link.RemoveAddress(br, gw)
		})
		var err error
		if added, err = link.EnsureAddress(br, gw); err != nil {
			return err
		}
		sysctl := "/proc/sys/net/ipv4/ip_forward"
		if ip.Address.IP.To4() == nil {
			sysctl = "/proc/sys/net/ipv6/conf/all/forwarding"
		}
		if err = os.WriteFile(sysctl, []byte("1"), 0o644); err != nil {
			return fmt.Errorf("enable forwarding: %w", err)
		}
	}
	return nil
}
