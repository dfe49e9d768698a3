// Command vm-sriov is the vmcni CNI plugin that hands an SR-IOV VF to a pod,
// as a netdev or bound to vfio-pci for a VM. See package sriov.
package main

import (
	"github.com/vmcni/vmcni/internal/plugin"
	"github.com/vmcni/vmcni/sriov"
)

func main() {
	plugin.Main("vm-sriov: SR-IOV VFs for VMs (vfio) and containers (netdev) (vmcni)", sriov.New().Funcs())
}
