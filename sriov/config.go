package sriov

import (
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/vmcni/vmcni/internal/cnierr"
	"github.com/vmcni/vmcni/internal/plugin"
)

// Modes: what the pod gets.
const (
	// ModeNetdev moves the VF's kernel netdev into the pod netns (containers).
	ModeNetdev = "netdev"
	// ModeVFIO binds the VF to vfio-pci for a VMM to pass through (VMs).
	ModeVFIO = "vfio"
)

// VLAN protocols accepted by vlanProto.
const (
	VlanProto8021Q  = "802.1Q"
	VlanProto8021AD = "802.1ad"
)

// DefaultBindTimeout bounds the wait for a driver (un)bind to show in sysfs.
const DefaultBindTimeout = 10 * time.Second

// NetConf is vm-sriov's network configuration. Key names follow
// k8snetworkplumbingwg/sriov-cni where the two overlap.
type NetConf struct {
	plugin.NetConf

	// Mode (optional) is netdev or vfio. Defaults to netdev.
	Mode string `json:"mode,omitempty"`
	// DeviceID (optional) is the VF's PCI address (0000:3b:02.1). Defaults
	// to runtimeConfig.deviceID, else the pci-address of the device-info
	// file at runtimeConfig.CNIDeviceInfoFile when that file already exists.
	DeviceID string `json:"deviceID,omitempty"`
	// SysfsRoot (optional) is the directory holding sys/ and dev/. Defaults
	// to "/". Tests point it at a simulated tree.
	SysfsRoot string `json:"sysfsRoot,omitempty"`
	// Vlan (optional) is the VF's VLAN, 0-4094; 0 is untagged. Defaults to 0.
	Vlan *int `json:"vlan,omitempty"`
	// VlanQoS (optional) is the 802.1p priority, 0-7. Defaults to 0.
	VlanQoS *int `json:"vlanQoS,omitempty"`
	// VlanProto (optional) is 802.1Q or 802.1ad. Defaults to 802.1Q.
	VlanProto string `json:"vlanProto,omitempty"`
	// Spoofchk (optional) is "on" or "off". Defaults to "on".
	Spoofchk string `json:"spoofchk,omitempty"`
	// Trust (optional) is "on" or "off". Defaults to "off".
	Trust string `json:"trust,omitempty"`
	// LinkState (optional) is auto, enable or disable. Defaults to leaving
	// the VF's link state as it is.
	LinkState string `json:"link_state,omitempty"`
	// MinTxRate (optional) is the guaranteed rate in Mbps. Defaults to
	// leaving the rates as they are; when either rate is set, the other one
	// defaults to 0 (no limit).
	MinTxRate *int `json:"min_tx_rate,omitempty"`
	// MaxTxRate (optional) is the rate limit in Mbps; 0 is unlimited.
	MaxTxRate *int `json:"max_tx_rate,omitempty"`
	// MTU (optional): netdev mode sets it on the VF netdev; vfio mode reports
	// it as the guest's MTU. Defaults to the VF netdev's MTU (netdev), or
	// none (vfio).
	MTU int `json:"mtu,omitempty"`
	// BindTimeout (optional) bounds each wait for the kernel: a driver bind
	// or unbind to show in sysfs, and (DEL after the pod netns is gone) the
	// VF netdev to return to the host netns; a Go duration ("10s").
	// Defaults to 10s.
	BindTimeout string `json:"bindTimeout,omitempty"`

	// bindTimeout is BindTimeout parsed by Validate.
	bindTimeout time.Duration
}

// ParseConfig decodes stdin, applies defaults and merges overrides in the
// order CNI_ARGS < args < runtimeConfig (MAC), config < runtimeConfig
// (deviceID). It has no side effects; call Validate next. The device-info
// file fallback for deviceID is read later, at ADD (see resolveDeviceID).
func ParseConfig(stdin []byte, cniArgs string) (*NetConf, error) {
	conf := &NetConf{Mode: ModeNetdev, SysfsRoot: "/", VlanProto: VlanProto8021Q, Spoofchk: "on", Trust: "off"}
	if err := plugin.Decode(stdin, cniArgs, conf); err != nil {
		return nil, err
	}
	if conf.SysfsRoot == "" {
		conf.SysfsRoot = "/"
	}
	if conf.Vlan == nil {
		conf.Vlan = new(int)
	}
	if conf.VlanQoS == nil {
		conf.VlanQoS = new(int)
	}
	if conf.RuntimeConfig.DeviceID != "" {
		conf.DeviceID = conf.RuntimeConfig.DeviceID
	}
	conf.DeviceID = strings.ToLower(strings.TrimSpace(conf.DeviceID))
	return conf, nil
}

// pciAddressPattern is a full PCI address: domain:bus:device.function.
var pciAddressPattern = regexp.MustCompile(`^[0-9a-f]{4,8}:[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7]$`)

// ValidPCIAddress reports whether addr is a full, lower-case PCI address.
func ValidPCIAddress(addr string) bool { return pciAddressPattern.MatchString(addr) }

func onOff(key, v string) error {
	if v != "on" && v != "off" {
		return cnierr.Config("%s %q is not \"on\" or \"off\"", key, v)
	}
	return nil
}

// Validate checks every field without touching sysfs or netlink. An empty
// deviceID is allowed (ADD may find it in the device-info file).
func (c *NetConf) Validate() error {
	if err := c.NetConf.Validate(); err != nil {
		return err
	}
	if c.Mode != ModeNetdev && c.Mode != ModeVFIO {
		return cnierr.Config("mode %q is not one of %s, %s", c.Mode, ModeNetdev, ModeVFIO)
	}
	if c.DeviceID != "" && !ValidPCIAddress(c.DeviceID) {
		return cnierr.Config("deviceID %q is not a PCI address like 0000:3b:02.1", c.DeviceID)
	}
	if !filepath.IsAbs(c.SysfsRoot) {
		return cnierr.Config("sysfsRoot %q must be an absolute path", c.SysfsRoot)
	}
	if _, err := c.guestMAC(); err != nil {
		return err
	}
	if err := c.validateVF(); err != nil {
		return err
	}
	if c.MTU != 0 && (c.MTU < 68 || c.MTU > 65535) {
		return cnierr.Config("mtu %d is outside 68-65535", c.MTU)
	}
	c.bindTimeout = DefaultBindTimeout
	if c.BindTimeout != "" {
		d, err := time.ParseDuration(c.BindTimeout)
		if err != nil || d <= 0 {
			return cnierr.Config("bindTimeout %q is not a positive duration", c.BindTimeout)
		}
		c.bindTimeout = d
	}
	return nil
}

// validateVF checks the PF-side VF settings.
func (c *NetConf) validateVF() error {
	vlan, qos := *c.Vlan, *c.VlanQoS
	if vlan < 0 || vlan > 4094 {
		return cnierr.Config("vlan %d is outside 0-4094", vlan)
	}
	if qos < 0 || qos > 7 {
		return cnierr.Config("vlanQoS %d is outside 0-7", qos)
	}
	if _, err := vlanProtoNumber(c.VlanProto); err != nil {
		return err
	}
	if vlan == 0 && (qos != 0 || !strings.EqualFold(c.VlanProto, VlanProto8021Q)) {
		return cnierr.Config("vlanQoS and vlanProto %q need a non-zero vlan", c.VlanProto)
	}
	if err := onOff("spoofchk", c.Spoofchk); err != nil {
		return err
	}
	if err := onOff("trust", c.Trust); err != nil {
		return err
	}
	if c.LinkState != "" {
		if _, ok := linkStates[c.LinkState]; !ok {
			return cnierr.Config("link_state %q is not one of auto, enable, disable", c.LinkState)
		}
	}
	minRate, maxRate := c.rates()
	if minRate < 0 || maxRate < 0 {
		return cnierr.Config("min_tx_rate %d and max_tx_rate %d must not be negative", minRate, maxRate)
	}
	if maxRate != 0 && minRate > maxRate {
		return cnierr.Config("min_tx_rate %d is above max_tx_rate %d", minRate, maxRate)
	}
	return nil
}

// vlanProtoNumber maps vlanProto to its ethertype.
func vlanProtoNumber(p string) (uint16, error) {
	switch strings.ToLower(p) {
	case "802.1q":
		return 0x8100, nil
	case "802.1ad":
		return 0x88a8, nil
	}
	return 0, cnierr.Config("vlanProto %q is not %s or %s", p, VlanProto8021Q, VlanProto8021AD)
}

// rates returns the configured min and max tx rates (0 when unset).
func (c *NetConf) rates() (minRate, maxRate int) {
	if c.MinTxRate != nil {
		minRate = *c.MinTxRate
	}
	if c.MaxTxRate != nil {
		maxRate = *c.MaxTxRate
	}
	return minRate, maxRate
}

// guestMAC is the configured MAC (validated by NetConf.Validate), nil when
// none is configured; the zero address is refused (it clears a VF's admin
// MAC).
func (c *NetConf) guestMAC() (net.HardwareAddr, error) {
	mac := c.GuestMAC()
	if mac != nil && mac.String() == noMAC {
		return nil, cnierr.Config("mac %q is the zero address", c.MAC)
	}
	return mac, nil
}
