package sriov

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path"

	"github.com/containernetworking/cni/pkg/skel"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/vmcni/vmcni/internal/cnierr"
	"github.com/vmcni/vmcni/internal/ipam"
	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/netns"
	"github.com/vmcni/vmcni/internal/plugin"
	"github.com/vmcni/vmcni/internal/store"
	"github.com/vmcni/vmcni/internal/undo"
	"github.com/vmcni/vmcni/pkg/hint"
)

// addition is one ADD in progress.
type addition struct {
	p     *Plugin
	conf  *NetConf
	args  *skel.CmdArgs
	log   *slog.Logger
	store *store.Store
	rec   *store.Record
	st    *state
	fs    FS
	hw    pci
	ctl   VFController
	undo  undo.Stack
}

// Add implements CNI ADD.
func (p *Plugin) Add(args *skel.CmdArgs) error {
	conf, err := ParseConfig(args.StdinData, args.Args)
	if err != nil {
		return err
	}
	if err = conf.Validate(); err != nil {
		return err
	}
	if err = plugin.ValidateArgs(args.ContainerID, args.IfName); err != nil {
		return err
	}
	if conf.Mode == ModeNetdev && !netns.Exists(args.Netns) {
		return cnierr.Env("CNI_NETNS %q is not a network namespace", args.Netns)
	}
	at, err := plugin.OpenAttachment(PluginName, "ADD", conf.Config, conf.StateDir, args)
	if err != nil {
		return err
	}
	log, st := at.Log, at.Store
	succeeded := false
	defer func() { at.Close(!succeeded) }()
	res, err := p.addLocked(st, conf, args, log)
	if err != nil {
		return err
	}
	succeeded = true
	log.Info("ADD done", "mode", conf.Mode, "pci", conf.DeviceID)
	return p.PrintResult(res, conf.CNIVersion)
}

func (p *Plugin) addLocked(st *store.Store, conf *NetConf, args *skel.CmdArgs, log *slog.Logger) (*current.Result, error) {
	if err := p.recoverStale(st, args, log); err != nil {
		return nil, err
	}
	a := &addition{p: p, conf: conf, args: args, log: log, store: st}
	res, err := a.run(context.Background())
	if err = p.Conclude(err, &a.undo, log); err != nil {
		return nil, err
	}
	return res, nil
}

// recoverStale undoes what an earlier, interrupted ADD of the same
// attachment left (its record is there but was never completed).
func (p *Plugin) recoverStale(st *store.Store, args *skel.CmdArgs, log *slog.Logger) error {
	return plugin.RecoverInterrupted(st, args, log, func(rec *store.Record) error { return teardownRecord(rec, log) })
}

func (a *addition) step(name string) error {
	a.log.Debug("done", "step", name)
	return a.p.Step(name)
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

func (a *addition) run(ctx context.Context) (*current.Result, error) {
	conf, args := a.conf, a.args
	a.fs = RootFS{Root: conf.SysfsRoot}
	a.hw = pci{fs: a.fs}
	a.ctl = NewVFController(conf.SysfsRoot)
	addr, infoExists, err := resolveDeviceID(conf)
	if err != nil {
		return nil, err
	}
	a.st = &state{Mode: conf.Mode, PCI: addr}
	if !ValidPCIAddress(addr) {
		return nil, cnierr.Config("deviceID %q is not a PCI address", addr)
	}
	// Everything about the VF is read under its lock: another ADD may be
	// changing it (and may still roll back).
	vl, err := lockVF(conf.StateDir, addr)
	if err != nil {
		return nil, err
	}
	defer vl.Unlock(false)
	owner, err := readOwner(conf.StateDir, addr)
	if err != nil {
		return nil, err
	}
	if owner != nil && !owner.is(args.ContainerID, args.IfName, args.Netns) {
		return nil, cnierr.TryAgain("VF %q is allocated to %s", addr, owner)
	}
	if err = a.inspect(); err != nil {
		return nil, err
	}
	if a.st.Original, err = a.ctl.VF(a.st.PFNetdev, a.st.VF); err != nil {
		return nil, fmt.Errorf("read VF %q settings on PF %q: %w", addr, a.st.PFNetdev, err)
	}
	mac, err := a.chooseMAC()
	if err != nil {
		return nil, err
	}

	a.rec = &store.Record{
		Plugin: PluginName, Network: conf.Name, ContainerID: args.ContainerID,
		IfName: args.IfName, Netns: args.Netns, Config: conf.Raw, Args: args.Args,
	}
	if err = a.saveRecord(); err != nil {
		return nil, err
	}
	a.undo.Push("delete record", func() error { return a.store.Delete(args.ContainerID, args.IfName) })
	if err = a.step("record"); err != nil {
		return nil, err
	}
	err = writeOwner(conf.StateDir, addr, &Owner{
		Network: conf.Name, ContainerID: args.ContainerID, IfName: args.IfName, Netns: args.Netns, Since: a.rec.Created,
	})
	if err != nil {
		return nil, err
	}
	a.undo.Push("release VF", func() error {
		return releaseOwner(conf.StateDir, addr, args.ContainerID, args.IfName, args.Netns)
	})
	if err = a.step("owner"); err != nil {
		return nil, err
	}

	var res *current.Result
	if conf.Mode == ModeVFIO {
		res, err = a.vfio(ctx, mac, !infoExists)
	} else {
		res, err = a.netdev(ctx, mac)
	}
	if err != nil {
		return nil, err
	}
	a.rec.Complete = true
	if err = a.saveRecord(); err != nil {
		return nil, err
	}
	return res, nil
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
	if a.conf.Mode == ModeVFIO {
		if a.st.IOMMUGroup, err = a.hw.IOMMUGroup(addr); err != nil {
			return err
		}
		if a.st.IOMMUGroup == "" {
			return cnierr.Config("VF %q has no IOMMU group: enable the IOMMU (intel_iommu=on or amd_iommu=on)", addr)
		}
		if err = a.hw.CheckViable(a.st.IOMMUGroup, addr); err != nil {
			return cnierr.Config("VF %q: %w", addr, err)
		}
		return nil
	}
	if a.st.OrigDriver == "" || a.st.OrigDriver == VFIODriver {
		return cnierr.Config("VF %q is bound to %q and has no netdev: use mode %q or bind it to its network driver", addr, a.st.OrigDriver, ModeVFIO)
	}
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
	mac, err := a.conf.guestMAC()
	if err != nil || mac != nil || a.conf.Mode != ModeVFIO {
		return mac, err
	}
	if m, err := net.ParseMAC(a.st.Original.MAC); err == nil && m.String() != "00:00:00:00:00:00" {
		return m, nil
	}
	names, _ := a.hw.Netdevs(a.st.PCI)
	for _, n := range names {
		data, err := a.fs.ReadFile(path.Join(devDir(a.st.PCI), "net", n, "address"))
		if m, perr := net.ParseMAC(string(trimNL(data))); err == nil && perr == nil && m.String() != "00:00:00:00:00:00" {
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

// applyVF sets the configured PF-side settings on the VF, one knob at a
// time, each followed by its undo step.
func (a *addition) applyVF(mac net.HardwareAddr) error {
	orig, pfNetdev, vf := a.st.Original, a.st.PFNetdev, a.st.VF
	want := a.conf.desired(orig, mac)
	for _, k := range knobs {
		if k.equal(orig, want) {
			continue
		}
		if err := k.set(a.ctl, pfNetdev, vf, want); err != nil {
			return fmt.Errorf("apply %s to VF %q: %w", k.step, a.st.PCI, err)
		}
		a.undo.Push("restore "+k.step, func() error { return k.set(a.ctl, pfNetdev, vf, orig) })
		if err := a.step(k.step); err != nil {
			return err
		}
	}
	return nil
}

func (a *addition) saveRecord() error {
	a.st.saveTo(a.rec)
	return a.store.Put(a.rec)
}

func (a *addition) ipamDelegate() ipam.Delegate {
	return ipam.Delegate{Type: a.conf.IPAM.Type, Config: a.args.StdinData}
}

func (a *addition) attachment() ipam.Attachment {
	return ipam.Attachment{ContainerID: a.args.ContainerID, Netns: a.args.Netns, IfName: a.args.IfName, Args: a.args.Args}
}

// allocate runs IPAM ADD when configured (nil result otherwise).
func (a *addition) allocate(ctx context.Context) (*current.Result, error) {
	if a.conf.IPAM.Type == "" {
		return nil, nil
	}
	res, err := a.ipamDelegate().Add(ctx, a.attachment())
	if err != nil {
		return nil, err
	}
	a.undo.Push("release addresses", func() error { return a.ipamDelegate().Del(context.Background(), a.attachment()) })
	return res, a.step("ipam")
}
