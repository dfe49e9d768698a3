package hint

import (
	"encoding/json"
	"errors"
	"os"
)

// DeviceInfoVersion is the NPWG device-info spec version written.
const DeviceInfoVersion = "1.1.0"

// DeviceInfo is the NPWG device-info file
// (k8snetworkplumbingwg "Device Information" spec).
type DeviceInfo struct {
	Type      string               `json:"type"`
	Version   string               `json:"version"`
	PCI       *DeviceInfoPCI       `json:"pci,omitempty"`
	VhostUser *DeviceInfoVhostUser `json:"vhost-user,omitempty"`
	Memif     *DeviceInfoMemif     `json:"memif,omitempty"`
}

// DeviceInfoPCI is the "pci" section.
type DeviceInfoPCI struct {
	PCIAddress string `json:"pci-address"`
}

// DeviceInfoVhostUser is the "vhost-user" section. Mode is the
// application's (VMM's) role: "client" or "server".
type DeviceInfoVhostUser struct {
	Mode string `json:"mode"`
	Path string `json:"path"`
}

// DeviceInfoMemif is the "memif" section.
type DeviceInfoMemif struct {
	Role string `json:"role"`
	Mode string `json:"mode"`
	Path string `json:"path"`
}

// DeviceInfoFor returns the device-info document for h, or nil for kinds the
// spec does not cover (tap, macvtap).
func DeviceInfoFor(h *Hint) *DeviceInfo {
	switch h.Kind {
	case KindVhostUser:
		return &DeviceInfo{Type: "vhost-user", Version: DeviceInfoVersion,
			VhostUser: &DeviceInfoVhostUser{Mode: h.VhostUser.Mode, Path: h.VhostUser.Socket}}
	case KindMemif:
		return &DeviceInfo{Type: "memif", Version: DeviceInfoVersion,
			Memif: &DeviceInfoMemif{Role: h.Memif.Role, Mode: h.Memif.Mode, Path: h.Memif.Socket}}
	case KindVFIO:
		return &DeviceInfo{Type: "pci", Version: DeviceInfoVersion,
			PCI: &DeviceInfoPCI{PCIAddress: h.VFIO.PCIAddress}}
	}
	return nil
}

// WriteDeviceInfo writes the device-info file for h at path. It does nothing
// when path is empty or the kind has no device-info type, and reports
// whether it wrote a file.
func WriteDeviceInfo(path string, h *Hint) (bool, error) {
	info := DeviceInfoFor(h)
	if path == "" || info == nil {
		return false, nil
	}
	data, err := json.Marshal(info)
	if err != nil {
		return false, err
	}
	return true, WriteFileAtomic(path, data, 0o644)
}

// RemoveDeviceInfo removes a device-info file; a missing file is not an error.
func RemoveDeviceInfo(path string) error {
	if path == "" {
		return nil
	}
	err := os.Remove(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}
