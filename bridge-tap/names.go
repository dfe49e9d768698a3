package bridgetap

import (
	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/naming"
)

// Names are the links an attachment uses. They derive from (containerID,
// ifName) alone, so DEL and GC find them even without a record.
type Names struct {
	// HostVeth is the host end of the veth (standalone).
	HostVeth string `json:"hostVeth,omitempty"`
	// Pod is the pod interface (CNI_IFNAME).
	Pod string `json:"pod"`
	// Tap is the tap (tcfilter, bridge modes).
	Tap string `json:"tap,omitempty"`
	// Macvtap is the macvtap (macvtap mode).
	Macvtap string `json:"macvtap,omitempty"`
	// NetnsBridge is the bridge inside the pod netns (bridge mode).
	NetnsBridge string `json:"netnsBridge,omitempty"`
}

// withPrefix is prefix+ifName when it fits in 15 bytes, else prefix + a hash.
func withPrefix(prefix, ifName string) string {
	if name := prefix + ifName; len(name) <= 15 {
		return name
	}
	return prefix + naming.Digest(ifName)[:15-len(prefix)]
}

// namesFor returns the link names of an attachment in mode.
func namesFor(containerID, ifName, mode string, standalone bool) Names {
	n := Names{Pod: ifName}
	if standalone {
		n.HostVeth = "vmc" + naming.Digest(containerID, ifName)[:11]
	}
	switch mode {
	case ModeTCFilter:
		n.Tap = withPrefix("tap_", ifName)
	case ModeBridge:
		n.Tap = withPrefix("tap_", ifName)
		n.NetnsBridge = withPrefix("br_", ifName)
	case ModeMacvtap:
		n.Macvtap = withPrefix("mvt_", ifName)
	}
	return n
}

// groupFor is the link group of an attachment's links in its pod netns.
func groupFor(ifName string) uint32 {
	return link.GroupFor("vmcni/" + ifName)
}
