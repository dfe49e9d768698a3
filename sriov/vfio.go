package sriov

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path"
	"time"

	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/plugin"
	"github.com/vmcni/vmcni/pkg/hint"
)

// vfio binds the VF to vfio-pci, applies the PF-side settings (the guest's
// VF driver reads them when it starts) and allocates addresses; the engine
// writes the device-info file (unless the device plugin wrote one) and the
// hint.
func (a *addition) vfio(ctx context.Context, mac net.HardwareAddr, writeInfo bool) (plugin.Outcome, error) {
	st := a.st
	if err := a.bindVFIO(); err != nil {
		return plugin.Outcome{}, err
	}
	if err := a.applyVF(mac); err != nil {
		return plugin.Outcome{}, err
	}
	st.GuestMAC = mac.String()
	res, err := a.Allocate(ctx)
	if err != nil {
		return plugin.Outcome{}, err
	}
	res.CNIVersion = current.ImplementedSpecVersion
	for _, ip := range res.IPs {
		ip.Interface = nil // no pod interface: AppendToResult points them at the pseudo-interface
	}
	h := &hint.Hint{
		Kind: hint.KindVFIO,
		VFIO: &hint.VFIO{
			PCIAddress: st.PCI, IOMMUGroup: st.IOMMUGroup,
			DevicePath: a.fs.Path(path.Join("dev/vfio", st.IOMMUGroup)),
		},
		Guest: hint.GuestFromResult(res, -1, st.GuestMAC, a.Conf.MTU),
	}
	return plugin.Outcome{Result: res, Hint: h, PodIf: -1, DeviceInfo: writeInfo}, nil
}

// bindVFIO moves the VF to vfio-pci the way the kernel expects: unbind
// from the current driver, driver_override = vfio-pci, drivers_probe; then
// waits for the binding and /dev/vfio/<group>. A VF already on vfio-pci
// (a device plugin's vfio pool) is left as it is. One state-based undo,
// registered first, restores driver and override from whatever step the
// binding stopped at.
func (a *addition) bindVFIO() error {
	st, hw, timeout := a.st, a.hw, a.Conf.bindTimeout
	if st.OrigDriver == VFIODriver {
		return nil
	}
	a.Undo("restore driver", func() error { return restoreDriverAndNetdev(hw, st, timeout, a.Log) })
	if st.OrigDriver != "" {
		err := a.Do("unbind", nil, func() error {
			if err := hw.Unbind(st.PCI, st.OrigDriver); err != nil {
				return fmt.Errorf("unbind VF %q from %q: %w", st.PCI, st.OrigDriver, err)
			}
			return hw.WaitDriver(st.PCI, "", timeout)
		})
		if err != nil {
			return err
		}
	}
	if err := a.Do("driver-override", nil, func() error { return hw.SetOverride(st.PCI, VFIODriver) }); err != nil {
		return err
	}
	err := a.Do("drivers-probe", nil, func() error {
		if err := hw.Probe(st.PCI); err != nil {
			return err
		}
		if err := hw.WaitDriver(st.PCI, VFIODriver, timeout); err != nil {
			return fmt.Errorf("bind VF %q to %q (is the vfio-pci module loaded?): %w", st.PCI, VFIODriver, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return hw.WaitExists(path.Join("dev/vfio", st.IOMMUGroup), timeout)
}

// restoreDriverAndNetdev is restoreDriver, then, when the VF had a netdev
// in the host netns before ADD, that netdev as it was: the network
// driver's probe makes a new one, named by the kernel and, where the PF
// holds no administrative MAC for the VF, with a new random MAC (igbvf).
func restoreDriverAndNetdev(hw pci, st *state, timeout time.Duration, log *slog.Logger) error {
	if err := restoreDriver(hw, st.PCI, st.OrigDriver, st.OrigOverride, timeout); err != nil {
		return err
	}
	if st.Netdev == "" || st.OrigDriver == "" || st.OrigDriver == VFIODriver {
		return nil
	}
	if err := reclaimNetdev(hw, st.PCI, st.Netdev, st.NetdevMTU, timeout, log); err != nil {
		return err
	}
	return link.RestoreMAC(st.Netdev, st.NetdevMAC)
}

// restoreDriver puts addr back on origDriver with origOverride, from
// whatever state it is in (state-based, so it serves rollback, DEL and GC
// after a crash at any step): driver_override restored, unbound from its
// current driver, drivers_probe (then, if the kernel picked no driver, an
// explicit bind to origDriver).
func restoreDriver(hw pci, addr, origDriver, origOverride string, timeout time.Duration) error {
	if origDriver == VFIODriver {
		return nil // ADD changed nothing
	}
	ovr, err := hw.Override(addr)
	if err != nil {
		return err
	}
	if ovr != origOverride {
		if err = hw.SetOverride(addr, origOverride); err != nil {
			return err
		}
	}
	cur, err := hw.Driver(addr)
	if err != nil || cur == origDriver {
		return err
	}
	if cur != "" {
		if err = hw.Unbind(addr, cur); err != nil {
			return err
		}
		if err = hw.WaitDriver(addr, "", timeout); err != nil {
			return err
		}
	}
	if origDriver == "" {
		return nil
	}
	if err = hw.Probe(addr); err != nil {
		return err
	}
	err = hw.WaitDriver(addr, origDriver, timeout)
	if err == nil {
		return nil
	}
	if now, _ := hw.Driver(addr); now != "" {
		return err
	}
	bindErr := hw.write(path.Join("sys/bus/pci/drivers", origDriver, "bind"), addr)
	if bindErr == nil {
		bindErr = hw.WaitDriver(addr, origDriver, timeout)
	}
	return errors.Join(err, bindErr)
}
