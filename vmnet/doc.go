// Package vmnet is the runtime side of the vmcni hint contract (package
// github.com/vmcni/vmcni/pkg/hint): it turns what vmcni plugins report into
// a Plan, one NIC per attachment, and renders that plan for a VMM and for the
// guest. Planning and rendering (PlanFromHints, PlanFromResult and the VMM
// argument builders) are pure functions: they open no device, enter no
// netns and touch no link; the launcher subpackage is what runs a VMM.
//
// # Inputs
//
// PlanFromHints takes hint files already read (hint.Read). PlanFromResult
// takes the CNI result the runtime got from libcni, of any version libcni
// converts (0.3.x, 0.4.0, 1.0.0, 1.1.0). For every pseudo-interface of the
// result (sandbox == container ID) it uses the hint file whose DeviceName
// equals the pseudo-interface's name, found under
// <stateDir>/<containerID>/*/hint.json; the hint is authoritative and must
// agree with the result (hint.CheckResult). Without a hint file the NIC is
// built from the result alone, which is lossy:
//
//   - socketPath set: vhost-user, the VMM being the server (memif cannot be
//     told apart from vhost-user there);
//   - pciID set: vfio (no IOMMU group or /dev/vfio path);
//   - otherwise: a single-queue tap named like the pseudo-interface, in the
//     netns named by the device interface of the same name (a macvtap is
//     not recognised; it needs its hint file);
//   - a 0.4.0 result has neither mtu, socketPath nor pciID, so only taps
//     survive the conversion, without MTU.
//
// A VM pod on Kubernetes has neither the result nor the hint files: the
// kubelet and Multus ran CNI. PlanFromNetns scans its netns for the taps
// and macvtaps vmcni marked with an alias, PlanFromNetworkStatus reads the
// vhost-user devices of Multus's network-status annotation (as the pod
// sees it through a downward API file, ParseNetworkStatus), and MergePlans
// joins the two.
//
// # Outputs
//
// QEMUArgs, CloudHypervisorArgs and FirecrackerNetworkInterfaces render the
// VMM side. NIC i is called net<i> in every VMM (netdev, chardev chr<i>,
// iface_id), and the launcher opens tap and macvtap devices itself and
// passes their descriptors: fds[i] holds NIC i's descriptor numbers as seen
// by the VMM process, one per queue. vhost-user needs guest memory shared
// with the switch: see Plan.NeedsSharedMemory.
//
// KernelIPParam, GuestCmdline and CloudInitNetworkConfig render the guest
// side. They assume NIC i shows up in the guest as eth<i> (true for the
// virtio devices QEMUArgs adds, in order, on an otherwise NIC-less VM).
// Gateways follow CNI semantics: a default gateway is taken from a default
// route (0.0.0.0/0, ::/0), whose gw defaults to the gateway of the NIC's
// address of the same family; an address's gateway alone adds no route.
package vmnet
