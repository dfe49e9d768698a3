package bridgetap

// state is vm-bridge's part of an attachment record: what ADD created or
// changed, so DEL and GC can undo it.
type state struct {
	Mode    string `json:"mode"`
	Chained bool   `json:"chained"`
	Names   Names  `json:"names"`
	// Bridge is the host bridge (standalone).
	Bridge string `json:"bridge,omitempty"`
	// PodMAC is the pod interface's MAC before vm-bridge touched it; DEL
	// restores it in chained bridge/macvtap modes.
	PodMAC string `json:"podMAC,omitempty"`
	// PodIngressShared reports that the pod interface had an ingress qdisc
	// before ADD (tcfilter): DEL then removes only vmcni's filter from it.
	PodIngressShared bool `json:"podIngressShared,omitempty"`
	// GuestMAC is the MAC handed to the guest.
	GuestMAC string `json:"guestMAC,omitempty"`
	// Group is the link group of the links vm-bridge created in the pod
	// netns (and, standalone, the pod veth); DEL deletes it in one batch.
	Group uint32 `json:"group,omitempty"`
}
