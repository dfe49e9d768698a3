package vppapi

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"go.fd.io/govpp/api"
	interfaces "go.fd.io/govpp/binapi/interface"
	"go.fd.io/govpp/binapi/ip"
	"go.fd.io/govpp/binapi/l2"
	"go.fd.io/govpp/binapi/memif"
	"go.fd.io/govpp/binapi/vhost_user"
)

// Feature names a group of binapi messages a command needs; Dial checks the
// CRCs of exactly these groups, so a VPP without the memif plugin still
// serves a vhost-user network.
type Feature string

// The message groups.
const (
	FeatureInterface Feature = "interface"  // dump, tag, MTU, admin state (always checked)
	FeatureVhostUser Feature = "vhost-user" // vhost_user plugin
	FeatureMemif     Feature = "memif"      // memif plugin
	FeatureL2        Feature = "l2"         // bridge domains
	FeatureL3        Feature = "l3"         // gateway loopback, addresses, unnumbered, routes
)

// messages are the requests and replies of each feature, in the CRCs of
// the pinned binapi (govpp v0.12.0, VPP 25.02).
var messages = map[Feature][]api.Message{
	FeatureInterface: {
		&interfaces.SwInterfaceDump{}, &interfaces.SwInterfaceDetails{},
		&interfaces.SwInterfaceTagAddDel{}, &interfaces.SwInterfaceTagAddDelReply{},
		&interfaces.SwInterfaceSetMtu{}, &interfaces.SwInterfaceSetMtuReply{},
		&interfaces.SwInterfaceSetFlags{}, &interfaces.SwInterfaceSetFlagsReply{},
	},
	FeatureVhostUser: {
		&vhost_user.CreateVhostUserIfV2{}, &vhost_user.CreateVhostUserIfV2Reply{},
		&vhost_user.DeleteVhostUserIf{}, &vhost_user.DeleteVhostUserIfReply{},
	},
	FeatureMemif: {
		&memif.MemifSocketFilenameAddDelV2{}, &memif.MemifSocketFilenameAddDelV2Reply{},
		&memif.MemifSocketFilenameDump{}, &memif.MemifSocketFilenameDetails{},
		&memif.MemifCreateV2{}, &memif.MemifCreateV2Reply{},
		&memif.MemifDelete{}, &memif.MemifDeleteReply{},
		&memif.MemifDump{}, &memif.MemifDetails{},
	},
	FeatureL2: {
		&l2.BridgeDomainDump{}, &l2.BridgeDomainDetails{},
		&l2.BridgeDomainAddDelV2{}, &l2.BridgeDomainAddDelV2Reply{},
		&l2.SwInterfaceSetL2Bridge{}, &l2.SwInterfaceSetL2BridgeReply{},
	},
	FeatureL3: {
		&interfaces.CreateLoopback{}, &interfaces.CreateLoopbackReply{},
		&interfaces.DeleteLoopback{}, &interfaces.DeleteLoopbackReply{},
		&interfaces.SwInterfaceAddDelAddress{}, &interfaces.SwInterfaceAddDelAddressReply{},
		&ip.IPAddressDump{}, &ip.IPAddressDetails{},
		&interfaces.SwInterfaceSetUnnumbered{}, &interfaces.SwInterfaceSetUnnumberedReply{},
		&ip.IPUnnumberedDump{}, &ip.IPUnnumberedDetails{},
		&ip.IPRouteAddDel{}, &ip.IPRouteAddDelReply{},
		&ip.IPRouteDump{}, &ip.IPRouteDetails{},
	},
}

// Messages returns the messages of the given features plus
// FeatureInterface, without duplicates.
func Messages(features ...Feature) []api.Message {
	seen := map[Feature]bool{}
	var out []api.Message
	for _, f := range append([]Feature{FeatureInterface}, features...) {
		if seen[f] {
			continue
		}
		seen[f] = true
		out = append(out, messages[f]...)
	}
	return out
}

// IncompatibleError says the connected VPP does not know some messages
// with the CRCs this binary was built with: its VPP version differs from
// the binapi's (VPP 25.02) in those messages, or a plugin (memif,
// vhost_user) is not loaded.
type IncompatibleError struct {
	// Messages are the unknown messages as name_crc, sorted.
	Messages []string
}

func (e *IncompatibleError) Error() string {
	return fmt.Sprintf("VPP is incompatible with this plugin's binapi (govpp v0.12.0, VPP 25.02): unknown messages %s "+
		"(different VPP version, or its memif/vhost_user plugin is not loaded)", strings.Join(e.Messages, ", "))
}

// checkCompatibility runs the channel's CRC check on msgs.
func checkCompatibility(ch api.Channel, msgs []api.Message) error {
	err := ch.CheckCompatiblity(msgs...)
	if err == nil {
		return nil
	}
	var comp *api.CompatibilityError
	if errors.As(err, &comp) {
		names := append([]string(nil), comp.IncompatibleMessages...)
		sort.Strings(names)
		return &IncompatibleError{Messages: names}
	}
	return fmt.Errorf("check binapi compatibility: %w", err)
}
