package bridgetap

import (
	"github.com/vmcni/vmcni/internal/cnierr"
	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/plugin"
)

// Modes: how the VM device is wired to the pod interface.
const (
	ModeTCFilter = "tcfilter" // tap + tc ingress redirect both ways (default)
	ModeBridge   = "bridge"   // tap and pod interface enslaved to a bridge in the netns
	ModeMacvtap  = "macvtap"  // macvtap on the pod interface
)

// DefaultBridge is the host bridge of standalone mode.
const DefaultBridge = "vmcni0"

// NetConf is vm-bridge's network configuration.
type NetConf struct {
	plugin.NetConf

	// Mode (optional) is tcfilter, bridge or macvtap. Defaults to tcfilter.
	Mode string `json:"mode,omitempty"`
	// Bridge (optional, standalone only) is the host bridge the pod's veth
	// is plugged into; created if missing. Defaults to "vmcni0".
	Bridge string `json:"bridge,omitempty"`
	// MTU (optional) of the veth, the VM device and the guest. Defaults to
	// the host bridge's MTU (standalone) or the pod interface's (chained).
	MTU int `json:"mtu,omitempty"`
	// Queues (optional) of the tap or macvtap; > 1 makes a multiqueue tap.
	// Defaults to 1.
	Queues int `json:"queues,omitempty"`
	// TapOwner and TapGroup (optional) are the uid/gid allowed to open the
	// tap. Default: no restriction (any CAP_NET_ADMIN process).
	TapOwner *uint32 `json:"tapOwner,omitempty"`
	TapGroup *uint32 `json:"tapGroup,omitempty"`
	// VnetHdr (optional) opens the tap with IFF_VNET_HDR. Defaults to true.
	VnetHdr *bool `json:"vnetHdr,omitempty"`
	// MacvtapMode (optional) is bridge, vepa, private or passthru.
	// Defaults to passthru (the VM owns the pod interface).
	MacvtapMode string `json:"macvtapMode,omitempty"`
	// IsGateway (optional, standalone) puts the gateway addresses on the
	// host bridge and enables forwarding. Defaults to false.
	IsGateway bool `json:"isGateway,omitempty"`
	// IPMasq (optional, standalone) masquerades traffic from the pod to
	// outside its subnets (nftables). Defaults to false.
	IPMasq bool `json:"ipMasq,omitempty"`
	// DisableBridgeNF (optional, bridge mode) turns br_netfilter off for
	// the in-netns bridge (net.bridge.bridge-nf-call-*=0 in the pod netns)
	// so frames skip iptables. Defaults to true.
	DisableBridgeNF *bool `json:"disableBridgeNF,omitempty"`
}

// ParseConfig decodes stdin, applies defaults and merges the MAC overrides
// in order CNI_ARGS MAC < args.cni.mac < runtimeConfig.mac. It has no side
// effects; call Validate next.
func ParseConfig(stdin []byte, cniArgs string) (*NetConf, error) {
	conf := &NetConf{Mode: ModeTCFilter, Queues: 1, MacvtapMode: "passthru"}
	if err := plugin.Decode(stdin, cniArgs, conf); err != nil {
		return nil, err
	}
	if conf.VnetHdr == nil {
		on := true
		conf.VnetHdr = &on
	}
	if conf.DisableBridgeNF == nil {
		on := true
		conf.DisableBridgeNF = &on
	}
	return conf, nil
}

// Validate checks every field without touching the system.
func (c *NetConf) Validate() error {
	if err := c.NetConf.Validate(); err != nil {
		return err
	}
	switch c.Mode {
	case ModeTCFilter, ModeBridge, ModeMacvtap:
	default:
		return cnierr.Config("mode %q is not one of %s, %s, %s", c.Mode, ModeTCFilter, ModeBridge, ModeMacvtap)
	}
	if c.MTU != 0 && (c.MTU < 68 || c.MTU > 65535) {
		return cnierr.Config("mtu %d is outside 68-65535", c.MTU)
	}
	if c.Queues < 1 || c.Queues > 256 {
		return cnierr.Config("queues %d is outside 1-256", c.Queues)
	}
	if !link.ValidMacvtapMode(c.MacvtapMode) {
		return cnierr.Config("macvtapMode %q is not one of bridge, vepa, private, passthru", c.MacvtapMode)
	}
	if c.Mode == ModeMacvtap && c.Queues > 1 && c.MacvtapMode != "passthru" && c.MacvtapMode != "bridge" {
		return cnierr.Config("queues > 1 needs macvtapMode passthru or bridge")
	}
	if c.Chained() {
		return nil
	}
	if c.Bridge == "" {
		c.Bridge = DefaultBridge
	}
	if err := link.ValidateName(c.Bridge); err != nil {
		return cnierr.Config("bridge: %w", err)
	}
	return nil
}

// ValidateForAdd is Validate plus what only ADD requires (admit).
func (c *NetConf) ValidateForAdd() error {
	if err := c.Validate(); err != nil {
		return err
	}
	return admit(c, nil)
}

// standaloneConfig reports whether the config describes a standalone
// attachment: no prevResult and an IPAM section.
func (c *NetConf) standaloneConfig() bool {
	return !c.Chained() && c.IPAM.Type != ""
}
