package vhostuser

import (
	"context"

	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/plugin"
	"github.com/vmcni/vmcni/internal/socketdir"
	"github.com/vmcni/vmcni/pkg/hint"
)

// add is vm-vhostuser's ADD: the record, the attachment's directory,
// IPAM, and (ovs-dpdk) the OVS port; the engine writes the hint and the
// device-info file.
func (p *Plugin) add(ctx context.Context, a *plugin.Addition[*NetConf, state]) (plugin.Outcome, error) {
	conf, args := a.Conf, a.Args
	paths, err := PathsFor(conf.SocketDir, args.ContainerID, args.IfName)
	if err != nil {
		return plugin.Outcome{}, err
	}
	gid, err := socketdir.LookupGroup(conf.Group)
	if err != nil {
		return plugin.Outcome{}, err
	}
	guestMAC := conf.MAC
	if guestMAC == "" {
		guestMAC = link.RandomMAC().String()
	}
	st := &state{Paths: paths, GuestMAC: guestMAC}
	if conf.Backend == BackendOVSDPDK {
		st.Port = portName(args.ContainerID, args.IfName)
	}
	if err = a.Begin(st); err != nil {
		return plugin.Outcome{}, err
	}
	undo, do := socketdir.Step(paths, gid, conf.mode)
	if err = a.Do("directory", undo, do); err != nil {
		return plugin.Outcome{}, err
	}
	res, err := a.Allocate(ctx)
	if err != nil {
		return plugin.Outcome{}, err
	}
	res.CNIVersion = current.ImplementedSpecVersion
	for _, ip := range res.IPs {
		ip.Interface = nil // they belong to the pseudo-interface
	}
	if conf.Backend == BackendOVSDPDK {
		sw := p.newSwitch(conf)
		port := Port{
			Name: st.Port, Socket: paths.Socket, Queues: conf.Queues, MTU: conf.MTU, VLAN: conf.VLAN,
			Network: conf.Name, ContainerID: args.ContainerID, IfName: args.IfName,
		}
		err = a.Do("port", func() error { return sw.DelPort(context.Background(), port.Name) }, func() error {
			return sw.AddPort(ctx, port)
		})
		if err != nil {
			return plugin.Outcome{}, err
		}
	}
	h := &hint.Hint{
		Kind:      hint.KindVhostUser,
		VhostUser: &hint.VhostUser{Socket: paths.Socket, Mode: conf.Mode, Queues: conf.Queues},
		Guest:     hint.GuestFromResult(res, -1, guestMAC, conf.MTU),
	}
	return plugin.Outcome{Result: res, Hint: h, PodIf: -1, DeviceInfo: true}, nil
}
