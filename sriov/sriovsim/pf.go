package sriovsim

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"

	"github.com/vmcni/vmcni/pkg/hint"
	"github.com/vmcni/vmcni/sriov"
)

// FakePFFile is the PF's VF table in a simulated root.
const FakePFFile = "vmcni-fake-pf.json"

// VFControllerFor is the sriov.VFController a test injects
// (sriov.Plugin.WithVFController): the simulated PF in sysfsRoot, which
// must be a simulated tree (never "/").
func VFControllerFor(sysfsRoot string) sriov.VFController {
	return FakePF{Path: filepath.Join(sysfsRoot, FakePFFile)}
}

// FakePFTable is the content of FakePFFile: the VF tables of simulated PF
// netdevs, and every change made to them, in order.
type FakePFTable struct {
	// PFs maps a PF netdev name to its VFs, indexed by VF number.
	PFs map[string][]sriov.VFState `json:"pfs"`
	// Calls records each setter call as "<setter> <pf> vf <n> <args>".
	Calls []string `json:"calls"`
	// FailOn, when it equals a setter call's text, makes that call fail
	// (the PF driver refusing a setting).
	FailOn string `json:"failOn,omitempty"`
}

// FakePF is a recording, file-backed stand-in for the PF side of netlink,
// for machines without SR-IOV hardware. Tests inject it
// (VFControllerFor); the vm-sriov-sim test binary carries it so the
// plugin can be run through libcni; the shipped vm-sriov has no fake. Every
// call locks the file (flock), so concurrent plugin processes see a
// consistent table.
type FakePF struct {
	Path string
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

func (f FakePF) vf(t *FakePFTable, pf string, vf int) (*sriov.VFState, error) {
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
func (f FakePF) VF(pf string, vf int) (sriov.VFState, error) {
	var out sriov.VFState
	err := f.update(func(t *FakePFTable) (bool, error) {
		s, err := f.vf(t, pf, vf)
		if err == nil {
			out = *s
		}
		return false, err
	})
	return out, err
}

func (f FakePF) set(pf string, vf int, verb, args string, apply func(s *sriov.VFState)) error {
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
	return f.set(pf, vf, "mac", mac.String(), func(s *sriov.VFState) { s.MAC = mac.String() })
}

// SetVlan implements VFController.
func (f FakePF) SetVlan(pf string, vf, vlan, qos int, proto uint16) error {
	if vlan == 0 && (qos != 0 || proto != 0x8100) {
		return fmt.Errorf("fake PF: vlan 0 with qos/proto: %w", syscall.EINVAL)
	}
	return f.set(pf, vf, "vlan", fmt.Sprintf("%d qos %d proto %#x", vlan, qos, proto), func(s *sriov.VFState) {
		s.Vlan, s.QoS, s.VlanProto = vlan, qos, proto
	})
}

// SetSpoofchk implements VFController.
func (f FakePF) SetSpoofchk(pf string, vf int, on bool) error {
	return f.set(pf, vf, "spoofchk", fmt.Sprint(on), func(s *sriov.VFState) { s.Spoofchk = on })
}

// SetTrust implements VFController.
func (f FakePF) SetTrust(pf string, vf int, on bool) error {
	return f.set(pf, vf, "trust", fmt.Sprint(on), func(s *sriov.VFState) { s.Trust = on })
}

// SetLinkState implements VFController.
func (f FakePF) SetLinkState(pf string, vf int, state uint32) error {
	if state > 2 {
		return fmt.Errorf("fake PF: link state %d: %w", state, syscall.EINVAL)
	}
	return f.set(pf, vf, "state", fmt.Sprint(state), func(s *sriov.VFState) { s.LinkState = state })
}

// SetRate implements VFController.
func (f FakePF) SetRate(pf string, vf, minRate, maxRate int) error {
	if maxRate != 0 && minRate > maxRate {
		return fmt.Errorf("fake PF: min rate above max: %w", syscall.EINVAL)
	}
	return f.set(pf, vf, "rate", fmt.Sprintf("min %d max %d", minRate, maxRate), func(s *sriov.VFState) {
		s.MinTxRate, s.MaxTxRate = minRate, maxRate
	})
}

// PluginType is the test binary (cmd/vm-sriov-sim) that runs vm-sriov on
// this package's simulated PF: the "type" of configs aimed at a simulated
// tree.
const PluginType = "vm-sriov-sim"
