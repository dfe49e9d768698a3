package bridgetap

import (
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
func (a *addition) createPodInterface() error {
	conf, args, names := a.conf, a.args, a.st.Names
	br, created, err := link.EnsureBridge(conf.Bridge, conf.MTU)
	if err != nil {
		return err
	}
	if created {
		a.undo.Push("delete bridge", func() error { return deleteBridgeIfUnused(conf.Bridge) })
	}
	if err = a.step("bridge"); err != nil {
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
	var podMAC net.HardwareAddr
	if conf.MAC != "" {
		podMAC, _ = net.ParseMAC(conf.MAC)
	}
	host, err := link.CreateVeth(link.Veth{
		HostName: names.HostVeth, PeerName: names.Pod, PeerNetnsFd: int(podNS.Fd()),
		MTU: mtu, PeerMAC: podMAC,
	})
	if err == nil || !errors.Is(err, syscall.EEXIST) { // EEXIST: not ours
		a.undo.Push("delete veth", func() error { return link.DeleteByName(names.HostVeth) })
	}
	if err != nil {
		return err
	}
	if err = link.SetMaster(host, br); err != nil {
		return err
	}
	// re-read: a new bridge takes its MAC from its first port
	current, err := link.ByName(conf.Bridge)
	if err != nil {
		return err
	}
	a.hostLinks = []netlink.Link{current, host}
	// The veth is ours: put it in the attachment's link group so DEL takes
	// it (and its host peer) in the same batch as the VM device.
	err = netns.Do(args.Netns, func() error {
		pod, lerr := link.ByName(names.Pod)
		if lerr != nil {
			return lerr
		}
		return link.SetGroup(pod, a.st.Group)
	})
	if err != nil {
		return err
	}
	return a.step("veth")
}

// configurePodInterface waits for the IPAM result, builds the CNI result
// around it, configures addresses and routes on the pod interface, and
// sets up the gateway and masquerade. It returns the result and the pod
// interface's index in it.
func (a *addition) configurePodInterface() (*current.Result, int, error) {
	conf, args, names := a.conf, a.args, a.st.Names
	<-a.ipam.done
	if a.ipam.err != nil {
		return nil, -1, a.ipam.err
	}
	res := a.ipam.res
	if err := a.step("ipam"); err != nil {
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
	err := netns.Do(args.Netns, func() error { return ipam.ConfigureIface(names.Pod, res) })
	if err != nil {
		return nil, -1, err
	}
	if err = a.step("addresses"); err != nil {
		return nil, -1, err
	}
	if conf.IsGateway {
		if err = a.addGateways(br, res); err != nil {
			return nil, -1, err
		}
		if err = a.step("gateway"); err != nil {
			return nil, -1, err
		}
	}
	if conf.IPMasq {
		rule := masq.Rule{Network: conf.Name, ContainerID: args.ContainerID, IfName: args.IfName}
		for _, ip := range res.IPs {
			rule.Sources = append(rule.Sources, &ip.Address)
		}
		if err = masq.Add(rule); err != nil {
			return nil, -1, err
		}
		a.undo.Push("remove masquerade", func() error { return masq.Remove(rule) })
		if err = a.step("masquerade"); err != nil {
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
		added, err := link.EnsureAddress(br, gw)
		if err != nil {
			return err
		}
		if added {
			a.undo.Push("remove gateway "+gw.String(), func() error { return link.RemoveAddress(br, gw) })
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

// deleteBridgeIfUnused removes a host bridge vm-bridge created, unless a
// concurrent ADD already plugged a port into it.
func deleteBridgeIfUnused(name string) error {
	br, err := link.ByName(name)
	if link.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	ports, err := link.Ports(br)
	if err != nil || len(ports) > 0 {
		return err
	}
	return link.DeleteByName(name)
}
