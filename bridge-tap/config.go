package bridgetap

import (
	"encoding/json"
	"net"
	"path/filepath"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/vmcni/vmcni/internal/cnierr"
	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/logging"
	"github.com/vmcni/vmcni/internal/plugin"
	"github.com/vmcni/vmcni/pkg/hint"
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
	types.PluginConf
	logging.Config

	// Mode (optional) is tcfilter, bridge or macvtap. Defaults to tcfilter.
	Mode string `json:"mode,omitempty"`
	// Bridge (optional, standalone only) is the host bridge the pod's veth
	// is plugged into; created if missing. Defaults to "vmcni0".
	Bridge string `json:"bridge,omitempty"`
	// MTU (optional) of the veth, the VM device and the guest. Defaults to
	// the host bridge's MTU (standalone) or the pod interface's (chained).
	MTU int `json:"mtu,omitempty"`
	// MAC (optional) the guest must use. Defaults to the pod interface's MAC.
	MAC string `json:"mac,omitempty"`
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
	// StateDir (optional) holds attachment records and hint files. Defaults
	// to /var/lib/cni/vmcni.
	StateDir string `json:"stateDir,omitempty"`
	// DisableBridgeNF (optional, bridge mode) turns br_netfilter off for
	// the in-netns bridge (net.bridge.bridge-nf-call-*=0 in the pod netns)
	// so frames skip iptables. Defaults to true.
	DisableBridgeNF *bool `json:"disableBridgeNF,omitempty"`

	// Args is the CNI "args" convention: args.cni.mac.
	Args plugin.CNIArgs `json:"args"`
	// RuntimeConfig carries capabilities: mac, CNIDeviceInfoFile.
	RuntimeConfig struct {
		MAC            string `json:"mac,omitempty"`
		DeviceInfoFile string `json:"CNIDeviceInfoFile,omitempty"`
	} `json:"runtimeConfig"`

	// Raw is the config as received, prevResult removed (kept for GC).
	Raw []byte `json:"-"`
	// Prev is the parsed prevResult (chained mode), nil when standalone.
	Prev *current.Result `json:"-"`
}

// Chained reports whether the plugin runs after another that created the
// pod interface (a prevResult was given).
func (c *NetConf) Chained() bool { return c.Prev != nil }

// ParseConfig decodes stdin, applies defaults and merges the MAC overrides
// in order CNI_ARGS MAC < args.cni.mac < runtimeConfig.mac. It has no side
// effects; call Validate next.
func ParseConfig(stdin []byte, cniArgs string) (*NetConf, error) {
	conf := &NetConf{Mode: ModeTCFilter, Queues: 1, MacvtapMode: "passthru"}
	if err := json.Unmarshal(stdin, conf); err != nil {
		return nil, cnierr.Decode("parse network config: %w", err)
	}
	if conf.StateDir == "" {
		conf.StateDir = hint.DefaultStateDir
	}
	if conf.VnetHdr == nil {
		on := true
		conf.VnetHdr = &on
	}
	if conf.DisableBridgeNF == nil {
		on := true
		conf.DisableBridgeNF = &on
	}
	mac, err := plugin.ResolveMAC(conf.MAC, cniArgs, conf.Args, conf.RuntimeConfig.MAC)
	if err != nil {
		return nil, err
	}
	conf.MAC = mac
	if conf.RawPrevResult != nil {
		if err := version.ParsePrevResult(&conf.PluginConf); err != nil {
			return nil, cnierr.Decode("parse prevResult: %w", err)
		}
		prev, err := current.NewResultFromResult(conf.PrevResult)
		if err != nil {
			return nil, cnierr.Decode("convert prevResult: %w", err)
		}
		conf.Prev = prev
	}
	raw := map[string]any{}
	if err := json.Unmarshal(stdin, &raw); err != nil {
		return nil, cnierr.Decode("parse network config: %w", err)
	}
	delete(raw, "prevResult")
	conf.Raw, _ = json.Marshal(raw)
	return conf, nil
}

// Validate checks every field without touching the system.
func (c *NetConf) Validate() error {
	if c.Name == "" {
		return cnierr.Config("name is required")
	}
	switch c.Mode {
	case ModeTCFilter, ModeBridge, ModeMacvtap:
	default:
		return cnierr.Config("mode %q is not one of %s, %s, %s", c.Mode, ModeTCFilter, ModeBridge, ModeMacvtap)
	}
	if c.MAC != "" {
		mac, err := net.ParseMAC(c.MAC)
		if err != nil || len(mac) != 6 {
			return cnierr.Config("mac %q is not an Ethernet MAC address", c.MAC)
		}
		if mac[0]&1 == 1 {
			return cnierr.Config("mac %q is a multicast address", c.MAC)
		}
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
	if !filepath.IsAbs(c.StateDir) {
		return cnierr.Config("stateDir %q must be an absolute path", c.StateDir)
	}
	if err := c.Config.Validate(); err != nil {
		return cnierr.Config("%w", err)
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

// ValidateForAdd is Validate plus what only ADD requires: standalone mode
// needs an IPAM plugin. (DEL, GC and the second DEL libcni sends without
// prevResult must work from a config that lacks both.)
func (c *NetConf) ValidateForAdd() error {
	if err := c.Validate(); err != nil {
		return err
	}
	if !c.Chained() && c.IPAM.Type == "" {
		return cnierr.Config("standalone mode needs ipam (or run chained after a plugin that creates the interface)")
	}
	return nil
}

// standaloneConfig reports whether the config describes a standalone
// attachment: no prevResult and an IPAM section.
func (c *NetConf) standaloneConfig() bool {
	return !c.Chained() && c.IPAM.Type != ""
}
