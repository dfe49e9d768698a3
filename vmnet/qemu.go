package vmnet

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/vmcni/vmcni/pkg/hint"
)

// MemoryBackendID is the id of the shared memory backend QEMUArgs adds for
// vhost-user NICs.
const MemoryBackendID = "mem"

// QEMUOptions says how to render a plan for QEMU.
type QEMUOptions struct {
	// Machine is the QEMU machine type: "microvm" (virtio-mmio devices,
	// virtio-net-device) or "pc", "q35", "pc-*" (virtio-net-pci).
	Machine string
	// MemoryMiB is the guest memory size; required when a NIC is vhost-user
	// (the shared memory backend replaces the guest RAM, so the launcher's
	// -m must say the same size).
	MemoryMiB int
	// FDs[i] are the descriptor numbers, in the QEMU process, of the opened
	// tap or macvtap of Plan.NICs[i], one per queue; nil for other kinds.
	FDs [][]int
}

// QEMUArgs returns the QEMU arguments that attach p's NICs, in order: NIC i
// is netdev net<i> (chardev chr<i> for vhost-user).
//
// Besides -netdev, -chardev and -device options the result may hold, when a
// NIC needs them:
//
//   - shared memory (vhost-user): -object memory-backend-memfd,id=mem,... and
//     either "-M memory-backend=mem" (microvm) or "-numa node,memdev=mem" (pc,
//     q35). QEMU merges repeated -M options, so the launcher keeps its own
//     "-M microvm,..." and must pass "-m <MemoryMiB>M" (or omit -m): QEMU
//     refuses a backend whose size differs from the machine's memory;
//   - "-M pcie=on" for vfio on microvm (microvm has no PCI bus otherwise).
//
// Taps and macvtaps are passed by descriptor (opt.FDs), without vhost=on
// and without vnet_hdr= (QEMU rejects it with fd= and reads the vnet header
// flag from the descriptor). memif has no QEMU backend: an error wrapping
// ErrUnsupported. QEMU cannot set a vfio device's MAC: the guest sees the
// VF's own MAC, which the plugin set to the guest MAC.
func QEMUArgs(p *Plan, opt QEMUOptions) ([]string, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	var pci bool
	switch {
	case opt.Machine == "microvm":
	case opt.Machine == "pc", opt.Machine == "q35", strings.HasPrefix(opt.Machine, "pc-"):
		pci = true
	default:
		return nil, fmt.Errorf("QEMU machine %q: want microvm, pc, q35 or pc-*: %w", opt.Machine, ErrUnsupported)
	}
	if len(opt.FDs) > len(p.NICs) {
		return nil, fmt.Errorf("%d descriptor lists for %d NICs", len(opt.FDs), len(p.NICs))
	}
	var pre, args []string
	var shared, vfio bool
	for i := range p.NICs {
		n := &p.NICs[i]
		var fds []int
		if i < len(opt.FDs) {
			fds = opt.FDs[i]
		}
		switch n.Kind {
		case hint.KindTap, hint.KindMacvtap:
			if err := checkFDs(n, fds); err != nil {
				return nil, fmt.Errorf("%s: %w", n.ref(i), err)
			}
			netdev := fmt.Sprintf("tap,id=net%d,fd=%d", i, fds[0])
			if n.Queues > 1 {
				netdev = fmt.Sprintf("tap,id=net%d,fds=%s", i, joinInts(fds, ":"))
			}
			args = append(args, "-netdev", netdev, "-device", qemuNetDevice(i, n, pci, false))
		case hint.KindVhostUser:
			if opt.MemoryMiB <= 0 {
				return nil, fmt.Errorf("%s: vhost-user needs QEMUOptions.MemoryMiB for the shared memory backend", n.ref(i))
			}
			shared = true
			chardev := fmt.Sprintf("socket,id=chr%d,path=%s", i, qemuEscape(n.VhostUser.Socket))
			if n.VhostUser.Mode == "server" {
				chardev += ",server=on,wait=off"
			}
			netdev := fmt.Sprintf("vhost-user,id=net%d,chardev=chr%d", i, i)
			if n.Queues > 1 {
				netdev += ",queues=" + strconv.Itoa(n.Queues)
			}
			args = append(args, "-chardev", chardev, "-netdev", netdev, "-device", qemuNetDevice(i, n, pci, true))
		case hint.KindVFIO:
			vfio = true
			args = append(args, "-device", "vfio-pci,host="+qemuEscape(n.VFIO.PCIAddress))
		default:
			return nil, fmt.Errorf("%s: QEMU has no %s backend: %w", n.ref(i), n.Kind, ErrUnsupported)
		}
	}
	if shared {
		pre = append(pre, "-object", fmt.Sprintf("memory-backend-memfd,id=%s,size=%dM,share=on", MemoryBackendID, opt.MemoryMiB))
		if pci {
			pre = append(pre, "-numa", "node,memdev="+MemoryBackendID)
		} else {
			pre = append(pre, "-M", "memory-backend="+MemoryBackendID)
		}
	}
	if vfio && !pci {
		pre = append(pre, "-M", "pcie=on")
	}
	return append(pre, args...), nil
}

// qemuNetDevice renders the virtio-net device of NIC i.
func qemuNetDevice(i int, n *NIC, pci, vhostUser bool) string {
	dev := "virtio-net-device"
	if pci {
		dev = "virtio-net-pci"
	}
	props := []string{dev, fmt.Sprintf("netdev=net%d", i), "mac=" + n.MAC}
	if n.Queues > 1 {
		props = append(props, "mq=on")
	}
	if pci {
		switch {
		case vhostUser:
			props = append(props, "vectors=0") // QEMU 7.2 under TCG crashes otherwise
		case n.Queues > 1:
			props = append(props, fmt.Sprintf("vectors=%d", 2*n.Queues+2))
		}
	}
	if n.MTU > 0 {
		props = append(props, fmt.Sprintf("host_mtu=%d", n.MTU))
	}
	if pci {
		props = append(props, "romfile=")
	}
	return strings.Join(props, ",")
}

// checkFDs checks that a tap or macvtap NIC has one descriptor per queue.
func checkFDs(n *NIC, fds []int) error {
	if len(fds) != n.Queues {
		return fmt.Errorf("%d descriptors for %d queues", len(fds), n.Queues)
	}
	for _, fd := range fds {
		if fd < 0 {
			return fmt.Errorf("bad descriptor %d", fd)
		}
	}
	return nil
}

// qemuEscape escapes a QEMU option value: commas are doubled.
func qemuEscape(s string) string {
	return strings.ReplaceAll(s, ",", ",,")
}

func joinInts(v []int, sep string) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, sep)
}
