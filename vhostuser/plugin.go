// Package vhostuser is the logic of the vm-vhostuser CNI plugin: it
// provisions a vhost-user socket for a VM (the VM's virtio queues served from
// shared memory by a userspace switch: OVS-DPDK, VPP, a DPDK application)
// and, with the ovs-dpdk backend, the switch port.
//
// Contract:
//   - each attachment gets <socketDir>/<containerID>/<ifname>/ (mode
//     socketDirMode, default 0750, never other-writable, group-owned by
//     group) and the socket path <dir>/sock, checked against sun_path's 107
//     usable bytes and against escaping socketDir before anything is
//     created (package socketdir, shared with vm-vpp);
//   - ovs-dpdk: a dpdkvhostuserclient port (the VMM is the socket server,
//     OVS connects and reconnects) on bridge, named "vhu" + a hash of
//     (containerID, ifname), tagged with external_ids vmcni-network,
//     vmcni-container-id and vmcni-ifname; optional access VLAN tag,
//     n_rxq = queues and mtu_request;
//   - none: nothing but the directory; the backend (testpmd, VPP, ...)
//     creates or connects to the socket;
//   - the result has no netns interface: the pseudo-interface (sandbox =
//     container ID, socketPath, guest MAC, MTU) carries the IPAM addresses;
//     the hint file (kind vhost-user) and, when Multus passes
//     CNIDeviceInfoFile, an NPWG device-info file of type vhost-user follow
//     package hint;
//   - records in the state dir make DEL (idempotent) and GC (ports tagged
//     with this network and records not in cni.dev/valid-attachments) undo
//     everything, including after a crashed ADD.
package vhostuser

import (
	"context"
	"errors"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/vmcni/vmcni/internal/cnierr"
	"github.com/vmcni/vmcni/internal/plugin"
	"github.com/vmcni/vmcni/internal/socketdir"
)

// PluginName is the binary name, recorded in hints and records.
const PluginName = "vm-vhostuser"

// Plugin runs vm-vhostuser's CNI commands on the plugin engine.
type Plugin struct {
	*plugin.Engine[*NetConf, state]
	// newSwitch builds the backend for a config (tests may replace it).
	newSwitch func(*NetConf) Switch
}

// New returns the plugin; opts are the engine's test seams (stdout, fault
// injection).
func New(opts ...plugin.Option) *Plugin {
	p := &Plugin{newSwitch: switchFor}
	p.Engine = plugin.New(plugin.Spec[*NetConf, state]{
		Name:     PluginName,
		Parse:    ParseConfig,
		Admit:    admit,
		Add:      p.add,
		Assume:   assume,
		Teardown: p.teardown,
		Check:    p.check,
		Status:   p.status,
		Sweep:    p.sweep,
	}, opts...)
	return p
}

// WithSwitch replaces the backend factory (tests) and returns p.
func (p *Plugin) WithSwitch(fn func(*NetConf) Switch) *Plugin {
	p.newSwitch = fn
	return p
}

// admit is what only ADD requires: a socket path that fits and a group
// that resolves (DEL must work when the group is gone).
func admit(conf *NetConf, args *skel.CmdArgs) error {
	if _, err := PathsFor(conf.SocketDir, args.ContainerID, args.IfName); err != nil {
		return err
	}
	_, err := socketdir.LookupGroup(conf.Group)
	return err
}

// status is STATUS's own check: code 50 when the backend is unreachable
// (OVS down, bridge missing) or the socket directory cannot be written.
func (p *Plugin) status(ctx context.Context, conf *NetConf) error {
	if err := p.newSwitch(conf).Ready(ctx); err != nil {
		return cnierr.Unavailable("%w", err)
	}
	return plugin.WritableDir("socketDir", conf.SocketDir)
}

// assume is what DEL removes without a record: the directory and port the
// names derived from (containerID, ifname) point at.
func assume(conf *NetConf, args *skel.CmdArgs) (*state, error) {
	paths, err := PathsFor(conf.SocketDir, args.ContainerID, args.IfName)
	if err != nil {
		return nil, err
	}
	s := &state{Paths: paths}
	if conf.Backend == BackendOVSDPDK {
		s.Port = portName(args.ContainerID, args.IfName)
	}
	return s, nil
}

// teardown removes the OVS port and the socket directory.
func (p *Plugin) teardown(ctx context.Context, t *plugin.Teardown[*NetConf, state]) {
	if t.State.Port != "" {
		t.Step(p.newSwitch(t.Conf).DelPort(ctx, t.State.Port))
	}
	if t.State.Dir != "" {
		t.Step(socketdir.Remove(t.State.Paths))
	}
}

// sweep deletes the OVS ports tagged with this network whose attachment
// is not valid (ports left by a crash before the record was updated, or by
// a lost state dir).
func (p *Plugin) sweep(ctx context.Context, g *plugin.Collection[*NetConf]) error {
	sw := p.newSwitch(g.Conf)
	ports, err := sw.Ports(ctx, g.Conf.Name)
	errs := []error{err}
	for _, port := range ports {
		if !g.Valid[types.GCAttachment{ContainerID: port.ContainerID, IfName: port.IfName}] {
			g.Log.Info("deleting stale OVS port", "port", port.Name)
			errs = append(errs, sw.DelPort(ctx, port.Name))
		}
	}
	return errors.Join(errs...)
}
