package vmnet

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/vmcni/vmcni/pkg/hint"
)

// CloudHypervisorArgs returns the Cloud Hypervisor arguments that attach p's
// NICs: "--net" followed by one value per tap, macvtap and vhost-user NIC
// (id=net<i>), then "--device" followed by one value per vfio NIC. Either
// flag is left out when it has no value.
//
// fds[i] are the descriptor numbers, in the cloud-hypervisor process, of the
// opened tap or macvtap of NIC i, one per queue; nil for other kinds.
// Cloud Hypervisor counts queues, not queue pairs: num_queues is twice the
// NIC's Queues. vhost_mode is Cloud Hypervisor's role on the socket, the
// hint's mode.
//
// vhost-user needs the guest memory shared: when p.NeedsSharedMemory() the
// launcher must add shared=on to its --memory option (for example
// "--memory size=512M,shared=on"); it is not returned here because Cloud
// Hypervisor accepts a single --memory. memif is an error wrapping
// ErrUnsupported.
func CloudHypervisorArgs(p *Plan, fds [][]int) ([]string, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	if len(fds) > len(p.NICs) {
		return nil, fmt.Errorf("%d descriptor lists for %d NICs", len(fds), len(p.NICs))
	}
	var nets, devices []string
	for i := range p.NICs {
		n := &p.NICs[i]
		props := []string{"id=net" + strconv.Itoa(i)}
		switch n.Kind {
		case hint.KindTap, hint.KindMacvtap:
			var nicFDs []int
			if i < len(fds) {
				nicFDs = fds[i]
			}
			if err := checkFDs(n, nicFDs); err != nil {
				return nil, fmt.Errorf("%s: %w", n.ref(i), err)
			}
			props = append(props, "fd=["+joinInts(nicFDs, ",")+"]")
		case hint.KindVhostUser:
			if strings.ContainsAny(n.VhostUser.Socket, ",[]\"") {
				return nil, fmt.Errorf("%s: socket path %q has a character Cloud Hypervisor options cannot carry", n.ref(i), n.VhostUser.Socket)
			}
			props = append(props, "vhost_user=true", "socket="+n.VhostUser.Socket, "vhost_mode="+n.VhostUser.Mode)
		case hint.KindVFIO:
			devices = append(devices, "id=net"+strconv.Itoa(i)+",path=/sys/bus/pci/devices/"+n.VFIO.PCIAddress+"/")
			continue
		default:
			return nil, fmt.Errorf("%s: Cloud Hypervisor has no %s backend: %w", n.ref(i), n.Kind, ErrUnsupported)
		}
		props = append(props, "mac="+n.MAC)
		if n.MTU > 0 {
			props = append(props, "mtu="+strconv.Itoa(n.MTU))
		}
		props = append(props, "num_queues="+strconv.Itoa(2*n.Queues))
		nets = append(nets, strings.Join(props, ","))
	}
	var args []string
	if len(nets) > 0 {
		args = append(append(args, "--net"), nets...)
	}
	if len(devices) > 0 {
		args = append(append(args, "--device"), devices...)
	}
	return args, nil
}
