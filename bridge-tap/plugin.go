// Package bridgetap is the logic of the vm-bridge CNI plugin: it wires a
// virtio-net backend for a VM-based pod (Kata Containers, Firecracker, Cloud
// Hypervisor, QEMU) to the pod interface.
//
// Standalone (no prevResult) it builds the pod interface itself: a host
// bridge, a veth whose peer is created directly in the pod netns as
// CNI_IFNAME, addresses from the IPAM plugin, optional gateway and
// masquerade. Chained (prevResult given) it takes the CNI_IFNAME made by the
// previous plugin (bridge, ptp, Calico, Cilium...) and only adds the VM
// plumbing. The plumbing, inside the pod netns, is one of:
//
//   - tcfilter: a tap, and ingress qdiscs on the pod interface and the tap
//     whose u32 filters redirect every frame to the other (Kata's default);
//   - bridge: a tap and the pod interface enslaved to a bridge in the netns
//     (the Clear Containers design); the pod interface gets a new MAC and the
//     guest keeps the original one;
//   - macvtap: a macvtap on the pod interface, carrying the guest's MAC;
//     the pod interface gets a new MAC.
//
// The pod interface keeps its addresses and routes (Kata scans them). The
// result, the hint file and the record follow package hint's contract v1 and
// package store's rules: nothing is created before the record, every ADD
// failure rolls back through an undo stack, DEL and GC are idempotent.
package bridgetap

import (
	"github.com/vmcni/vmcni/internal/plugin"
)

// PluginName is the binary name, recorded in hints and records.
const PluginName = "vm-bridge"

// Plugin implements vm-bridge's CNI commands.
type Plugin struct {
	plugin.Harness
}

// New returns the plugin; opts set its harness (stdout, fault injection).
func New(opts ...plugin.Option) *Plugin {
	p := &Plugin{}
	p.Apply(opts)
	return p
}

// Funcs returns the command table for plugin.Main.
func (p *Plugin) Funcs() plugin.Funcs {
	return plugin.Funcs{Add: p.Add, Check: p.Check, Del: p.Del, GC: p.GC, Status: p.Status}
}
