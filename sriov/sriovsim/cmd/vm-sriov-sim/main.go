// Command vm-sriov-sim is vm-sriov with the simulated PF of package
// sriovsim injected: a test binary for machines without SR-IOV hardware
// (the conformance suite, Multus, Kubernetes), run with sysfsRoot pointing
// at a sriovsim tree. It is never shipped: the image and `make build`
// hold vm-sriov, which has no fake.
package main

import (
	"github.com/vmcni/vmcni/internal/plugin"
	"github.com/vmcni/vmcni/sriov"
	"github.com/vmcni/vmcni/sriov/sriovsim"
)

func main() {
	plugin.Main("vm-sriov-sim: vm-sriov on a simulated PF (tests only)",
		sriov.New().WithVFController(sriovsim.VFControllerFor).Funcs())
}
