package sriov

// Exported for the external test package: the lab tests compare vm-sriov's
// own sysfs lookups and the kernel's VF table with what others read.

// LookupPF is vm-sriov's lookup of a VF's PF, PF netdev and VF index.
func LookupPF(sysfsRoot, addr string) (pf, pfNetdev string, vf int, err error) {
	return pci{fs: RootFS{Root: sysfsRoot}}.PF(addr)
}

// KernelVFs reads and changes VFs through the kernel's netlink, as the
// shipped plugin does.
var KernelVFs VFController = netlinkVFs{}

// SameMAC reports whether two MAC strings name the same address.
var SameMAC = sameMAC
