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
	"context"
	"os"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/vmcni/vmcni/internal/cnierr"
	"github.com/vmcni/vmcni/internal/plugin"
)

// PluginName is the binary name, recorded in hints and records.
const PluginName = "vm-bridge"

// Plugin runs vm-bridge's CNI commands on the plugin engine.
type Plugin struct {
	*plugin.Engine[*NetConf, state]
}

// New returns the plugin; opts are the engine's test seams (stdout, fault
// injection).
func New(opts ...plugin.Option) *Plugin {
	return &Plugin{plugin.New(plugin.Spec[*NetConf, state]{
		Name:     PluginName,
		Parse:    ParseConfig,
		Admit:    admit,
		Add:      add,
		Assume:   assume,
		Teardown: teardown,
		Check:    check,
		Status:   status,
		IPAM:     ipamOf,
	}, opts...)}
}

// ipamOf is the attachment's IPAM plugin: the config's in standalone mode,
// none chained (the previous plugin owns the addresses).
func ipamOf(conf *NetConf, st *state) string {
	if conf.Chained() || (st != nil && st.Chained) {
		return ""
	}
	return conf.IPAM.Type
}

// admit is what only ADD requires: standalone mode needs an IPAM plugin.
// (DEL, GC and the second DEL libcni sends without prevResult must work
// from a config that lacks both.)
func admit(conf *NetConf, _ *skel.CmdArgs) error {
	if !conf.Chained() && conf.IPAM.Type == "" {
		return cnierr.Config("standalone mode needs ipam (or run chained after a plugin that creates the interface)")
	}
	return nil
}

// status is STATUS's own check: tap devices can be made (/dev/net/tun
// opens) unless the mode is macvtap.
func status(_ context.Context, conf *NetConf) error {
	if conf.Mode == ModeMacvtap {
		return nil
	}
	f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0)
	if err != nil {
		return cnierr.Unavailable("tap devices unavailable: %w", err)
	}
	return f.Close()
}
