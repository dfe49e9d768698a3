package vpp

import (
	"context"
	"log/slog"
	"net"

	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/vmcni/vmcni/internal/cnierr"
	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/plugin"
	"github.com/vmcni/vmcni/internal/socketdir"
	"github.com/vmcni/vmcni/pkg/hint"
	"github.com/vmcni/vmcni/vpp/vppapi"
)

// addition is one ADD in progress.
type addition struct {
	*plugin.Addition[*NetConf, state]
	conf  *NetConf
	log   *slog.Logger
	st    *state
	paths socketdir.Paths
	vpp   *vppapi.Client
	// index is the sw_if_index of the interface this ADD created.
	index uint32
}

// add is vm-vpp's ADD: the record (everything DEL needs is known before
// the first side effect), IPAM, in l3 the guest addresses recorded, the
// socket directory, then VPP's objects (see plumbVPP); the engine writes
// the device-info file and the hint.
func (p *Plugin) add(ctx context.Context, pa *plugin.Addition[*NetConf, state]) (plugin.Outcome, error) {
	conf, args := pa.Conf, pa.Args
	pth, err := socketPaths(conf, args.ContainerID, args.IfName)
	if err != nil {
		return plugin.Outcome{}, err
	}
	gid, err := socketdir.LookupGroup(conf.Group)
	if err != nil {
		return plugin.Outcome{}, err
	}
	a := &addition{Addition: pa, conf: conf, log: pa.Log, paths: pth, vpp: clientOf(pa.Conn)}
	a.st = &state{
		Interface: conf.Interface, Network: conf.Network, Tag: Tag(conf.Name, args.ContainerID, args.IfName),
		SocketDir: pth.Dir, Socket: pth.Socket, GuestMAC: guestMAC(conf).String(), IPAM: conf.IPAM.Type,
	}
	if conf.Network == NetworkL2 {
		a.st.BridgeDomain = conf.BridgeDomain
	}
	if err = a.Begin(a.st); err != nil {
		return plugin.Outcome{}, err
	}
	res, err := a.Allocate(ctx)
	if err != nil {
		return plugin.Outcome{}, err
	}
	l3, err := a.l3Addresses(res)
	if err != nil {
		return plugin.Outcome{}, err
	}
	if conf.Network == NetworkL3 {
		// before any VPP object: DEL finds the host routes through these
		for _, g := range l3.guests {
			a.st.GuestIPs = append(a.st.GuestIPs, g.String())
		}
		if err = a.Save(); err != nil {
			return plugin.Outcome{}, err
		}
	}
	undo, do := socketdir.Step(pth, gid, conf.dirMode)
	if err = a.Do("socket-dir", undo, do); err != nil {
		return plugin.Outcome{}, err
	}
	if err = a.plumbVPP(l3); err != nil {
		return plugin.Outcome{}, err
	}
	a.log.Info("VPP interface ready", "interface", conf.Interface, "network", conf.Network, "sw_if_index", a.index)
	h := a.hint(hint.GuestFromResult(res, -1, a.st.GuestMAC, conf.MTU))
	return plugin.Outcome{Result: res, Hint: h, PodIf: -1, DeviceInfo: true}, nil
}

// l3Addresses are, in l3, what VPP gets from the IPAM result.
type l3Addresses struct {
	// gateways are the gateway loopback's addresses: each address's
	// gateway with the address's prefix length.
	gateways []*net.IPNet
	// guests are the guest's addresses, each routed to its interface.
	guests []net.IP
}

// l3Addresses checks that every IPAM address has a gateway in its subnet
// and returns what VPP gets (nothing in l2).
func (a *addition) l3Addresses(res *current.Result) (l3Addresses, error) {
	var out l3Addresses
	if a.conf.Network != NetworkL3 {
		return out, nil
	}
	for _, ip := range res.IPs {
		if ip.Gateway == nil {
			return out, cnierr.Config("network l3: IPAM address %s has no gateway for VPP", ip.Address.String())
		}
		if !ip.Address.Contains(ip.Gateway) || ip.Gateway.Equal(ip.Address.IP) {
			return out, cnierr.Config("network l3: gateway %s must be another address of %s", ip.Gateway, ip.Address.String())
		}
		out.gateways = append(out.gateways, &net.IPNet{IP: ip.Gateway, Mask: ip.Address.Mask})
		out.guests = append(out.guests, ip.Address.IP)
	}
	return out, nil
}

// hint is the attachment's hint file content.
func (a *addition) hint(g hint.Guest) *hint.Hint {
	h := &hint.Hint{Guest: g}
	if a.conf.Interface == InterfaceMemif {
		m := a.conf.Memif
		h.Kind = hint.KindMemif
		h.Memif = &hint.Memif{Socket: a.paths.Socket, Role: m.Role, Mode: m.Mode, ID: m.ID, Queues: a.conf.Queues, RingSize: m.RingSize}
	} else {
		h.Kind = hint.KindVhostUser
		h.VhostUser = &hint.VhostUser{Socket: a.paths.Socket, Mode: a.conf.Mode, Queues: a.conf.Queues}
	}
	return h
}

// guestMAC is the configured MAC, else a random locally administered
// unicast one, chosen once per ADD.
func guestMAC(conf *NetConf) net.HardwareAddr {
	if mac := conf.GuestMAC(); mac != nil {
		return mac
	}
	return link.RandomMAC()
}
