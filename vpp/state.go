package vpp

import (
	"github.com/vmcni/vmcni/internal/socketdir"
)

// state is vm-vpp's part of an attachment record: everything DEL and GC
// need, all of it known before ADD's first side effect but GuestIPs,
// recorded right after IPAM, before any VPP object. VPP's sw_if_index is
// deliberately not recorded: it is reused after deletion and lost on a
// VPP restart; objects are found again by Tag, and l3 host routes as the
// routes to GuestIPs via the interface so found.
type state struct {
	Interface string `json:"interface"`
	Network   string `json:"network"`
	// Tag is the VPP interface tag.
	Tag string `json:"tag"`
	// SocketDir is the per-attachment directory, Socket the socket in it.
	SocketDir string `json:"socketDir"`
	Socket    string `json:"socket"`
	// BridgeDomain is the l2 bridge domain id.
	BridgeDomain uint32 `json:"bridgeDomain,omitempty"`
	// GuestMAC is the MAC handed to the guest.
	GuestMAC string `json:"guestMAC,omitempty"`
	// GuestIPs are, in l3, the guest addresses ADD routes to the interface.
	GuestIPs []string `json:"guestIPs,omitempty"`
	// IPAM is the IPAM plugin type that allocated addresses, if any.
	IPAM string `json:"ipam,omitempty"`
}

// paths are the state's socket directory and socket.
func (st *state) paths() socketdir.Paths {
	return socketdir.Paths{Dir: st.SocketDir, Socket: st.Socket}
}
