package vmnet

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/vmcni/vmcni/pkg/hint"
)

// ErrUnsupported is wrapped by the errors of renderers asked for a device
// kind (or a feature) the target VMM cannot attach.
var ErrUnsupported = errors.New("not supported")

// NIC is one guest network device: what to attach (Kind and its section),
// and how the guest must configure it.
type NIC struct {
	// Kind is the device kind; exactly the matching section below is set.
	Kind hint.Kind
	// ContainerID is the attachment's container ID.
	ContainerID string
	// IfName is the attachment's CNI_IFNAME (the pod interface), empty when
	// the plan was built from a result that does not show it.
	IfName string
	// Device is the device's name in the CNI result: the tap or macvtap
	// name, the socket's base name (vhost-user, memif) or the PCI address
	// (vfio).
	Device string
	// Netns is, for tap and macvtap, the netns path where the device must be
	// opened; empty for other kinds.
	Netns string

	Tap       *hint.Tap       // set for KindTap
	Macvtap   *hint.Macvtap   // set for KindMacvtap
	VhostUser *hint.VhostUser // set for KindVhostUser
	VFIO      *hint.VFIO      // set for KindVFIO
	Memif     *hint.Memif     // set for KindMemif

	// MAC is the guest's MAC, in canonical lower-case form.
	MAC string
	// MTU is the guest MTU; 0 when unknown.
	MTU int
	// Queues is the number of queue pairs, at least 1 (always 1 for vfio).
	Queues int
	// IPs are the guest's addresses in CIDR form, with their gateways.
	IPs []hint.IP
	// Routes are the guest's routes.
	Routes []hint.Route
	// DNS is the guest's resolver configuration, nil when none.
	DNS *types.DNS
}

// Plan is the list of NICs to give a VM, in guest order: NIC i is net<i> in
// the VMM and eth<i> in the guest.
type Plan struct {
	NICs []NIC
}

// PlanFromHints builds a plan with one NIC per hint, in order. Every hint is
// validated (hint.Hint.Validate), and so is the resulting plan (unique MACs).
func PlanFromHints(hints ...*hint.Hint) (*Plan, error) {
	p := &Plan{}
	for i, h := range hints {
		if h == nil {
			return nil, fmt.Errorf("hint %d is nil", i)
		}
		n, err := nicFromHint(h)
		if err != nil {
			return nil, fmt.Errorf("hint %d (container %q, ifName %q): %w", i, h.ContainerID, h.IfName, err)
		}
		p.NICs = append(p.NICs, n)
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	return p, nil
}

// MergePlans concatenates plans, in order, into one plan (NIC i of the
// result is net<i> and eth<i>), skipping nil plans, and validates it: two
// sources must not give the same MAC.
func MergePlans(plans ...*Plan) (*Plan, error) {
	p := &Plan{}
	for _, q := range plans {
		if q != nil {
			p.NICs = append(p.NICs, q.NICs...)
		}
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	return p, nil
}

// NeedsSharedMemory reports whether some NIC needs the guest memory to be
// shared with another process: a vhost-user NIC (the switch reads and writes
// the guest's buffers). QEMUArgs adds the memory backend itself; a Cloud
// Hypervisor launcher must add shared=on to its --memory option.
func (p *Plan) NeedsSharedMemory() bool {
	if p == nil {
		return false
	}
	for i := range p.NICs {
		if p.NICs[i].Kind == hint.KindVhostUser {
			return true
		}
	}
	return false
}

// nicFromHint converts a validated hint into a NIC.
func nicFromHint(h *hint.Hint) (NIC, error) {
	if err := h.Validate(); err != nil {
		return NIC{}, err
	}
	n := NIC{
		Kind: h.Kind, ContainerID: h.ContainerID, IfName: h.IfName, Device: h.DeviceName(),
		Tap: h.Tap, Macvtap: h.Macvtap, VhostUser: h.VhostUser, VFIO: h.VFIO, Memif: h.Memif,
		MAC: canonicalMAC(h.Guest.MAC), MTU: h.Guest.MTU, Queues: 1,
		IPs: h.Guest.IPs, Routes: h.Guest.Routes, DNS: h.Guest.DNS,
	}
	switch h.Kind {
	case hint.KindTap:
		n.Netns, n.Queues = h.Tap.Netns, h.Tap.Queues
	case hint.KindMacvtap:
		n.Netns, n.Queues = h.Macvtap.Netns, h.Macvtap.Queues
	case hint.KindVhostUser:
		n.Queues = h.VhostUser.Queues
	case hint.KindMemif:
		n.Queues = h.Memif.Queues
	}
	if n.Queues == 0 {
		n.Queues = 1
	}
	if (n.Kind == hint.KindTap || n.Kind == hint.KindMacvtap) && n.Netns == "" {
		n.Netns = h.Netns
	}
	return n, nil
}

// validate checks every NIC and that no two NICs share a MAC. Renderers call
// it too, so hand-made plans fail cleanly instead of panicking.
func (p *Plan) validate() error {
	if p == nil {
		return errors.New("nil plan")
	}
	seen := map[string]int{}
	for i := range p.NICs {
		n := &p.NICs[i]
		if err := n.validate(); err != nil {
			return fmt.Errorf("%s: %w", n.ref(i), err)
		}
		mac := canonicalMAC(n.MAC)
		if j, dup := seen[mac]; dup {
			return fmt.Errorf("%s: mac %q already used by NIC %d", n.ref(i), n.MAC, j)
		}
		seen[mac] = i
	}
	return nil
}

func (n *NIC) validate() error {
	sections := map[hint.Kind]bool{
		hint.KindTap: n.Tap != nil, hint.KindMacvtap: n.Macvtap != nil,
		hint.KindVhostUser: n.VhostUser != nil, hint.KindVFIO: n.VFIO != nil, hint.KindMemif: n.Memif != nil,
	}
	set, known := sections[n.Kind]
	switch {
	case !known:
		return fmt.Errorf("unknown device kind %q", n.Kind)
	case !set:
		return fmt.Errorf("kind %q without its section", n.Kind)
	case n.Device == "":
		return errors.New("no device name")
	case n.Queues < 1:
		return fmt.Errorf("queues %d, want at least 1", n.Queues)
	case n.MTU < 0:
		return fmt.Errorf("negative mtu %d", n.MTU)
	}
	if _, err := net.ParseMAC(n.MAC); err != nil {
		return fmt.Errorf("mac: %w", err)
	}
	for _, ip := range n.IPs {
		if _, _, err := net.ParseCIDR(ip.Address); err != nil {
			return fmt.Errorf("ip: %w", err)
		}
		if ip.Gateway != "" && net.ParseIP(ip.Gateway) == nil {
			return fmt.Errorf("ip %q: bad gateway %q", ip.Address, ip.Gateway)
		}
	}
	for _, r := range n.Routes {
		if _, _, err := net.ParseCIDR(r.Dst); err != nil {
			return fmt.Errorf("route: %w", err)
		}
		if r.GW != "" && net.ParseIP(r.GW) == nil {
			return fmt.Errorf("route %q: bad gw %q", r.Dst, r.GW)
		}
	}
	return nil
}

// ref names NIC i in error messages.
func (n *NIC) ref(i int) string {
	if n.IfName != "" {
		return fmt.Sprintf("NIC %d (%s %q, ifName %q)", i, n.Kind, n.Device, n.IfName)
	}
	return fmt.Sprintf("NIC %d (%s %q)", i, n.Kind, n.Device)
}

// location is where the device is found: netns, socket path or PCI address.
func (n *NIC) location() string {
	switch n.Kind {
	case hint.KindVhostUser:
		return n.VhostUser.Socket + " (" + n.VhostUser.Mode + ")"
	case hint.KindMemif:
		return n.Memif.Socket + " (" + n.Memif.Role + ")"
	case hint.KindVFIO:
		return n.VFIO.DevicePath
	}
	return n.Netns
}

// NICSummary is one NIC of a plan in a compact form, for logs and JSON.
type NICSummary struct {
	// NIC is the VMM's name of the NIC, net<i>.
	NIC string `json:"nic"`
	// Kind is the device kind.
	Kind hint.Kind `json:"kind"`
	// Device, IfName, MAC, MTU and Queues are the NIC's.
	Device string `json:"device"`
	IfName string `json:"ifname,omitempty"`
	// Where is the netns path (tap, macvtap), the socket path and the VMM's
	// role on it (vhost-user, memif) or the /dev/vfio path (vfio).
	Where  string `json:"where,omitempty"`
	MAC    string `json:"mac"`
	MTU    int    `json:"mtu,omitempty"`
	Queues int    `json:"queues"`
	// IPs are the guest's addresses in CIDR form.
	IPs []string `json:"ips,omitempty"`
}

// Summary returns one NICSummary per NIC, in order.
func (p *Plan) Summary() []NICSummary {
	out := make([]NICSummary, 0, len(p.NICs))
	for i := range p.NICs {
		n := &p.NICs[i]
		s := NICSummary{NIC: fmt.Sprintf("net%d", i), Kind: n.Kind, Device: n.Device, IfName: n.IfName,
			Where: n.location(), MAC: n.MAC, MTU: n.MTU, Queues: n.Queues}
		for _, ip := range n.IPs {
			s.IPs = append(s.IPs, ip.Address)
		}
		out = append(out, s)
	}
	return out
}

// String renders the plan as a table, one line per NIC, for humans.
func (p *Plan) String() string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "NIC\tKIND\tDEVICE\tIFNAME\tWHERE\tMAC\tMTU\tQUEUES\tIPS")
	for _, n := range p.Summary() {
		mtu := "-"
		if n.MTU > 0 {
			mtu = strconv.Itoa(n.MTU)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", n.NIC, n.Kind, n.Device,
			dash(n.IfName), dash(n.Where), n.MAC, mtu, n.Queues, dash(strings.Join(n.IPs, ",")))
	}
	_ = w.Flush()
	return b.String()
}

// canonicalMAC returns mac in net.HardwareAddr's lower-case form, or as is
// when it does not parse.
func canonicalMAC(mac string) string {
	if hw, err := net.ParseMAC(mac); err == nil {
		return hw.String()
	}
	return mac
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
