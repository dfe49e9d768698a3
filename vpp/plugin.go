// Package vpp is the logic of the vm-vpp CNI plugin: it gives a VM-based pod
// a NIC on FD.io VPP, through VPP's binary API (govpp, binapi of VPP 25.02).
//
// ADD creates, in VPP, one interface per attachment:
//
//   - vhost-user (config interface "vhost-user"): create_vhost_user_if_v2 on
//     <socketDir>/<containerID>/<ifname>/vhu.sock; VPP is the socket server
//     when the VMM's role (config "mode") is client, and the client when it
//     is server (the default: VPP reconnects after a VMM or VPP restart);
//   - memif (config interface "memif"): the socket file
//     <socketDir>/<containerID>/<ifname>/memif.sock registered with
//     memif_socket_filename_add_del_v2, then memif_create_v2; VPP is the
//     master when the application's role (memif.role) is client.
//
// and connects it to the network: l2 puts it in bridge domain bridgeDomain
// (created if missing); in l3 VPP is the guest's router: the network's
// gateway loopback (tag GatewayTag(network), created by the first ADD that
// needs it, under a per-network lock in stateDir, and kept) holds, for each
// IPAM address, the address's gateway with the address's prefix length; the
// interface is unnumbered to it and gets a host route (/32, /128, table 0)
// to each guest address, so any number of attachments share a subnet. The
// interface gets the MTU, optionally VPP-side MAC (vppMac), is set admin up,
// and carries the tag Tag(network, containerID, ifname).
//
// Result contract (package hint, v1): no interface exists in the pod netns,
// so the result has the IPAM addresses (if any) and one pseudo-interface
// (name = socket file name, sandbox = container ID, mac = guest MAC, mtu,
// CNI 1.1 socketPath); every IP points at it. The hint file has kind
// vhost-user (socket, the VMM's mode, queues) or memif (socket, the
// application's role, mode, id, queues, ring size) and the guest section
// (MAC, MTU, IPs, routes, DNS). With runtimeConfig.CNIDeviceInfoFile, the
// NPWG device-info file of type vhost-user or memif is written.
//
// Connection rule: the API socket is dialled with the configured timeout
// and the CRCs of every message the command uses are checked before any
// side effect. ADD fails with code 11 (try again) when the socket exists
// but VPP refuses, drops or does not answer the connection (VPP starting or
// restarting), and with code 50 when the socket does not exist, VPP is
// incompatible or unreachable for another reason. STATUS reports every
// such failure as code 50. DEL and GC treat a missing socket or a refused
// connection as "VPP is not running, and its objects died with it" and
// clean up local state; other connection failures fail them with code 11
// so the runtime retries and nothing leaks.
//
// Every ADD failure rolls back, in reverse, what the ADD created: VPP
// objects (host routes, the unnumbered setting, interface, memif socket
// registration; the bridge domain only if this ADD created it and it has
// no other member; the gateway loopback, or a gateway address this ADD
// added to it, only while no interface is unnumbered to it), the socket
// directory, the IPAM lease, the hint and device-info files, the record.
// Interface attributes (tag, MTU, L2 membership, flags) go with the
// interface. DEL and GC are idempotent and best effort; in l3 they delete
// the interface's host routes (to the guest addresses recorded, or found by
// dumping routes when there is no record) and its unnumbered setting before
// the interface, and never the gateway loopback.
package vpp

import (
	"context"
	"log/slog"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/vmcni/vmcni/internal/plugin"
	"github.com/vmcni/vmcni/internal/socketdir"
	"github.com/vmcni/vmcni/vpp/vppapi"
)

// PluginName is the binary name, recorded in hints and records.
const PluginName = "vm-vpp"

// Plugin runs vm-vpp's CNI commands on the plugin engine.
type Plugin struct {
	*plugin.Engine[*NetConf, state]
	// connect opens VPP API connections; vppapi.SocketConnector by default.
	connect vppapi.Connector
}

// New returns the plugin; opts are the engine's test seams (stdout, fault
// injection).
func New(opts ...plugin.Option) *Plugin {
	p := &Plugin{connect: vppapi.SocketConnector}
	p.Engine = plugin.New(plugin.Spec[*NetConf, state]{
		Name:     PluginName,
		Parse:    ParseConfig,
		Admit:    admit,
		Connect:  p.connectFor,
		Add:      p.add,
		Assume:   assume,
		Teardown: teardown,
		Check:    check,
		Status:   p.status,
		Sweep:    sweep,
		IPAM:     ipamOf,
	}, opts...)
	return p
}

// WithConnector replaces how the plugin reaches VPP (tests: govpp's mock
// adapter behind a real core connection) and returns p.
func (p *Plugin) WithConnector(c vppapi.Connector) *Plugin {
	p.connect = c
	return p
}

// admit checks what ADD needs before any side effect: socket paths
// (sun_path, socketDir), the group, and l3's IPAM.
func admit(conf *NetConf, args *skel.CmdArgs) error {
	if err := conf.addOnly(); err != nil {
		return err
	}
	if _, err := socketPaths(conf, args.ContainerID, args.IfName); err != nil {
		return err
	}
	_, err := socketdir.LookupGroup(conf.Group)
	return err
}

// connectFor opens the command's VPP connection, checking the CRCs of the
// messages conf's commands use. ADD and CHECK fail when VPP is not there
// (addError); DEL and GC get nil when VPP is not running: its objects died
// with it, and only local state is cleaned.
func (p *Plugin) connectFor(ctx context.Context, conf *NetConf, cmd plugin.Command, log *slog.Logger) (plugin.Conn, error) {
	client, err := p.dial(ctx, conf)
	if err == nil {
		return client, nil
	}
	if (cmd == plugin.CmdDel || cmd == plugin.CmdGC) && vppGone(err) {
		log.Warn("VPP is not running: its objects are gone, cleaning local state only", "err", err)
		return nil, nil
	}
	return nil, addError(err)
}

// clientOf is the command's VPP client, nil when VPP is not running.
func clientOf(c plugin.Conn) *vppapi.Client {
	client, _ := c.(*vppapi.Client)
	return client
}

// status is STATUS's own check: VPP answers on its API socket within the
// timeout with every binapi message the config needs (code 50 if not).
func (p *Plugin) status(ctx context.Context, conf *NetConf) error {
	client, err := p.dial(ctx, conf)
	if err != nil {
		return statusError(err)
	}
	return client.Close()
}

// ipamOf is the attachment's IPAM plugin: the one recorded, else the
// config's.
func ipamOf(conf *NetConf, st *state) string {
	if st != nil {
		return st.IPAM
	}
	return conf.IPAM.Type
}
