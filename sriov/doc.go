// Package sriov is the logic of the vm-sriov CNI plugin: it hands one SR-IOV
// virtual function (VF) to a pod, either as a kernel netdev (mode netdev,
// for containers) or bound to vfio-pci for a VMM to pass through (mode
// vfio, for VM-based pods: Kata, Cloud Hypervisor, QEMU).
//
// # Device selection
//
// The VF is deviceID from the config, else runtimeConfig.deviceID, else the
// pci-address of the NPWG device-info file at runtimeConfig.CNIDeviceInfoFile
// when that file already exists at ADD (written by a device plugin). Its PF
// is found through the VF's physfn link, its index through the PF's virtfnN
// links, the PF netdev through the PF's net/ directory.
//
// # Contract
//
// ADD, in order: parse and validate the whole config (mac, vlan 0-4094,
// vlanQoS 0-7, vlanProto, spoofchk, trust, link_state, min_tx_rate <=
// max_tx_rate), resolve the VF, check the mode is possible (netdev: a
// netdev exists; vfio: an IOMMU group whose other devices are all bound to
// vfio-pci, pci-stub, pcieport or nothing, else code 7) — all before any
// change. Then, under the per-VF lock (<stateDir>/.vf/<pci>/lock), refuse a
// VF allocated to another attachment (code 11, naming the owner), write the
// attachment record with the VF's original PF-side state, driver,
// driver_override and netdev name/MAC/MTU, write the allocation
// (<stateDir>/.vf/<pci>/owner.json, keyed by container ID, ifname and
// netns), and only then change things, pushing an undo step after each:
//
//   - vfio: unbind from the current driver, driver_override = "vfio-pci",
//     drivers_probe, wait until bound to vfio-pci and /dev/vfio/<group>
//     exists; then the PF-side settings (admin MAC = guest MAC, vlan,
//     spoofchk, trust, link state, rates); IPAM (optional); the device-info
//     file; the hint file.
//   - netdev: the PF-side settings; the VF netdev moved into the pod netns
//     and renamed CNI_IFNAME in one netlink request; MAC and MTU set (a VF
//     driver refused the MAC is reset with a link down, so that it adopts
//     the administrative MAC, as igbvf does), link up; IPAM (optional) and
//     its addresses and routes.
//
// A PF-side setting the PF's driver refuses fails ADD with code 7
// (EOPNOTSUPP, EPROTONOSUPPORT, EINVAL, ERANGE) or 11 (EAGAIN, EBUSY),
// naming the PF, its driver and the config keys. Undo steps set a knob
// back only when the kernel reports another value. A PF-side MAC equal to
// the VF netdev's own is recorded as no administrative MAC (igb and ixgbe
// report the VF driver's own MAC filter there).
//
// A failed ADD rolls everything back; a crashed one leaves an incomplete
// record that the next ADD of the same attachment, DEL or GC undoes.
//
// Result (netdev): one interface, CNI_IFNAME with sandbox = netns, the MAC,
// MTU and CNI 1.1 pciID; IPs point at it. Result (vfio): per package hint's
// contract v1, the pseudo-interface (name = PCI address, sandbox = container
// ID, mac = guest MAC, pciID) with the IPs, if any, pointed at it (there is
// no pod interface). Hint file (vfio only): kind "vfio" with PCI address,
// IOMMU group and /dev/vfio/<group> (under sysfsRoot), guest MAC, MTU, IPs,
// routes and DNS. NPWG device-info (vfio only, when CNIDeviceInfoFile is
// given and no device plugin wrote it already): type "pci", pci-address.
// Netdev mode writes no hint: the pod uses the VF as a normal interface.
//
// DEL is idempotent and best effort. Without a record it touches no VF (a
// stale or repeated DEL must never reset a VF; deviceID in the config is not
// trusted for that) and only releases IPAM. With a record, it acts on the VF
// only while the allocation still names this attachment; then it returns the
// netdev to the host under its original name (a vanished netns is fine: the
// kernel returns a physical netdev to the init netns, asynchronously, so DEL
// waits up to bindTimeout for it there and renames it back), restores the
// PF-side settings, then the driver (driver_override restored, unbind from
// vfio-pci, drivers_probe) and the netdev the driver makes again (name,
// MTU, MAC as before ADD; a name another VF's new netdev holds meanwhile
// is waited for under a temporary name), releases IPAM and the
// allocation, and deletes the record. GC does the same for every vm-sriov
// record of the network not in cni.dev/valid-attachments. STATUS fails with
// code 50 when sysfsRoot lacks sys/bus/pci, or (vfio) dev/vfio.
//
// # Seams
//
// Every sysfs and /dev access goes through FS, rooted at sysfsRoot. Every
// PF-side netlink call goes through VFController; production uses netlink,
// and FakePF (a file in a simulated sysfsRoot, never "/") stands in for it
// on machines without SR-IOV hardware.
package sriov
