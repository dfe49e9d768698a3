package sriov

import (
	"context"
	"errors"
	"path"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/vmcni/vmcni/internal/cnierr"
	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/netns"
	"github.com/vmcni/vmcni/internal/plugin"
)

// teardown is DEL's work for a recorded attachment: the VF put back as ADD
// found it, while its allocation still names this attachment (the engine
// removes the hint and device-info files and releases IPAM). Without a
// record DEL touches no VF, whatever deviceID the config names.
func (p *Plugin) teardown(_ context.Context, t *plugin.Teardown[*NetConf, state]) {
	if t.State.PCI != "" {
		t.Step(p.releaseVF(t))
	}
}

// releaseVF puts the VF back as ADD found it, under the VF lock, but only
// while the VF's allocation still names this attachment: a stale DEL or GC
// must not reset a VF that another pod holds now.
func (p *Plugin) releaseVF(t *plugin.Teardown[*NetConf, state]) error {
	st, key, conf := t.State, t.Key, t.Conf
	vl, err := lockVF(conf.StateDir, st.PCI)
	if err != nil {
		return err
	}
	defer vl.Unlock(false)
	owner, err := readOwner(conf.StateDir, st.PCI)
	if err != nil {
		return err
	}
	if !owner.is(key.ContainerID, key.IfName, key.Netns) {
		if owner != nil {
			t.Log.Warn("VF now belongs to another attachment; leaving it alone", "pci", st.PCI, "owner", owner.String())
		}
		return nil
	}
	hw := pci{fs: RootFS{Root: conf.SysfsRoot}}
	ctl := p.vfs(conf.SysfsRoot)
	var errs []error
	if st.Mode == ModeNetdev && st.Netdev != "" {
		err := returnNetdev(t.PodNetns(), key.IfName, st.Netdev, st.NetdevMTU, conf.bindTimeout)
		if errors.Is(err, netns.ErrGone) {
			t.Log.Info("pod netns is gone; looking for the VF netdev in the host", "pci", st.PCI)
			err = reclaimNetdev(hw, st.PCI, st.Netdev, st.NetdevMTU, conf.bindTimeout, t.Log)
		}
		errs = append(errs, err)
	}
	if st.PFNetdev != "" {
		errs = append(errs, restoreVF(ctl, st.PFNetdev, st.VF, st.Original))
	}
	if st.Mode == ModeNetdev {
		errs = append(errs, link.RestoreMAC(st.Netdev, st.NetdevMAC))
	}
	if st.Mode == ModeVFIO {
		errs = append(errs, restoreDriverAndNetdev(hw, st, conf.bindTimeout, t.Log))
	}
	if err := errors.Join(errs...); err != nil {
		return err // keep the allocation: the VF is not clean
	}
	return releaseOwner(conf.StateDir, st.PCI, key.ContainerID, key.IfName, key.Netns)
}

// busy stops DEL before any change while a process (the VMM) still has the
// VF's /dev/vfio/<group> open: unbinding vfio-pci would block in the kernel
// until the VMM lets go, holding the VF's and the attachment's locks. The
// runtime retries (code 11) once the VM is down. A VF that was on vfio-pci
// before ADD is not unbound, so it is never busy.
func busy(t *plugin.Teardown[*NetConf, state]) error {
	st := t.State
	if st.Mode != ModeVFIO || st.IOMMUGroup == "" || st.OrigDriver == VFIODriver {
		return nil
	}
	group := RootFS{Root: t.Conf.SysfsRoot}.Path(path.Join("dev/vfio", st.IOMMUGroup))
	if pids := openers(group); len(pids) > 0 {
		return cnierr.TryAgain("VF %q: %s is still open (pids %v): stop the VM, then DEL again", st.PCI, group, pids)
	}
	return nil
}

// assume is what DEL restores without a readable record: the VF the
// config names (deviceID, or the device-info file), only while its
// allocation names this attachment, from the state kept in the allocation.
// Anything else touches no VF.
func assume(conf *NetConf, args *skel.CmdArgs) (*state, error) {
	addr, _, err := resolveDeviceID(conf)
	if err != nil || !ValidPCIAddress(addr) {
		return nil, nil //nolint:nilerr // no VF named: nothing of a VF to undo
	}
	o, err := readOwner(conf.StateDir, addr)
	if err != nil || !o.is(args.ContainerID, args.IfName, args.Netns) || o.Restore == nil {
		return nil, nil //nolint:nilerr // not this attachment's VF, or unknown: leave it
	}
	return o.Restore, nil
}
