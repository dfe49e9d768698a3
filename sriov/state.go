package sriov

// state is vm-sriov's part of an attachment record: which VF ADD took and
// everything it must put back. It is written before the first change.
type state struct {
	Mode string `json:"mode"`
	// PCI is the VF's address; PF and PFNetdev its PF's address and netdev;
	// VF its index on the PF.
	PCI      string `json:"pci"`
	PF       string `json:"pf"`
	PFNetdev string `json:"pfNetdev"`
	VF       int    `json:"vf"`
	// Original is the PF-side VF configuration before ADD.
	Original VFState `json:"original"`
	// OrigDriver and OrigOverride are the VF's driver and driver_override
	// before ADD ("" = none).
	OrigDriver   string `json:"origDriver"`
	OrigOverride string `json:"origOverride"`
	// IOMMUGroup is the VF's group (vfio).
	IOMMUGroup string `json:"iommuGroup,omitempty"`
	// Netdev is the VF netdev's name in the host netns before ADD, with its
	// MAC and MTU (netdev mode; vfio mode when the VF had one, to give it
	// back after the network driver is bound again).
	Netdev    string `json:"netdev,omitempty"`
	NetdevMAC string `json:"netdevMAC,omitempty"`
	NetdevMTU int    `json:"netdevMTU,omitempty"`
	// GuestMAC is the MAC the pod (netdev) or guest (vfio) uses.
	GuestMAC string `json:"guestMAC,omitempty"`
}
