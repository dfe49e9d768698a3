package vhostuser

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	"github.com/vmcni/vmcni/internal/store"
)

// state is vm-vhostuser's part of an attachment record.
type state struct {
	Paths
	Port     string `json:"port,omitempty"`
	GuestMAC string `json:"guestMAC"`
	// DeviceInfoFile is the NPWG device-info file written, if any.
	DeviceInfoFile string `json:"deviceInfoFile,omitempty"`
}

func stateOf(rec *store.Record) (*state, error) {
	var st state
	if err := json.Unmarshal(rec.State, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

func (st *state) saveTo(rec *store.Record) { rec.State, _ = json.Marshal(st) }

// portName is the OVS port of (containerID, ifName): "vhu" + 11 hex digits.
func portName(containerID, ifName string) string {
	h := sha256.Sum256([]byte(containerID + "\x00" + ifName))
	return "vhu" + hex.EncodeToString(h[:])[:11]
}
