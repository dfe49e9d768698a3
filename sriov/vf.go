package sriov

import (
	"errors"
	"fmt"
	"net"
)

// VFState is the PF-side configuration of one VF, as `ip link show <pf>`
// prints it per VF. It is what ADD saves before its first change and DEL
// restores.
type VFState struct {
	// MAC is the VF's administrative MAC ("00:00:00:00:00:00" when unset).
	MAC  string `json:"mac"`
	Vlan int    `json:"vlan"`
	QoS  int    `json:"qos"`
	// VlanProto is the VLAN ethertype (0x8100, 0x88a8); 0 reads as 0x8100.
	VlanProto uint16 `json:"vlanProto"`
	Spoofchk  bool   `json:"spoofchk"`
	Trust     bool   `json:"trust"`
	// LinkState is 0 auto, 1 enable, 2 disable (IFLA_VF_LINK_STATE_*).
	LinkState uint32 `json:"linkState"`
	// MinTxRate and MaxTxRate are in Mbps; 0 is no guarantee / no limit.
	MinTxRate int `json:"minTxRate"`
	MaxTxRate int `json:"maxTxRate"`
}

// noMAC is the PF-side MAC of a VF without an administrative MAC.
const noMAC = "00:00:00:00:00:00"

// VFController is every PF-side netlink call vm-sriov makes: reading and
// changing one VF's settings through its PF netdev (in the host netns).
type VFController interface {
	// VF returns the current settings of VF vf of the PF netdev pf.
	VF(pf string, vf int) (VFState, error)
	// SetMAC sets the VF's administrative MAC (ip link set PF vf N mac M).
	SetMAC(pf string, vf int, mac net.HardwareAddr) error
	// SetVlan sets VLAN, QoS and protocol (ip link set PF vf N vlan V qos Q proto P).
	SetVlan(pf string, vf, vlan, qos int, proto uint16) error
	// SetSpoofchk turns MAC anti-spoofing on or off.
	SetSpoofchk(pf string, vf int, on bool) error
	// SetTrust turns trusted mode on or off.
	SetTrust(pf string, vf int, on bool) error
	// SetLinkState sets the VF link state (0 auto, 1 enable, 2 disable).
	SetLinkState(pf string, vf int, state uint32) error
	// SetRate sets the min and max tx rates in Mbps.
	SetRate(pf string, vf, minRate, maxRate int) error
}

// linkStates maps link_state values to IFLA_VF_LINK_STATE_*.
var linkStates = map[string]uint32{"auto": 0, "enable": 1, "disable": 2}

func normProto(p uint16) uint16 {
	if p == 0 {
		return 0x8100
	}
	return p
}

func sameMAC(a, b string) bool {
	ma, errA := net.ParseMAC(a)
	mb, errB := net.ParseMAC(b)
	return errA == nil && errB == nil && ma.String() == mb.String()
}

// knob is one settable part of VFState: a step of ADD and of restoring,
// set by the config keys named in keys.
type knob struct {
	step  string
	keys  string
	equal func(a, b VFState) bool
	set   func(c VFController, pf string, vf int, s VFState) error
}

var knobs = []knob{
	{"vf-mac", "mac",
		func(a, b VFState) bool { return sameMAC(a.MAC, b.MAC) },
		func(c VFController, pf string, vf int, s VFState) error {
			mac, err := net.ParseMAC(s.MAC)
			if err != nil {
				return fmt.Errorf("VF mac %q: %w", s.MAC, err)
			}
			return c.SetMAC(pf, vf, mac)
		}},
	{"vf-vlan", "vlan, vlanQoS, vlanProto",
		func(a, b VFState) bool {
			return a.Vlan == b.Vlan && a.QoS == b.QoS && (a.Vlan == 0 || normProto(a.VlanProto) == normProto(b.VlanProto))
		},
		func(c VFController, pf string, vf int, s VFState) error {
			return c.SetVlan(pf, vf, s.Vlan, s.QoS, normProto(s.VlanProto))
		}},
	{"vf-spoofchk", "spoofchk",
		func(a, b VFState) bool { return a.Spoofchk == b.Spoofchk },
		func(c VFController, pf string, vf int, s VFState) error { return c.SetSpoofchk(pf, vf, s.Spoofchk) }},
	{"vf-trust", "trust",
		func(a, b VFState) bool { return a.Trust == b.Trust },
		func(c VFController, pf string, vf int, s VFState) error { return c.SetTrust(pf, vf, s.Trust) }},
	{"vf-link-state", "link_state",
		func(a, b VFState) bool { return a.LinkState == b.LinkState },
		func(c VFController, pf string, vf int, s VFState) error { return c.SetLinkState(pf, vf, s.LinkState) }},
	{"vf-rate", "min_tx_rate, max_tx_rate",
		func(a, b VFState) bool { return a.MinTxRate == b.MinTxRate && a.MaxTxRate == b.MaxTxRate },
		func(c VFController, pf string, vf int, s VFState) error {
			return c.SetRate(pf, vf, s.MinTxRate, s.MaxTxRate)
		}},
}

// desired is cur with the configuration's settings applied: vlan, qos,
// proto, spoofchk and trust always; mac when given; link state and rates
// when set.
func (c *NetConf) desired(cur VFState, mac net.HardwareAddr) VFState {
	want := cur
	if mac != nil {
		want.MAC = mac.String()
	}
	want.Vlan, want.QoS = *c.Vlan, *c.VlanQoS
	want.VlanProto, _ = vlanProtoNumber(c.VlanProto) // validated
	want.Spoofchk = c.Spoofchk == "on"
	want.Trust = c.Trust == "on"
	if c.LinkState != "" {
		want.LinkState = linkStates[c.LinkState]
	}
	if c.MinTxRate != nil || c.MaxTxRate != nil {
		want.MinTxRate, want.MaxTxRate = c.rates()
	}
	return want
}

// restoreKnob sets knob k of VF vf back to orig unless the kernel already
// reports orig. Setting a value that is already there is not harmless: a
// driver that refuses a knob refuses it whatever the value (igb answers
// EOPNOTSUPP to any link_state), so an undo that sets it blindly would
// fail after the refused ADD it undoes.
func restoreKnob(ctl VFController, pf string, vf int, k knob, orig VFState) error {
	cur, err := ctl.VF(pf, vf)
	if err != nil {
		return fmt.Errorf("read VF %d of %q: %w", vf, pf, err)
	}
	if k.equal(cur, orig) {
		return nil
	}
	return k.set(ctl, pf, vf, orig)
}

// restoreVF sets every knob of VF vf whose current value differs from
// orig back to orig, continuing after failures.
func restoreVF(ctl VFController, pf string, vf int, orig VFState) error {
	cur, err := ctl.VF(pf, vf)
	if err != nil {
		return fmt.Errorf("read VF %d of %q: %w", vf, pf, err)
	}
	var errs []error
	for _, k := range knobs {
		if k.equal(cur, orig) {
			continue
		}
		if err := k.set(ctl, pf, vf, orig); err != nil {
			errs = append(errs, fmt.Errorf("restore %s of VF %d of %q: %w", k.step, vf, pf, err))
		}
	}
	return errors.Join(errs...)
}
