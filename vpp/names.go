package vpp

import (
	"bytes"
	"encoding/hex"
	"net"
	"strings"

	"github.com/vmcni/vmcni/internal/naming"
	"github.com/vmcni/vmcni/internal/socketdir"
	"github.com/vmcni/vmcni/vpp/vppapi"
)

// Socket file names inside the per-attachment directory. They are short so
// that a 64-character container ID and a 15-byte ifname still fit sun_path
// under the default socketDir.
const (
	vhostSocketName = "vhu.sock"
	memifSocketName = "memif.sock"
)

// TagPrefix starts every VPP interface tag vm-vpp writes.
const TagPrefix = "vmcni/"

// networkHash identifies a network in tags.
func networkHash(network string) string { return naming.Digest("network", network)[:8] }

// attachmentHash identifies (containerID, ifName) in tags.
func attachmentHash(containerID, ifName string) string {
	return naming.Digest("attachment", containerID, ifName)[:24]
}

// Tag is the tag of the VPP interface of an attachment:
//
//	vmcni/<network: 8 hex>/<containerID+ifname: 24 hex>/<ifname>
//
// The hex parts are prefixes of SHA-256 digests (a 64-character container
// ID does not fit VPP's 63 usable bytes); the ifname is there for humans.
// At most 6+8+1+24+1+15 = 55 bytes. DEL recomputes it; GC parses it.
func Tag(network, containerID, ifName string) string {
	return TagPrefix + networkHash(network) + "/" + attachmentHash(containerID, ifName) + "/" + ifName
}

// gatewaySuffix ends the tag of a network's gateway loopback.
const gatewaySuffix = "/gateway"

// GatewayTag is the tag of the l3 network's gateway loopback, which holds
// the gateway addresses every attachment interface of the network borrows
// (unnumbered):
//
//	vmcni/<network: 8 hex>/gateway
//
// It is not an attachment tag: parseTag rejects it, so DEL and GC never
// delete the loopback (it stays, like an l2 network's bridge domain).
func GatewayTag(network string) string { return TagPrefix + networkHash(network) + gatewaySuffix }

// gatewayMAC is the MAC the network's gateway loopback is created with:
// locally administered, 02:fe then the network hash. It lets the next ADD
// recognise a loopback an interrupted ADD created but did not tag yet
// (create_loopback has no tag field).
func gatewayMAC(network string) net.HardwareAddr {
	h, _ := hex.DecodeString(networkHash(network))
	return append(net.HardwareAddr{0x02, 0xfe}, h...)
}

// isGatewayLoopback reports whether i is network's gateway loopback:
// tagged GatewayTag, or an untagged loopback with gatewayMAC.
func isGatewayLoopback(i vppapi.Interface, network string) bool {
	if i.Tag == GatewayTag(network) {
		return true
	}
	return i.Tag == "" && strings.HasPrefix(i.Name, "loop") && bytes.Equal(i.MAC, gatewayMAC(network))
}

// parsedTag is a vm-vpp tag split into its parts.
type parsedTag struct {
	network, attachment string
}

// parseTag returns the parts of a vm-vpp tag; ok is false for any other tag.
func parseTag(tag string) (parsedTag, bool) {
	rest, found := strings.CutPrefix(tag, TagPrefix)
	if !found {
		return parsedTag{}, false
	}
	parts := strings.SplitN(rest, "/", 3)
	if len(parts) != 3 || len(parts[0]) != 8 || len(parts[1]) != 24 {
		return parsedTag{}, false
	}
	return parsedTag{network: parts[0], attachment: parts[1]}, true
}

// socketPaths computes and checks the socket paths of an attachment
// (<socketDir>/<containerID>/<ifName>/vhu.sock or memif.sock, package
// socketdir): the socket must fit sun_path and stay inside socketDir.
// Errors come before any side effect.
func socketPaths(conf *NetConf, containerID, ifName string) (socketdir.Paths, error) {
	name := vhostSocketName
	if conf.Interface == InterfaceMemif {
		name = memifSocketName
	}
	return socketdir.For(conf.SocketDir, containerID, ifName, name)
}
