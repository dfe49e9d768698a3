package vmnet

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/vmcni/vmcni/pkg/hint"
)

// NetworkStatusAnnotation is the pod annotation in which Multus (or any NPWG
// implementation) reports the pod's attachments.
const NetworkStatusAnnotation = "k8s.v1.cni.cncf.io/network-status"

// NetworkStatus is one entry of the network-status annotation (NPWG
// multi-net spec; the fields Multus writes). Unknown fields are ignored.
type NetworkStatus struct {
	// Name is the network ("<namespace>/<NAD name>" for secondary networks).
	Name string `json:"name"`
	// Interface is the interface name in the pod (for a vmcni vhost-user
	// attachment: the pseudo-interface, "sock").
	Interface string `json:"interface,omitempty"`
	// IPs are bare addresses: the annotation has no prefix lengths.
	IPs []string `json:"ips,omitempty"`
	// MAC is the interface's MAC: for vmcni attachments, the guest MAC.
	MAC string `json:"mac,omitempty"`
	// MTU is the interface's MTU, 0 when unknown.
	MTU int `json:"mtu,omitempty"`
	// Default marks the pod's default network.
	Default bool `json:"default,omitempty"`
	// DNS is the attachment's resolver configuration.
	DNS *types.DNS `json:"dns,omitempty"`
	// Gateway are the gateways of the attachment's default routes.
	Gateway []string `json:"gateway,omitempty"`
	// DefaultRoute is the spec's older name for Gateway.
	DefaultRoute []string `json:"default-route,omitempty"`
	// DeviceInfo is the NPWG device-info of the attachment, if any.
	DeviceInfo *hint.DeviceInfo `json:"device-info,omitempty"`
}

// ParseNetworkStatus reads the network-status annotation as a pod sees it
// through a downward API volume, in either form:
//
//   - the raw value, a JSON list: the file of a volume item with
//     fieldRef metadata.annotations['k8s.v1.cni.cncf.io/network-status'];
//   - `key="value"` lines, values quoted as Go quotes them: the file of an
//     item with fieldRef metadata.annotations (all annotations); the line of
//     NetworkStatusAnnotation is used.
//
// An empty document, or annotation lines without network-status, give an
// empty list and no error: the kubelet writes the file when the container
// starts and Multus may not have annotated the pod yet (a written
// annotation always holds the default network, so it is never empty).
func ParseNetworkStatus(data []byte) ([]NetworkStatus, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, nil
	}
	if data[0] != '[' {
		value, found, err := annotationValue(data, NetworkStatusAnnotation)
		if err != nil || !found {
			return nil, err
		}
		data = []byte(value)
	}
	var statuses []NetworkStatus
	if err := json.Unmarshal(data, &statuses); err != nil {
		return nil, fmt.Errorf("decode %s: %w", NetworkStatusAnnotation, err)
	}
	return statuses, nil
}

// annotationValue finds key in downward API `key="value"` lines.
func annotationValue(data []byte, key string) (string, bool, error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		k, quoted, ok := strings.Cut(sc.Text(), "=")
		if !ok || k != key {
			continue
		}
		v, err := strconv.Unquote(quoted)
		if err != nil {
			return "", false, fmt.Errorf("annotation %s: value is not a quoted string: %w", key, err)
		}
		return v, true, nil
	}
	return "", false, sc.Err()
}

// NetworkStatusOptions say how to fill in what the annotation leaves out.
type NetworkStatusOptions struct {
	// PrefixV4 (optional) is the prefix length given to bare IPv4 addresses;
	// defaults to 24.
	PrefixV4 int
	// PrefixV6 (optional) is the prefix length given to bare IPv6
	// addresses; defaults to 64.
	PrefixV6 int
}

// PlanFromNetworkStatus builds a plan from the vhost-user attachments of a
// network-status annotation, in annotation order: one NIC per entry whose
// device-info has type "vhost-user" (entries repeating a socket path
// already seen are skipped: Multus copies an attachment's device-info into
// every interface of its result). Other entries are ignored: taps and
// macvtaps have no device-info (scan the netns with PlanFromNetns), and a
// "pci" device-info does not say whether the device is bound to vfio-pci.
//
// A NIC gets the socket path as is (the pod must see the socket's host
// directory at the same path) and the device-info mode as the VMM's role:
// NPWG "server" means the application in the pod (the VMM) creates the
// socket, which is what vm-vhostuser reports for ovs-dpdk; "client" means
// the host side listens. MAC (required), MTU, addresses, default routes
// (from "gateway" or "default-route") and DNS come from the entry; the
// annotation has no prefix lengths, so bare addresses get opt's, and no
// queue count, so a NIC has one queue pair.
func PlanFromNetworkStatus(statuses []NetworkStatus, opt NetworkStatusOptions) (*Plan, error) {
	if opt.PrefixV4 == 0 {
		opt.PrefixV4 = 24
	}
	if opt.PrefixV6 == 0 {
		opt.PrefixV6 = 64
	}
	p := &Plan{}
	seen := map[string]bool{}
	for i := range statuses {
		st := &statuses[i]
		info := st.DeviceInfo
		if info == nil || info.Type != "vhost-user" {
			continue
		}
		if info.VhostUser == nil {
			return nil, fmt.Errorf("network-status entry %d (%q): device-info type vhost-user without its section", i, st.Name)
		}
		if seen[info.VhostUser.Path] {
			continue
		}
		seen[info.VhostUser.Path] = true
		n, err := nicFromStatus(st, opt)
		if err != nil {
			return nil, fmt.Errorf("network-status entry %d (%q, interface %q): %w", i, st.Name, st.Interface, err)
		}
		p.NICs = append(p.NICs, n)
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	return p, nil
}

func nicFromStatus(st *NetworkStatus, opt NetworkStatusOptions) (NIC, error) {
	vu := st.DeviceInfo.VhostUser
	switch {
	case !filepath.IsAbs(vu.Path):
		return NIC{}, fmt.Errorf("vhost-user path %q is not absolute", vu.Path)
	case vu.Mode != "server" && vu.Mode != "client":
		return NIC{}, fmt.Errorf("vhost-user mode %q is not server or client", vu.Mode)
	case st.MAC == "":
		return NIC{}, errors.New("no mac")
	}
	n := NIC{
		Kind: hint.KindVhostUser, IfName: st.Interface, Device: filepath.Base(vu.Path),
		VhostUser: &hint.VhostUser{Socket: vu.Path, Mode: vu.Mode, Queues: 1},
		MAC:       canonicalMAC(strings.TrimSpace(st.MAC)), MTU: st.MTU, Queues: 1, DNS: st.DNS,
	}
	gateways := append(append([]string(nil), st.Gateway...), st.DefaultRoute...)
	for _, v4 := range []bool{true, false} {
		if gw := firstOfFamily(gateways, v4); gw != "" {
			dst := "::/0"
			if v4 {
				dst = "0.0.0.0/0"
			}
			n.Routes = append(n.Routes, hint.Route{Dst: dst, GW: gw})
		}
	}
	for _, s := range st.IPs {
		addr, err := withPrefix(strings.TrimSpace(s), opt)
		if err != nil {
			return NIC{}, err
		}
		ip, _, _ := net.ParseCIDR(addr)
		n.IPs = append(n.IPs, hint.IP{Address: addr, Gateway: firstOfFamily(gateways, ip.To4() != nil)})
	}
	return n, nil
}

// withPrefix returns s in CIDR form: as is when it has a prefix, else with
// opt's prefix length for its family.
func withPrefix(s string, opt NetworkStatusOptions) (string, error) {
	if strings.Contains(s, "/") {
		ip, ipnet, err := net.ParseCIDR(s)
		if err != nil {
			return "", fmt.Errorf("ip %q: %w", s, err)
		}
		ones, _ := ipnet.Mask.Size()
		return fmt.Sprintf("%s/%d", ip, ones), nil
	}
	ip := net.ParseIP(s)
	switch {
	case ip == nil:
		return "", fmt.Errorf("ip %q does not parse", s)
	case ip.To4() != nil:
		return fmt.Sprintf("%s/%d", ip, opt.PrefixV4), nil
	}
	return fmt.Sprintf("%s/%d", ip, opt.PrefixV6), nil
}

// firstOfFamily returns the first address of ips of one family (IPv4 when
// v4), "" when none.
func firstOfFamily(ips []string, v4 bool) string {
	for _, s := range ips {
		if ip := net.ParseIP(strings.TrimSpace(s)); ip != nil && (ip.To4() != nil) == v4 {
			return ip.String()
		}
	}
	return ""
}
