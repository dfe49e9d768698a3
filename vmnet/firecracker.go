package vmnet

import (
	"encoding/json"
	"fmt"

	"github.com/vmcni/vmcni/pkg/hint"
)

// firecrackerNIC is one entry of Firecracker's network-interfaces
// configuration (PUT /network-interfaces/{iface_id}, or the
// "network-interfaces" array of --config-file).
type firecrackerNIC struct {
	IfaceID     string `json:"iface_id"`
	HostDevName string `json:"host_dev_name"`
	GuestMAC    string `json:"guest_mac"`
}

// FirecrackerNetworkInterfaces returns the "network-interfaces" array of a
// Firecracker configuration, indented JSON: NIC i is iface_id net<i>.
//
// Firecracker opens taps by name in its own netns and supports neither
// multiqueue nor any other device kind: every NIC must be a single-queue
// tap, and all of them must live in the same netns, the one Firecracker
// (or its jailer, --netns) runs in. Anything else is an error wrapping
// ErrUnsupported. Firecracker cannot set the guest MTU; configure it in the
// guest (GuestCmdline, CloudInitNetworkConfig).
func FirecrackerNetworkInterfaces(p *Plan) ([]byte, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	out := []firecrackerNIC{}
	for i := range p.NICs {
		n := &p.NICs[i]
		switch {
		case n.Kind != hint.KindTap:
			return nil, fmt.Errorf("%s: Firecracker attaches only taps, not %s: %w", n.ref(i), n.Kind, ErrUnsupported)
		case n.Queues > 1:
			return nil, fmt.Errorf("%s: Firecracker has no multiqueue taps (%d queues): %w", n.ref(i), n.Queues, ErrUnsupported)
		case n.Netns != p.NICs[0].Netns:
			return nil, fmt.Errorf("%s: netns %q differs from NIC 0's %q, Firecracker runs in one: %w",
				n.ref(i), n.Netns, p.NICs[0].Netns, ErrUnsupported)
		}
		out = append(out, firecrackerNIC{IfaceID: fmt.Sprintf("net%d", i), HostDevName: n.Tap.Name, GuestMAC: n.MAC})
	}
	data, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode Firecracker network interfaces: %w", err)
	}
	return append(data, '\n'), nil
}
