// Package vhostuser is the logic of the vm-vhostuser CNI plugin: it
// provisions a vhost-user socket for a VM (the VM's virtio queues served from
// shared memory by a userspace switch: OVS-DPDK, VPP, a DPDK application)
// and, with the ovs-dpdk backend, the switch port.
//
// Contract:
//   - each attachment gets <socketDir>/<containerID>-<ifname>/ (mode
//     socketDirMode, default 0750, group-owned by group) and the socket path
//     <dir>/sock, checked against sun_path's 107 usable bytes and against
//     escaping socketDir before anything is created;
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
	"github.com/vmcni/vmcni/internal/plugin"
)

// PluginName is the binary name, recorded in hints and records.
const PluginName = "vm-vhostuser"

// Plugin implements vm-vhostuser's CNI commands.
type Plugin struct {
	plugin.Harness
	// newSwitch builds the backend for a config (tests may replace it).
	newSwitch func(*NetConf) Switch
}

// New returns the plugin; opts set its harness (stdout, fault injection).
func New(opts ...plugin.Option) *Plugin {
	p := &Plugin{newSwitch: switchFor}
	p.Apply(opts)
	return p
}

// WithSwitch replaces the backend factory (tests) and returns p.
func (p *Plugin) WithSwitch(fn func(*NetConf) Switch) *Plugin {
	p.newSwitch = fn
	return p
}

// Funcs returns the command table for plugin.Main.
func (p *Plugin) Funcs() plugin.Funcs {
	return plugin.Funcs{Add: p.Add, Check: p.Check, Del: p.Del, GC: p.GC, Status: p.Status}
}
