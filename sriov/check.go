package sriov

import (
	"context"
	"fmt"
	"net"
	"path"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/netns"
	"github.com/vmcni/vmcni/internal/plugin"
)

// check is vm-sriov's CHECK, after the engine's (complete record, hint
// carried by prevResult in vfio mode; IPAM CHECK): the VF is still
// allocated to this attachment, its PF-side settings are the configured
// ones, and (vfio) it is bound to vfio-pci with its /dev/vfio node, or
// (netdev) CNI_IFNAME is in the pod netns with the recorded MAC.
func (p *Plugin) check(_ context.Context, c *plugin.Checking[*NetConf, state]) error {
	owner, err := readOwner(c.Conf.StateDir, c.State.PCI)
	if err != nil {
		return err
	}
	if !owner.is(c.Args.ContainerID, c.Args.IfName, c.Args.Netns) {
		return fmt.Errorf("VF %q is not allocated to this attachment (owner: %v)", c.State.PCI, owner)
	}
	if err := checkVF(p.vfs(c.Conf.SysfsRoot), c.Conf, c.State); err != nil {
		return err
	}
	if c.State.Mode == ModeVFIO {
		return checkVFIO(c.Conf, c.State)
	}
	return checkNetdev(c.State, c.Args)
}

// checkVF compares the VF's PF-side settings with the configured ones.
func checkVF(ctl VFController, conf *NetConf, st *state) error {
	cur, err := ctl.VF(st.PFNetdev, st.VF)
	if err != nil {
		return err
	}
	var mac net.HardwareAddr
	if conf.Mode == ModeVFIO || conf.MAC != "" {
		mac, _ = net.ParseMAC(st.GuestMAC)
	}
	want := conf.desired(st.Original, mac)
	if mac == nil && sameMAC(want.MAC, noMAC) && sameMAC(cur.MAC, st.GuestMAC) {
		// No administrative MAC wanted: igb and ixgbe report the filter
		// the VF's driver set for the pod's netdev (see add).
		cur.MAC = noMAC
	}
	for _, k := range knobs {
		if !k.equal(cur, want) {
			return fmt.Errorf("VF %q: %s is %+v, want %+v", st.PCI, k.step, cur, want)
		}
	}
	return nil
}

func checkVFIO(conf *NetConf, st *state) error {
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
	return nil
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
