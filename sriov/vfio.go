package sriov

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path"
	"time"

	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/vmcni/vmcni/pkg/hint"
)

// vfio binds the VF to vfio-pci, applies the PF-side settings (the guest's
// VF driver reads them when it starts), allocates addresses and writes the
// device-info file and the hint.
func (a *addition) vfio(ctx context.Context, mac net.HardwareAddr, writeInfo bool) (*current.Result, error) {
	conf, args, st := a.conf, a.args, a.st
	if err := a.bindVFIO(); err != nil {
		return nil, err
	}
	if err := a.applyVF(mac); err != nil {
		return nil, err
	}
	st.GuestMAC = mac.String()

	res, err := a.allocate(ctx)
	if err != nil {
		return nil, err
	}
	if res == nil {
		res = &current.Result{}
	}
	res.CNIVersion = current.ImplementedSpecVersion
	for _, ip := range res.IPs {
		ip.Interface = nil // no pod interface: AppendToResult points them at the pseudo-interface
	}
	h := &hint.Hint{
		HintVersion: hint.Version, Plugin: PluginName, Network: conf.Name,
		ContainerID: args.ContainerID, IfName: args.IfName, Kind: hint.KindVFIO,
		VFIO: &hint.VFIO{
			PCIAddress: st.PCI, IOMMUGroup: st.IOMMUGroup,
			DevicePath: a.fs.Path(path.Join("dev/vfio", st.IOMMUGroup)),
		},
		Guest: hint.GuestFromResult(res, -1, st.GuestMAC, conf.MTU),
	}
	if writeInfo && conf.RuntimeConfig.DeviceInfoFile != "" {
		// Recorded first, so that DEL or GC after a crash removes it.
		st.DeviceInfoFile = conf.RuntimeConfig.DeviceInfoFile
		if err := a.saveRecord(); err != nil {
			return nil, err
		}
		if _, err := hint.WriteDeviceInfo(st.DeviceInfoFile, h); err != nil {
			return nil, fmt.Errorf("write device-info file %q: %w", st.DeviceInfoFile, err)
		}
		a.undo.Push("remove device-info", func() error { return hint.RemoveDeviceInfo(st.DeviceInfoFile) })
		if err := a.step("device-info"); err != nil {
			return nil, err
		}
	}
	if err := hint.Write(conf.StateDir, h); err != nil {
		return nil, fmt.Errorf("write hint: %w", err)
	}
	a.undo.Push("remove hint", func() error { return hint.Remove(conf.StateDir, args.ContainerID, args.IfName) })
	if err := a.step("hint"); err != nil {
		return nil, err
	}
	if _, err := hint.AppendToResult(res, h, -1); err != nil {
		return nil, err
	}
	return res, nil
}

// bindVFIO moves the VF to vfio-pci the way the kernel expects: unbind
// from the current driver, driver_override = vfio-pci, drivers_probe; then
// waits for the binding and /dev/vfio/<group>. A VF already on vfio-pci
// (a device plugin's vfio pool) is left as it is.
func (a *addition) bindVFIO() error {
	st, hw, timeout := a.st, a.hw, a.conf.bindTimeout
	if st.OrigDriver == VFIODriver {
		return nil
	}
	restore := func() error { return restoreDriver(hw, st.PCI, st.OrigDriver, st.OrigOverride, timeout) }
	if st.OrigDriver != "" {
		if err := hw.Unbind(st.PCI, st.OrigDriver); err != nil {
			return fmt.Errorf("unbind VF %q from %q: %w", st.PCI, st.OrigDriver, err)
		}
		a.undo.Push("restore driver", restore)
		if err := hw.WaitDriver(st.PCI, "", timeout); err != nil {
			return err
		}
		if err := a.step("unbind"); err != nil {
			return err
		}
	}
	if err := hw.SetOverride(st.PCI, VFIODriver); err != nil {
		return err
	}
	if st.OrigDriver == "" {
		a.undo.Push("restore driver", restore)
	}
	if err := a.step("driver-override"); err != nil {
		return err
	}
	if err := hw.Probe(st.PCI); err != nil {
		return err
	}
	if err := hw.WaitDriver(st.PCI, VFIODriver, timeout); err != nil {
		return fmt.Errorf("bind VF %q to %q (is the vfio-pci module loaded?): %w", st.PCI, VFIODriver, err)
	}
	if err := a.step("drivers-probe"); err != nil {
		return err
	}
	return hw.WaitExists(path.Join("dev/vfio", st.IOMMUGroup), timeout)
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
