// Command vm-vpp is the vmcni CNI plugin that gives a VM-based pod a
// vhost-user or memif NIC on FD.io VPP. See package vpp.
package main

import (
	"github.com/vmcni/vmcni/internal/plugin"
	"github.com/vmcni/vmcni/vpp"
)

func main() {
	plugin.Main("vm-vpp: VPP vhost-user and memif interfaces for VM-based pods (vmcni)", vpp.New().Funcs())
}
