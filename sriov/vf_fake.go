package sriov

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"syscall"

	"github.com/vmcni/vmcni/pkg/hint"
)

// FakePFFile is the file whose presence in a simulated sysfs root (never
// "/") switches vm-sriov from netlink to FakePF.
const FakePFFile = "vmcni-fake-pf.json"

// FakePFTable is the content of FakePFFile: the VF tables of simulated PF
// netdevs, and every change made to them, in order.
type FakePFTable struct {
	// PFs maps a PF netdev name to its VFs, indexed by VF number.
	PFs map[string][]VFState `json:"pfs"`
	// Calls records each setter call as "<setter> <pf> vf <n> <args>".
	Calls []string `json:"calls"`
	// FailOn, when it equals a setter call's text, makes that call fail
	// (the PF driver refusing a setting).
	FailOn string `json:"failOn,omitempty"`
}

// FakePF is a recording, file-backed stand-in for the PF side of netlink,
// for machines without SR-IOV hardware. It is a simulation seam: vm-sriov
// only uses it when its sysfsRoot is not "/" and contains FakePFFile, so the
// plugin binary can be tested through libcni. Every call locks the file
// (flock), so concurrent plugin processes see a consistent table.
type FakePF struct {
	Path string
}

func (f FakePF) present() bool {
	_, err := os.Stat(f.Path)
	return err == nil
}

// Load reads the table.
func (f FakePF) Load() (*FakePFTable, error) {
	data, err := os.ReadFile(f.Path)
	if err != nil {
		return nil, err
	}
	var t FakePFTable
	if err := json.Unmarshal(data, &t); err != nil {
		return nil, fmt.Errorf("decode %q: %w", f.Path, err)
	}
	return &t, nil
}

// Save writes the table atomically.
func (f FakePF) Save(t *FakePFTable) error {
	data, err := json.MarshalIndent(t, "", " ")
	if err != nil {
		return err
	}
	return hint.WriteFileAtomic(f.Path, data, 0o644)
}

// update runs fn on the table under an exclusive lock and saves it when fn
// changed it.
func (f FakePF) update(fn func(t *FakePFTable) (bool, error)) error {
	lf, err := os.OpenFile(f.Path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer lf.Close()
	if err = syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	t, err := f.Load()
	if err != nil {
		return err
	}
	changed, err := fn(t)
	if err != nil || !changed {
		return err
	}
	return f.Save(t)
}

func (f FakePF) vf(t *FakePFTable, pf string, vf int) (*VFState, error) {
	vfs, ok := t.PFs[pf]
	if !ok {
		return nil, fmt.Errorf("fake PF %q: %w", pf, syscall.ENODEV)
	}
	if vf < 0 || vf >= len(vfs) {
		return nil, fmt.Errorf("fake PF %q has no VF %d: %w", pf, vf, syscall.EINVAL)
	}
	return &vfs[vf], nil
}

// VF implements VFController.
func (f FakePF) VF(pf string, vf int) (VFState, error) {
	var out VFState
	err := f.update(func(t *FakePFTable) (bool, error) {
		s, err := f.vf(t, pf, vf)
		if err == nil {
			out = *s
		}
		return false, err
	})
	return out, err
}

func (f FakePF) set(pf string, vf int, verb, args string, apply func(s *VFState)) error {
	text := fmt.Sprintf("%s %s vf %d %s", verb, pf, vf, args)
	return f.update(func(t *FakePFTable) (bool, error) {
		s, err := f.vf(t, pf, vf)
		if err != nil {
			return false, err
		}
		if t.FailOn != "" && t.FailOn == text {
			return false, fmt.Errorf("fake PF refuses %q: %w", text, syscall.EOPNOTSUPP)
		}
		apply(s)
		t.Calls = append(t.Calls, text)
		return true, nil
	})
}

// SetMAC implements VFController.
func (f FakePF) SetMAC(pf string, vf int, mac net.HardwareAddr) error {
	return f.set(pf, vf, "mac", mac.String(), func(s *VFState) { s.MAC = mac.String() })
}

// SetVlan implements VFController.
func (f FakePF) SetVlan(pf string, vf, vlan, qos int, proto uint16) error {
	if vlan == 0 && (qos != 0 || proto != 0x8100) {
		return fmt.Errorf("fake PF: vlan 0 with qos/proto: %w", syscall.EINVAL)
	}
	return f.set(pf, vf, "vlan", fmt.Sprintf("%d qos %d proto %#x", vlan, qos, proto), func(s *VFState) {
		s.Vlan, s.QoS, s.VlanProto = vlan, qos, proto
	})
}

// SetSpoofchk implements VFController.
func (f FakePF) SetSpoofchk(pf string, vf int, on bool) error {
	return f.set(pf, vf, "spoofchk", fmt.Sprint(on), func(s *VFState) { s.Spoofchk = on })
}

// SetTrust implements VFController.
func (f FakePF) SetTrust(pf string, vf int, on bool) error {
	return f.set(pf, vf, "trust", fmt.Sprint(on), func(s *VFState) { s.Trust = on })
}

// SetLinkState implements VFController.
func (f FakePF) SetLinkState(pf string, vf int, state uint32) error {
	if state > 2 {
		return fmt.Errorf("fake PF: link state %d: %w", state, syscall.EINVAL)
	}
	return f.set(pf, vf, "state", fmt.Sprint(state), func(s *VFState) { s.LinkState = state })
}

// SetRate implements VFController.
func (f FakePF) SetRate(pf string, vf, minRate, maxRate int) error {
	if maxRate != 0 && minRate > maxRate {
		return fmt.Errorf("fake PF: min rate above max: %w", syscall.EINVAL)
	}
	return f.set(pf, vf, "rate", fmt.Sprintf("min %d max %d", minRate, maxRate), func(s *VFState) {
		s.MinTxRate, s.MaxTxRate = minRate, maxRate
	})
}
