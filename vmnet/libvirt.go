package vmnet

import (
	"fmt"
	"strconv"
	"strings"

	"libvirt.org/go/libvirtxml"

	"github.com/vmcni/vmcni/pkg/hint"
)

// LibvirtOptions is the domain LibvirtDomain renders around the NICs.
type LibvirtOptions struct {
	// Name (required) is the domain's name.
	Name string
	// Type is the libvirt domain type: "qemu" (TCG, the default) or "kvm".
	Type string
	// Machine is the QEMU machine type, default "q35" (libvirt has no
	// microvm support).
	Machine string
	// MemoryMiB defaults to 256.
	MemoryMiB int
	// CPUs defaults to the largest queue count of the NICs: virtio-net runs
	// as many queue pairs as the guest has vCPUs.
	CPUs int
	// Kernel, Initrd and Cmdline (optional) boot a kernel directly.
	Kernel, Initrd, Cmdline string
	// Console (optional) is a file the guest's serial console is written to.
	Console string
}

// LibvirtDomain returns a libvirt domain (QEMU driver) that attaches p's
// NICs as LibvirtDevices does, with the shared memory vhost-user needs
// (memfd, shared) when a NIC is vhost-user and, under TCG (Type "qemu"),
// a <qemu:override> giving each vhost-user NIC vectors=0.
func LibvirtDomain(p *Plan, o LibvirtOptions) ([]byte, error) {
	if o.Name == "" {
		return nil, fmt.Errorf("libvirt domain: no name")
	}
	devices, err := LibvirtDevices(p)
	if err != nil {
		return nil, err
	}
	if o.Type == "" {
		o.Type = "qemu"
	}
	if o.Machine == "" {
		o.Machine = "q35"
	}
	if o.MemoryMiB == 0 {
		o.MemoryMiB = 256
	}
	if o.CPUs == 0 {
		o.CPUs = 1
		for _, n := range p.NICs {
			o.CPUs = max(o.CPUs, n.Queues)
		}
	}
	if o.Console != "" {
		devices.Serials = []libvirtxml.DomainSerial{{
			Source: &libvirtxml.DomainChardevSource{File: &libvirtxml.DomainChardevSourceFile{Path: o.Console}},
			Target: &libvirtxml.DomainSerialTarget{Port: new(uint)},
		}}
	}
	dom := &libvirtxml.Domain{
		Type: o.Type, Name: o.Name,
		Memory: &libvirtxml.DomainMemory{Value: uint(o.MemoryMiB), Unit: "MiB"},
		VCPU:   &libvirtxml.DomainVCPU{Value: uint(o.CPUs)},
		OS: &libvirtxml.DomainOS{
			Type:   &libvirtxml.DomainOSType{Arch: "x86_64", Machine: o.Machine, Type: "hvm"},
			Kernel: o.Kernel, Initrd: o.Initrd, Cmdline: o.Cmdline,
		},
		Devices: devices,
	}
	if p.NeedsSharedMemory() {
		dom.MemoryBacking = &libvirtxml.DomainMemoryBacking{
			MemorySource: &libvirtxml.DomainMemorySource{Type: "memfd"},
			MemoryAccess: &libvirtxml.DomainMemoryAccess{Mode: "shared"},
		}
	}
	if o.Type == "qemu" {
		// QEMU 7.2 under TCG hangs a vhost-user virtio-net-pci with MSI-X
		// (QEMUArgs sets vectors=0 too); libvirt has no attribute for it
		for _, iface := range devices.Interfaces {
			if iface.Source != nil && iface.Source.VHostUser != nil {
				dom.QEMUOverride = appendVectorsZero(dom.QEMUOverride, iface.Alias.Name)
			}
		}
	}
	doc, err := dom.Marshal()
	if err != nil {
		return nil, fmt.Errorf("encode libvirt domain: %w", err)
	}
	return []byte(doc + "\n"), nil
}

// LibvirtDevices returns the libvirt devices of p's NICs, the way
// KubeVirt's virt-launcher attaches them with libvirt running inside the
// pod netns (libvirt 5.8 or later):
//   - tap and macvtap: <interface type='ethernet'> with <target dev=...
//     managed='no'/>: libvirt uses the device as it is, opening a tap by
//     name (TUNSETIFF, vnet_hdr) and a macvtap's /dev/tap<ifindex>, both
//     in its own netns;
//   - vhost-user: <interface type='vhostuser'> on the socket, in the
//     hint's mode (the VMM's role, as libvirt's mode attribute means);
//   - vfio: <hostdev mode='subsystem' type='pci' managed='no'> at the PCI
//     address (the plugin bound it to vfio-pci).
//
// Every interface has the guest MAC, the virtio model, the guest MTU and,
// with more than one queue, <driver queues=N/>. Memif has no libvirt
// device: an error wrapping ErrUnsupported.
func LibvirtDevices(p *Plan) (*libvirtxml.DomainDeviceList, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	devices := &libvirtxml.DomainDeviceList{}
	for i := range p.NICs {
		n := &p.NICs[i]
		iface := libvirtxml.DomainInterface{
			MAC:   &libvirtxml.DomainInterfaceMAC{Address: n.MAC},
			Model: &libvirtxml.DomainInterfaceModel{Type: "virtio"},
		}
		if n.MTU > 0 {
			iface.MTU = &libvirtxml.DomainInterfaceMTU{Size: uint(n.MTU)}
		}
		if n.Queues > 1 {
			iface.Driver = &libvirtxml.DomainInterfaceDriver{Queues: uint(n.Queues)}
		}
		switch n.Kind {
		case hint.KindTap, hint.KindMacvtap:
			iface.Source = &libvirtxml.DomainInterfaceSource{Ethernet: &libvirtxml.DomainInterfaceSourceEthernet{}}
			iface.Target = &libvirtxml.DomainInterfaceTarget{Dev: n.Device, Managed: "no"}
		case hint.KindVhostUser:
			iface.Alias = &libvirtxml.DomainAlias{Name: fmt.Sprintf("ua-net%d", i)}
			iface.Source = &libvirtxml.DomainInterfaceSource{VHostUser: &libvirtxml.DomainInterfaceSourceVHostUser{
				Chardev: &libvirtxml.DomainChardevSource{UNIX: &libvirtxml.DomainChardevSourceUNIX{
					Path: n.VhostUser.Socket, Mode: n.VhostUser.Mode,
				}},
			}}
		case hint.KindVFIO:
			addr, err := libvirtPCIAddress(n.VFIO.PCIAddress)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", n.ref(i), err)
			}
			devices.Hostdevs = append(devices.Hostdevs, libvirtxml.DomainHostdev{
				Managed:   "no",
				SubsysPCI: &libvirtxml.DomainHostdevSubsysPCI{Source: &libvirtxml.DomainHostdevSubsysPCISource{Address: addr}},
			})
			continue
		default:
			return nil, fmt.Errorf("%s: libvirt has no %s device: %w", n.ref(i), n.Kind, ErrUnsupported)
		}
		devices.Interfaces = append(devices.Interfaces, iface)
	}
	return devices, nil
}

// libvirtPCIAddress parses domain:bus:slot.function (hex).
func libvirtPCIAddress(s string) (*libvirtxml.DomainAddressPCI, error) {
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == ':' || r == '.' })
	if len(fields) != 4 {
		return nil, fmt.Errorf("PCI address %q is not domain:bus:slot.function", s)
	}
	var v [4]uint
	for i, f := range fields {
		x, err := strconv.ParseUint(f, 16, 32)
		if err != nil {
			return nil, fmt.Errorf("PCI address %q: %w", s, err)
		}
		v[i] = uint(x)
	}
	return &libvirtxml.DomainAddressPCI{Domain: &v[0], Bus: &v[1], Slot: &v[2], Function: &v[3]}, nil
}

// appendVectorsZero adds vectors=0 for the device called alias to a
// <qemu:override>.
func appendVectorsZero(o *libvirtxml.DomainQEMUOverride, alias string) *libvirtxml.DomainQEMUOverride {
	if o == nil {
		o = &libvirtxml.DomainQEMUOverride{}
	}
	o.Devices = append(o.Devices, libvirtxml.DomainQEMUOverrideDevice{
		Alias: alias,
		Frontend: libvirtxml.DomainQEMUOverrideFrontend{Properties: []libvirtxml.DomainQEMUOverrideProperty{
			{Name: "vectors", Type: "unsigned", Value: "0"},
		}},
	})
	return o
}
