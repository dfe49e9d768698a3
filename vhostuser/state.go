package vhostuser

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/vmcni/vmcni/internal/socketdir"
)

// state is vm-vhostuser's part of an attachment record.
type state struct {
	socketdir.Paths
	Port     string `json:"port,omitempty"`
	GuestMAC string `json:"guestMAC"`
}

// portName is the OVS port of (containerID, ifName): "vhu" + 11 hex digits.
func portName(containerID, ifName string) string {
	h := sha256.Sum256([]byte(containerID + "\x00" + ifName))
	return "vhu" + hex.EncodeToString(h[:])[:11]
}
