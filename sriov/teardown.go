package sriov

import (
	"context"
	"errors"
	"log/slog"

	"github.com/vmcni/vmcni/internal/ipam"
	"github.com/vmcni/vmcni/internal/netns"
	"github.com/vmcni/vmcni/internal/plugin"
	"github.com/vmcni/vmcni/internal/store"
)

// teardown is DEL's work for one recorded attachment, best effort: every
// step runs, missing things count as removed, and the errors are joined.
// conf is the attachment's ADD config (from the record).
type teardown struct {
	conf  *NetConf
	st    *state
	rec   *store.Record
	store *store.Store
	log   *slog.Logger
}

// teardownRecord runs DEL for a recorded attachment (DEL, GC, interrupted
// ADD).
func teardownRecord(rec *store.Record, log *slog.Logger) error {
	conf, err := ParseConfig(rec.Config, rec.Args)
	if err != nil {
		return err
	}
	if err = conf.Validate(); err != nil {
		return err
	}
	st, err := stateOf(rec)
	if err != nil {
		return err
	}
	t := &teardown{conf: conf, st: st, rec: rec, store: store.New(conf.StateDir), log: log}
	return t.run(context.Background())
}

func (t *teardown) run(ctx context.Context) error {
	td := plugin.BeginTeardown(t.log, t.conf.StateDir, t.rec.ContainerID, t.rec.IfName, t.st.DeviceInfoFile)
	if t.st.PCI != "" {
		td.Step(t.releaseVF())
	}
	if t.conf.IPAM.Type != "" {
		key := ipam.Attachment{ContainerID: t.rec.ContainerID, Netns: t.rec.Netns, IfName: t.rec.IfName, Args: t.rec.Args}
		td.Step(ipam.Delegate{Type: t.conf.IPAM.Type, Config: t.conf.Raw}.Del(ctx, key))
	}
	return td.Finish(t.store, t.rec.ContainerID, t.rec.IfName)
}

// releaseVF puts the VF back as ADD found it, under the VF lock, but only
// while the VF's allocation still names this attachment: a stale DEL or GC
// must not reset a VF that another pod holds now.
func (t *teardown) releaseVF() error {
	st, rec := t.st, t.rec
	vl, err := lockVF(t.conf.StateDir, st.PCI)
	if err != nil {
		return err
	}
	defer vl.Unlock(false)
	owner, err := readOwner(t.conf.StateDir, st.PCI)
	if err != nil {
		return err
	}
	if !owner.is(rec.ContainerID, rec.IfName, rec.Netns) {
		if owner != nil {
			t.log.Warn("VF now belongs to another attachment; leaving it alone", "pci", st.PCI, "owner", owner.String())
		}
		return nil
	}
	hw := pci{fs: RootFS{Root: t.conf.SysfsRoot}}
	ctl := NewVFController(t.conf.SysfsRoot)
	var errs []error
	if st.Mode == ModeNetdev && st.Netdev != "" {
		err := returnNetdev(rec.Netns, rec.IfName, st.Netdev, st.NetdevMTU)
		if errors.Is(err, netns.ErrGone) {
			t.log.Info("pod netns is gone; looking for the VF netdev in the host", "pci", st.PCI)
			err = reclaimNetdev(hw, st.PCI, st.Netdev, st.NetdevMTU, t.conf.bindTimeout, t.log)
		}
		errs = append(errs, err)
	}
	if st.PFNetdev != "" {
		errs = append(errs, restoreVF(ctl, st.PFNetdev, st.VF, st.Original))
	}
	if st.Mode == ModeNetdev {
		errs = append(errs, restoreHostMAC(st.Netdev, st.NetdevMAC))
	}
	if st.Mode == ModeVFIO {
		errs = append(errs, restoreDriver(hw, st.PCI, st.OrigDriver, st.OrigOverride, t.conf.bindTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return err // keep the allocation: the VF is not clean
	}
	return releaseOwner(t.conf.StateDir, st.PCI, rec.ContainerID, rec.IfName, rec.Netns)
}
