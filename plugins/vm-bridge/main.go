// Command vm-bridge is the vmcni CNI plugin that plumbs a tap, a macvtap or
// an in-netns bridge for a VM-based pod. See package bridgetap.
package main

import (
	bridgetap "github.com/vmcni/vmcni/bridge-tap"
	"github.com/vmcni/vmcni/internal/plugin"
)

func main() {
	plugin.Main("vm-bridge: VM device plumbing for VM-based pods (vmcni)", bridgetap.New().Funcs())
}
