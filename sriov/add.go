package sriov

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmcni/vmcni/internal/cnierr"
	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/plugin"
	"github.com/vmcni/vmcni/pkg/hint"
)

// addition is one ADD in progress.
type addition struct {
	*plugin.Addition[*NetConf, state]
	st  *state
	fs  FS
	hw  pci
	ctl VFController
}

// add is vm-sriov's ADD: under the VF's lock (held until the rollback is
// over), it checks the VF is free, reads everything it will change,
// records it, takes the VF's allocation, then binds it to vfio-pci or
// moves its netdev into the pod.
func (p *Plugin) add(ctx context.Context, pa *plugin.Addition[*NetConf, state]) (plugin.Outcome, error) {
	conf, args := pa.Conf, pa.Args
	fs := RootFS{Root: conf.SysfsRoot}
	a := &addition{Addition: pa, fs: fs, hw: pci{fs: fs}, ctl: p.vfs(conf.SysfsRoot)}
	addr, infoExists, err := resolveDeviceID(conf)
	if err != nil {
		return plugin.Outcome{}, err
	}
	if !ValidPCIAddress(addr) {
		return plugin.Outcome{}, cnierr.Config("deviceID %q is not a PCI address", addr)
	}
	a.st = &state{Mode: conf.Mode, PCI: addr}
	// Everything about the VF is read under its lock: another ADD may be
	// changing it (and may still roll back).
	vl, err := lockVF(conf.StateDir, addr)
	if err != nil {
		return plugin.Outcome{}, err
	}
	a.Hold(func() { vl.Unlock(false) })
	owner, err := readOwner(conf.StateDir, addr)
	if err != nil {
		return plugin.Outcome{}, err
	}
	if owner != nil && !owner.is(args.ContainerID, args.IfName, args.Netns) {
		return plugin.Outcome{}, cnierr.TryAgain("VF %q is allocated to %s", addr, owner)
	}
	if err = a.inspect(); err != nil {
		return plugin.Outcome{}, err
	}
	if a.st.Original, err = a.ctl.VF(a.st.PFNetdev, a.st.VF); err != nil {
		return plugin.Outcome{}, fmt.Errorf("read VF %q settings on PF %q: %w", addr, a.st.PFNetdev, err)
	}
	// igb and ixgbe report, where the PF holds no administrative MAC, the
	// MAC filter the VF's own driver set: its netdev's MAC. Restoring that
	// as an administrative MAC would pin it (the VF driver could no longer
	// change it), so a PF-side MAC equal to the netdev's is taken for none;
	// DEL gives the netdev its MAC back and the VF's driver registers it.
	if a.st.NetdevMAC != "" && sameMAC(a.st.Original.MAC, a.st.NetdevMAC) {
		a.st.Original.MAC = noMAC
	}
	mac, err := a.chooseMAC()
	if err != nil {
		return plugin.Outcome{}, err
	}
	if err = a.Begin(a.st); err != nil {
		return plugin.Outcome{}, err
	}
	err = a.Claim("owner", func() error {
		return releaseOwner(conf.StateDir, addr, args.ContainerID, args.IfName, args.Netns)
	}, func() error {
		return writeOwner(conf.StateDir, addr, &Owner{
			Network: conf.Name, ContainerID: args.ContainerID, IfName: args.IfName, Netns: args.Netns, Since: time.Now().UTC(),
			Restore: a.st,
		})
	})
	if err != nil {
		return plugin.Outcome{}, err
	}
	if conf.Mode == ModeVFIO {
		return a.vfio(ctx, mac, !infoExists)
	}
	return a.netdev(ctx, mac)
}

// resolveDeviceID returns the VF's PCI address: deviceID (config or
// runtimeConfig), else the pci-address of an existing device-info file.
func resolveDeviceID(conf *NetConf) (addr string, infoExists bool, err error) {
	file := conf.RuntimeConfig.DeviceInfoFile
	var data []byte
	if file != "" {
		data, err = os.ReadFile(file)
		infoExists = err == nil
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", false, cnierr.Config("read device-info file %q: %w", file, err)
		}
	}
	if conf.DeviceID != "" {
		return conf.DeviceID, infoExists, nil
	}
	if !infoExists {
		return "", false, cnierr.Config("no VF given: set deviceID, runtimeConfig.deviceID or a device-info file (runtimeConfig.CNIDeviceInfoFile)")
	}
	var info hint.DeviceInfo
	if err := json.Unmarshal(data, &info); err != nil {
		return "", true, cnierr.Decode("decode device-info file %q: %w", file, err)
	}
	if info.Type != "pci" || info.PCI == nil || !ValidPCIAddress(info.PCI.PCIAddress) {
		return "", true, cnierr.Config("device-info file %q has no valid pci-address (type %q)", file, info.Type)
	}
	return info.PCI.PCIAddress, true, nil
}

// inspect reads everything ADD needs and checks the mode is possible,
// before any change.
func (a *addition) inspect() error {
	addr := a.st.PCI
	pf, pfNetdev, vf, err := a.hw.PF(addr)
	if err != nil {
		return cnierr.Config("deviceID %q: %w", addr, err)
	}
	a.st.PF, a.st.PFNetdev, a.st.VF = pf, pfNetdev, vf
	if a.st.OrigDriver, err = a.hw.Driver(addr); err != nil {
		return err
	}
	if a.st.OrigOverride, err = a.hw.Override(addr); err != nil {
		return err
	}
	if a.Conf.Mode == ModeVFIO {
		if a.st.IOMMUGroup, err = a.hw.IOMMUGroup(addr); err != nil {
			return err
		}
		if a.st.IOMMUGroup == "" {
			return cnierr.Config("VF %q has no IOMMU group: enable the IOMMU (intel_iommu=on or amd_iommu=on)", addr)
		}
		if err = a.hw.CheckViable(a.st.IOMMUGroup, addr); err != nil {
			return cnierr.Config("VF %q: %w", addr, err)
		}
		if a.st.OrigDriver == "" || a.st.OrigDriver == VFIODriver {
			return nil
		}
		// The netdev the network driver has now, put back after DEL rebinds
		// the driver (which makes a new one); none is fine.
		_ = a.recordNetdev()
		return nil
	}
	if a.st.OrigDriver == "" || a.st.OrigDriver == VFIODriver {
		return cnierr.Config("VF %q is bound to %q and has no netdev: use mode %q or bind it to its network driver", addr, a.st.OrigDriver, ModeVFIO)
	}
	return a.recordNetdev()
}

// recordNetdev records the VF's netdev in the host netns: its name, MAC
// and MTU.
func (a *addition) recordNetdev() error {
	addr := a.st.PCI
	names, err := a.hw.Netdevs(addr)
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return cnierr.TryAgain("VF %q (driver %q) shows no netdev in the host netns yet", addr, a.st.OrigDriver)
	}
	l, err := link.ByName(names[0])
	if link.IsNotFound(err) {
		return cnierr.TryAgain("VF %q: netdev %q is not in the host netns (in use elsewhere?): %w", addr, names[0], err)
	}
	if err != nil {
		return err
	}
	a.st.Netdev, a.st.NetdevMAC, a.st.NetdevMTU = names[0], l.Attrs().HardwareAddr.String(), l.Attrs().MTU
	return nil
}

// chooseMAC returns the MAC to set as the VF's admin MAC on the PF: the
// configured one; in vfio mode without one, the VF's admin MAC, else its
// netdev's MAC, else a random one, so that the guest sees exactly the MAC
// the hint reports. Netdev mode without a configured MAC leaves the MAC.
func (a *addition) chooseMAC() (net.HardwareAddr, error) {
	mac, err := a.Conf.guestMAC()
	if err != nil || mac != nil || a.Conf.Mode != ModeVFIO {
		return mac, err
	}
	if m, err := net.ParseMAC(a.st.Original.MAC); err == nil && m.String() != noMAC {
		return m, nil
	}
	names, _ := a.hw.Netdevs(a.st.PCI)
	for _, n := range names {
		data, err := a.fs.ReadFile(path.Join(devDir(a.st.PCI), "net", n, "address"))
		if m, perr := net.ParseMAC(string(trimNL(data))); err == nil && perr == nil && m.String() != noMAC {
			return m, nil
		}
	}
	return link.RandomMAC(), nil
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}

// refusal is ADD's error for a PF-side setting the PF's driver refused:
// code 7 when the NIC cannot do what the config asks (EOPNOTSUPP,
// EPROTONOSUPPORT, EINVAL, ERANGE: igb has no link_state, no min_tx_rate,
// no 802.1ad), code 11 when it cannot now (EAGAIN, EBUSY: igb sets no
// rate while its link is not at 1000 Mb/s).
func (a *addition) refusal(k knob, err error) error {
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return fmt.Errorf("apply %s to VF %q: %w", k.step, a.st.PCI, err)
	}
	drv, _ := a.hw.Driver(a.st.PF)
	what := fmt.Sprintf("PF %q (driver %q) refuses %s for VF %d (%s)", a.st.PFNetdev, drv, k.keys, a.st.VF, a.st.PCI)
	switch errno {
	case unix.EAGAIN, unix.EBUSY:
		return cnierr.TryAgain("%s: %w", what, errno)
	case unix.EOPNOTSUPP, unix.EPROTONOSUPPORT, unix.EINVAL, unix.ERANGE:
		return cnierr.Config("%s: %w", what, errno)
	}
	return fmt.Errorf("apply %s to VF %q: %w", k.step, a.st.PCI, err)
}

// applyVF sets the configured PF-side settings on the VF, one knob at a
// time, each after its undo (restoreKnob: a no-op while the kernel reports
// the original value, as after a refused set).
func (a *addition) applyVF(mac net.HardwareAddr) error {
	orig, pfNetdev, vf := a.st.Original, a.st.PFNetdev, a.st.VF
	want := a.Conf.desired(orig, mac)
	for _, k := range knobs {
		if k.equal(orig, want) {
			continue
		}
		err := a.Do(k.step, func() error { return restoreKnob(a.ctl, pfNetdev, vf, k, orig) }, func() error {
			if err := k.set(a.ctl, pfNetdev, vf, want); err != nil {
				return a.refusal(k, err)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
