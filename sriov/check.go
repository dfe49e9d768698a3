package sriov

import (
	"context"
	"fmt"
	"net"
	"path"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/vmcni/vmcni/internal/cnierr"
	"github.com/vmcni/vmcni/internal/ipam"
	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/netns"
	"github.com/vmcni/vmcni/internal/plugin"
	"github.com/vmcni/vmcni/internal/store"
	"github.com/vmcni/vmcni/pkg/hint"
)

// Check implements CNI CHECK: the record is complete, the VF is still
// allocated to this attachment, its PF-side settings are the configured
// ones, and (vfio) it is bound to vfio-pci with its /dev/vfio node and the
// hint matches prevResult, or (netdev) CNI_IFNAME is in the pod netns with
// the recorded MAC; then IPAM CHECK.
func (p *Plugin) Check(args *skel.CmdArgs) error {
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
	if conf.Prev == nil {
		return cnierr.Config("CHECK needs prevResult")
	}
	rec, err := store.New(conf.StateDir).GetComplete(args.ContainerID, args.IfName)
	if err != nil {
		return err
	}
	st, err := stateOf(rec)
	if err != nil {
		return err
	}
	owner, err := readOwner(conf.StateDir, st.PCI)
	if err != nil {
		return err
	}
	if !owner.is(rec.ContainerID, rec.IfName, rec.Netns) {
		return fmt.Errorf("VF %q is not allocated to this attachment (owner: %v)", st.PCI, owner)
	}
	if err := checkVF(conf, st); err != nil {
		return err
	}
	if st.Mode == ModeVFIO {
		if err := checkVFIO(conf, st, args); err != nil {
			return err
		}
	} else if err := checkNetdev(st, args); err != nil {
		return err
	}
	if conf.IPAM.Type == "" {
		return nil
	}
	a := ipam.Attachment{ContainerID: args.ContainerID, Netns: args.Netns, IfName: args.IfName, Args: args.Args}
	return ipam.Delegate{Type: conf.IPAM.Type, Config: args.StdinData}.Check(context.Background(), a)
}

// checkVF compares the VF's PF-side settings with the configured ones.
func checkVF(conf *NetConf, st *state) error {
	cur, err := NewVFController(conf.SysfsRoot).VF(st.PFNetdev, st.VF)
	if err != nil {
		return err
	}
	var mac net.HardwareAddr
	if conf.Mode == ModeVFIO || conf.MAC != "" {
		mac, _ = net.ParseMAC(st.GuestMAC)
	}
	want := conf.desired(st.Original, mac)
	for _, k := range knobs {
		if !k.equal(cur, want) {
			return fmt.Errorf("VF %q: %s is %+v, want %+v", st.PCI, k.step, cur, want)
		}
	}
	return nil
}

func checkVFIO(conf *NetConf, st *state, args *skel.CmdArgs) error {
	hw := pci{fs: RootFS{Root: conf.SysfsRoot}}
	drv, err := hw.Driver(st.PCI)
	if err != nil {
		return err
	}
	if drv != VFIODriver {
		return fmt.Errorf("VF %q is bound to %q, not %q", st.PCI, drv, VFIODriver)
	}
	if !hw.fs.Exists(path.Join("dev/vfio", st.IOMMUGroup)) {
		return fmt.Errorf("VFIO group node %q is missing", hw.fs.Path(path.Join("dev/vfio", st.IOMMUGroup)))
	}
	h, err := hint.Read(conf.StateDir, args.ContainerID, args.IfName)
	if err != nil {
		return fmt.Errorf("hint: %w", err)
	}
	return hint.CheckResult(conf.Prev, h)
}

func checkNetdev(st *state, args *skel.CmdArgs) error {
	return netns.Do(args.Netns, func() error {
		l, err := link.ByName(args.IfName)
		if err != nil {
			return err
		}
		if st.GuestMAC != "" && l.Attrs().HardwareAddr.String() != st.GuestMAC {
			return fmt.Errorf("%q has mac %s, want %s", args.IfName, l.Attrs().HardwareAddr, st.GuestMAC)
		}
		return nil
	})
}
