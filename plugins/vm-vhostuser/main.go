// Command vm-vhostuser is the vmcni CNI plugin that provisions vhost-user
// sockets (and OVS-DPDK ports) for VMs. See package vhostuser.
package main

import (
	"github.com/vmcni/vmcni/internal/plugin"
	"github.com/vmcni/vmcni/vhostuser"
)

func main() {
	plugin.Main("vm-vhostuser: vhost-user sockets and OVS-DPDK ports for VMs (vmcni)", vhostuser.New().Funcs())
}
