// Command vmnet is vmcni's reference VM launcher.
//
//	vmnet run  --conflist FILE [flags] [-- COMMAND ARGS...]
//	    Create a netns, run the conflist (CNI ADD), boot the test guest on the
//	    device the result describes, then run COMMAND (with VMNET_GUEST_IP,
//	    VMNET_GUEST_IP6, VMNET_GUEST_MAC, VMNET_GATEWAY set) or wait for a
//	    signal; finally stop the VM, CNI DEL and remove the netns.
//	vmnet plan (--result FILE --container-id ID [--state-dir DIR] | --hint FILE...) [--machine M]
//	    Print the attachment plan and the VMM arguments without booting.
//	vmnet pod [--netns PATH] [--network-status FILE] [--wait 60s] [--prefix4 24] [--prefix6 64]
//	          [--kernel K --initrd I] [--machine microvm] [--accel auto] [--memory 256]
//	          [--boot-timeout 60s] [--hostname NAME] [--probe IP]... [--probe-tcp HOST:PORT]...
//	          [--probe-wait 60s] [--cmdline ARGS] [--console] [-v]
//	    Boot the test guest on the VM devices a pod already has, as the
//	    container of a VM pod (KubeVirt's virt-launcher does the same): the
//	    kubelet and Multus ran CNI ADD, vmnet pod runs no CNI at all.
//
// # vmnet pod
//
// Devices come from two sources, merged in this order (NIC i is net<i> in
// QEMU and eth<i> in the guest; the guest configures eth0 only):
//
//   - the netns at --netns (default /proc/self/ns/net, the container's;
//     "" skips it): every tap and macvtap carrying a vmcni alias, by name
//     (vmnet.PlanFromNetns), with the addresses and routes of the pod
//     interface it is wired to. A tap is opened with TUNSETIFF inside that
//     netns, a macvtap through a private device node made from the major:minor
//     its netns's sysfs shows; without /dev/net/tun a private node is made
//     for it too. The container must be privileged (or have NET_ADMIN,
//     SYS_ADMIN, MKNOD and a device cgroup that allows the nodes).
//   - the file at --network-status: Multus's k8s.v1.cni.cncf.io/network-status
//     annotation through a downward API volume, either the raw value
//     (fieldRef metadata.annotations['k8s.v1.cni.cncf.io/network-status'],
//     recommended) or the key="value" lines of fieldRef metadata.annotations.
//     Every entry with a vhost-user device-info becomes a vhost-user NIC
//     (vmnet.PlanFromNetworkStatus): socket path as in the annotation (mount
//     the host directory at the same path), the device-info mode as QEMU's
//     role (vm-vhostuser with ovs-dpdk says "server": QEMU listens), MAC, MTU,
//     addresses with --prefix4/--prefix6 (the annotation has no prefix
//     lengths) and default routes from the entry.
//
// Planning is retried every second for up to --wait until at least one NIC
// is found and, with --network-status, the file holds the annotation (the
// kubelet writes the downward API file when the container starts and
// refreshes it after Multus annotates the pod); then it fails with what is
// missing.
//
// Output: stdout carries, in this order (lines of the guest may interleave
// with vmnet's own once QEMU runs):
//
//	VMNET-PLAN {"nics":[{"nic":"net0","kind":"tap","device":"tap_net1","ifname":"net1","where":"/proc/self/ns/net","mac":"2e:7d:1c:22:40:07","mtu":1500,"queues":1,"ips":["10.199.30.5/24"]}]}
//	VMCNI-GUEST-READY ip=10.199.30.5/24 dev=eth0 mac=2e:7d:1c:22:40:07 mtu=1500 uptime=1.52
//	VMNET-BOOTED boot=2.31s accel=tcg
//	VMCNI-PROBE-OK 10.199.30.1          (or VMCNI-PROBE-FAIL <ip>; one per --probe, any order)
//	VMCNI-PROBE-STATS 10.199.30.1 round 1: 3 packets transmitted, 3 packets received, 0% packet loss
//	VMCNI-PROBETCP-OK 10.199.30.1:8080  (or VMCNI-PROBETCP-FAIL <host:port>; one per --probe-tcp)
//	VMNET-STOPPED reason=signal         (reason=poweroff when the guest powered off)
//
// VMNET-PLAN's JSON is one vmnet.NICSummary per NIC. Guest lines are the
// test guest's console markers (every line starting with VMCNI-, see
// vmnet/guest/README.md), cut to start at the marker; --console echoes
// the whole console instead (kernel messages, QEMU's own errors) as is.
// Progress logs (-v) and errors ("vmnet: ...") go to stderr.
//
// Probes start after VMCNI-GUEST-READY and are retried until --probe-wait
// after it (a peer VM may still be booting); a boot that exceeds
// --boot-timeout is retried once. On SIGTERM or SIGINT vmnet pod stops
// QEMU (SIGTERM, then SIGKILL after 3 s), prints VMNET-STOPPED and exits
// 0, also when the signal comes before the guest is up. It exits 1 when
// planning or booting fails, or when QEMU exits with an error on its own.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = runCmd(os.Args[2:])
	case "plan":
		err = planCmd(os.Args[2:], os.Stdout)
	case "pod":
		err = podCmd(os.Args[2:], os.Stdout)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "vmnet:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: vmnet run --conflist FILE [flags] [-- COMMAND...] | vmnet plan (--result FILE --container-id ID | --hint FILE...) | vmnet pod [--netns PATH] [--network-status FILE] [flags]")
	os.Exit(2)
}
