// Package hint is vmcni's result contract (version 1): what every vmcni plugin
// tells a VM runtime about the device the guest must attach, and where.
//
// A plugin reports an attachment three ways (four for devices in a netns,
// five with a Kata DAN file), all describing the same device.
//
// 1. The CNI result. The entry for CNI_IFNAME (the pod interface the runtime
// already knows: containerd, CRI-O and podman read the pod IP from it) keeps
// its IPs. After it the plugin appends:
//
//   - the device interface, for devices that live in the pod netns (tap,
//     macvtap): name = device name, sandbox = netns path, mac = the device's
//     MAC, mtu;
//   - the pseudo-interface (the Firecracker / tc-redirect-tap convention used
//     by firecracker-go-sdk's vmconf): name = the device name (so vmconf pairs
//     it with the device interface), sandbox = the container ID, mac = the
//     MAC the guest must use, mtu, and the CNI 1.1 fields socketPath
//     (vhost-user, memif) or pciID (vfio). Every IP of CNI_IFNAME is repeated
//     with its "interface" index pointing at the pseudo-interface.
//
// Every IP has "interface" set. A result converted to 0.4.0 still carries
// the pseudo-interface (0.4.0 has interfaces and interface indexes; only the
// 1.1 fields mtu/socketPath/pciID are dropped there, which is why the hint
// file exists).
//
// 2. The hint file, JSON, at Path(stateDir, containerID, ifname), i.e.
// <stateDir>/<containerID>/<ifname>/hint.json, stateDir defaulting to
// DefaultStateDir. It holds a Hint: hintVersion "1", the device kind and
// exactly one of the kind-specific sections (tap, macvtap, vhostUser, vfio,
// memif), and the guest section (MAC, MTU, IPs, routes, gateway, DNS). It is
// written last in ADD and removed first in DEL, so its presence means the
// attachment is complete. Readers must ignore unknown fields; new fields do
// not change hintVersion, removed or re-typed fields do.
//
// 3. The NPWG device-info file (k8snetworkplumbingwg device-info spec 1.1.0),
// written when the runtime passes the CNIDeviceInfoFile capability (Multus),
// for the kinds that spec covers: vhost-user (type "vhost-user"), memif
// (type "memif") and vfio (type "pci"). Taps and macvtaps have no device-info
// type and get none.
//
// 4. For runtimes that only scan the netns (Kata-style), every tap and
// macvtap a vmcni plugin creates carries the alias
// "vmcni:guest-mac=<mac>;queues=<n>" (DeviceAlias); vmnet.PlanFromNetns
// reads it.
//
// 5. When the config sets kataDanDir, the Kata Containers DAN file of the
// sandbox, <kataDanDir>/<containerID>.json (DanConfig): one entry per
// attachment, named by its interface, in the formats of Kata's Go runtime
// (vfio) and runtime-rs (vfio with kata-containers PR 13802, host-tap,
// vhost-user). Macvtap and memif have no DAN type.
//
// The consumers these serve: containerd, CRI-O and podman (the CNI_IFNAME
// entry), firecracker-go-sdk's vmconf and tc-redirect-tap users (the
// pseudo-interface), CNI 1.1 readers (mtu, socketPath, pciID), Multus and
// KubeVirt-style launchers (the device-info file), Kata's netns scan (the
// alias), Kata's DAN (the DAN file), and vmnet (the hint file: QEMU,
// Cloud Hypervisor and Firecracker arguments, libvirt domain XML for
// KubeVirt-style launchers).
//
// Example hint file of a tcfilter attachment made by vm-bridge:
//
//	{
//	  "hintVersion": "1",
//	  "plugin": "vm-bridge",
//	  "network": "vmnet",
//	  "containerID": "c1",
//	  "ifName": "eth0",
//	  "netns": "/var/run/netns/c1",
//	  "kind": "tap",
//	  "tap": {"name": "tap_eth0", "netns": "/var/run/netns/c1", "queues": 1, "vnetHdr": true, "wiring": "tcfilter"},
//	  "guest": {
//	    "mac": "2e:7d:1c:22:40:07",
//	    "mtu": 1500,
//	    "ips": [{"address": "10.22.0.5/24", "gateway": "10.22.0.1"}],
//	    "routes": [{"dst": "0.0.0.0/0", "gw": "10.22.0.1"}],
//	    "dns": {"nameservers": ["10.22.0.1"]}
//	  }
//	}
package hint
