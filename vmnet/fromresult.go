package vmnet

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/vmcni/vmcni/pkg/hint"
)

// PlanFromResult builds a plan with one NIC per pseudo-interface of res (the
// interfaces whose sandbox is containerID), in result order. res may be of
// any version libcni converts to 1.1.0. stateDir is the plugins' state
// directory, hint.DefaultStateDir when empty.
//
// A NIC comes from the hint file whose DeviceName equals the
// pseudo-interface's name (among <stateDir>/<containerID>/*/hint.json; the
// guest MAC breaks ties), and that hint must agree with res
// (hint.CheckResult). Without one it is built from res alone, as the package
// documentation describes. Hint files matching no pseudo-interface (other
// networks of the same container) are ignored; unreadable or invalid ones
// are an error.
func PlanFromResult(res types.Result, containerID, stateDir string) (*Plan, error) {
	if res == nil {
		return nil, errors.New("nil CNI result")
	}
	if err := hint.ValidateKey(containerID, "x"); err != nil {
		return nil, err
	}
	if stateDir == "" {
		stateDir = hint.DefaultStateDir
	}
	r, err := toCurrent(res)
	if err != nil {
		return nil, err
	}
	hints, err := readHints(stateDir, containerID)
	if err != nil {
		return nil, err
	}
	pseudo := hint.PseudoInterfaces(r, containerID)
	if len(pseudo) == 0 {
		return nil, fmt.Errorf("CNI result has no pseudo-interface (sandbox %q)", containerID)
	}
	p := &Plan{}
	for _, idx := range pseudo {
		iface := r.Interfaces[idx]
		h, err := pickHint(hints[iface.Name], iface.Mac)
		if err != nil {
			return nil, fmt.Errorf("pseudo-interface %q: %w", iface.Name, err)
		}
		var n NIC
		if h != nil {
			if err = hint.CheckResult(r, h); err != nil {
				return nil, fmt.Errorf("hint %q disagrees with the CNI result: %w",
					hint.Path(stateDir, h.ContainerID, h.IfName), err)
			}
			n, err = nicFromHint(h)
		} else {
			n, err = nicFromResult(r, idx, containerID)
		}
		if err != nil {
			return nil, fmt.Errorf("pseudo-interface %q: %w", iface.Name, err)
		}
		p.NICs = append(p.NICs, n)
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	return p, nil
}

// toCurrent converts res to a 1.1.0 result. A *current.Result without a
// version is taken as is.
func toCurrent(res types.Result) (*current.Result, error) {
	if r, ok := res.(*current.Result); ok && r.CNIVersion == "" {
		return r, nil
	}
	r, err := current.NewResultFromResult(res)
	if err != nil {
		return nil, fmt.Errorf("convert CNI result version %q: %w", res.Version(), err)
	}
	return r, nil
}

// readHints loads the hint files of containerID, keyed by device name. A
// missing container directory or attachment without a hint file is not an
// error; an invalid hint file is.
func readHints(stateDir, containerID string) (map[string][]*hint.Hint, error) {
	entries, err := os.ReadDir(filepath.Join(stateDir, containerID))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read hint files: %w", err)
	}
	out := map[string][]*hint.Hint{}
	for _, e := range entries {
		if !e.IsDir() || hint.ValidateKey(containerID, e.Name()) != nil {
			continue // not an attachment directory
		}
		h, err := hint.Read(stateDir, containerID, e.Name())
		if errors.Is(err, os.ErrNotExist) {
			continue // attachment in progress, or not a vmcni one
		}
		if err != nil {
			return nil, fmt.Errorf("hint %q: %w", hint.Path(stateDir, containerID, e.Name()), err)
		}
		if h.ContainerID != containerID || h.IfName != e.Name() {
			return nil, fmt.Errorf("hint %q is for container %q, ifName %q",
				hint.Path(stateDir, containerID, e.Name()), h.ContainerID, h.IfName)
		}
		out[h.DeviceName()] = append(out[h.DeviceName()], h)
	}
	return out, nil
}

// pickHint chooses among the hints naming a device: the only one, or the
// only one with the guest MAC mac. It returns nil when there is none.
func pickHint(hints []*hint.Hint, mac string) (*hint.Hint, error) {
	if len(hints) <= 1 {
		if len(hints) == 0 {
			return nil, nil
		}
		return hints[0], nil
	}
	var match []*hint.Hint
	for _, h := range hints {
		if sameMAC(h.Guest.MAC, mac) {
			match = append(match, h)
		}
	}
	if len(match) != 1 {
		var names []string
		for _, h := range hints {
			names = append(names, h.IfName)
		}
		return nil, fmt.Errorf("%d hint files (ifNames %q) name this device, %d with mac %q",
			len(hints), names, len(match), mac)
	}
	return match[0], nil
}

// nicFromResult builds the NIC of the pseudo-interface at index idx from res
// alone.
func nicFromResult(r *current.Result, idx int, containerID string) (NIC, error) {
	iface := r.Interfaces[idx]
	n := NIC{
		ContainerID: containerID, IfName: podIfName(r, idx, containerID), Device: iface.Name,
		MAC: canonicalMAC(iface.Mac), MTU: iface.Mtu, Queues: 1,
		IPs: ipsOf(r, idx), Routes: routesOf(r), DNS: dnsOf(r),
	}
	switch {
	case iface.SocketPath != "":
		n.Kind = hint.KindVhostUser
		n.VhostUser = &hint.VhostUser{Socket: iface.SocketPath, Mode: "server", Queues: 1}
	case iface.PciID != "":
		n.Kind = hint.KindVFIO
		n.VFIO = &hint.VFIO{PCIAddress: iface.PciID}
	default:
		dev := deviceInterface(r, iface.Name, containerID)
		if dev == nil {
			return NIC{}, fmt.Errorf("no hint file, no socketPath or pciID, and no device interface %q in a netns: cannot tell the device", iface.Name)
		}
		n.Kind, n.Netns = hint.KindTap, dev.Sandbox
		n.Tap = &hint.Tap{Name: iface.Name, Netns: dev.Sandbox, Queues: 1, VnetHdr: true}
		if n.MTU == 0 {
			n.MTU = dev.Mtu
		}
	}
	return n, nil
}

// inNetns reports whether iface lives in a pod netns (not on the host, not a
// pseudo-interface).
func inNetns(iface *current.Interface, containerID string) bool {
	return iface.Sandbox != "" && iface.Sandbox != containerID
}

// deviceInterface finds the tap/macvtap entry named name in a pod netns.
func deviceInterface(r *current.Result, name, containerID string) *current.Interface {
	for _, iface := range r.Interfaces {
		if iface.Name == name && inNetns(iface, containerID) {
			return iface
		}
	}
	return nil
}

// podIfName finds the pod interface whose addresses the pseudo-interface at
// idx repeats; "" when there is none (vhost-user, vfio).
func podIfName(r *current.Result, idx int, containerID string) string {
	want := addressesOf(r, idx)
	if len(want) == 0 {
		return ""
	}
	for i, iface := range r.Interfaces {
		if i != idx && iface.Name != r.Interfaces[idx].Name && inNetns(iface, containerID) &&
			slices.Equal(addressesOf(r, i), want) {
			return iface.Name
		}
	}
	return ""
}

func addressesOf(r *current.Result, idx int) []string {
	var out []string
	for _, ip := range r.IPs {
		if ip.Interface != nil && *ip.Interface == idx {
			out = append(out, ip.Address.String())
		}
	}
	slices.Sort(out)
	return out
}

func ipsOf(r *current.Result, idx int) []hint.IP {
	var out []hint.IP
	for _, ip := range r.IPs {
		if ip.Interface == nil || *ip.Interface != idx {
			continue
		}
		gip := hint.IP{Address: ip.Address.String()}
		if ip.Gateway != nil {
			gip.Gateway = ip.Gateway.String()
		}
		out = append(out, gip)
	}
	return out
}

func routesOf(r *current.Result) []hint.Route {
	var out []hint.Route
	for _, rt := range r.Routes {
		out = append(out, hint.RouteFromCNI(rt))
	}
	return out
}

func dnsOf(r *current.Result) *types.DNS {
	if r.DNS.IsEmpty() {
		return nil
	}
	return r.DNS.Copy()
}

func sameMAC(a, b string) bool {
	ma, errA := net.ParseMAC(a)
	mb, errB := net.ParseMAC(b)
	return errA == nil && errB == nil && ma.String() == mb.String()
}
