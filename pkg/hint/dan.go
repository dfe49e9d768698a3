package hint

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"
)

// DefaultDanDir is where Kata Containers looks for DAN files unless its
// configuration sets dan_conf.
const DefaultDanDir = "/run/kata-containers/dans"

// DanConfig is a Kata Containers "directly attachable network" (DAN) file,
// <dan_conf>/<sandbox ID>.json: when it exists, Kata attaches its devices
// instead of scanning the pod netns. Field names are Kata's own (the Go
// runtime's src/runtime/virtcontainers/types/dan.go and runtime-rs's
// crates/resource/src/network/dan.rs). Both runtimes ignore unknown
// fields; both refuse a device type they do not know.
type DanConfig struct {
	// Netns is the netns the devices live in (runtime-rs enters it to open
	// a host-tap); the Go runtime ignores it.
	Netns   string      `json:"netns,omitempty"`
	Devices []DanDevice `json:"devices"`
}

// DanDevice is one device of a DAN file. Name is the guest interface's
// name; runtime-rs names its endpoints eth<index> in the file's order.
type DanDevice struct {
	Name        string         `json:"name"`
	GuestMAC    string         `json:"guest_mac"`
	Device      DanDeviceSpec  `json:"device"`
	NetworkInfo DanNetworkInfo `json:"network_info"`
}

// The DAN device types: vfio is the only one the Go runtime accepts
// (runtime-rs since kata-containers PR 13802); host-tap and vhost-user are
// runtime-rs only.
const (
	DanVFIO      = "vfio"
	DanHostTap   = "host-tap"
	DanVhostUser = "vhost-user"
)

// DanDeviceSpec is the "device" object: Type selects which other fields
// count. Zero queue values mean the runtime's defaults.
type DanDeviceSpec struct {
	Type        string `json:"type"`
	PCIDeviceID string `json:"pci_device_id,omitempty"` // vfio: the host BDF
	TapName     string `json:"tap_name,omitempty"`      // host-tap
	Path        string `json:"path,omitempty"`          // vhost-user socket
	QueueNum    int    `json:"queue_num,omitempty"`
	QueueSize   int    `json:"queue_size,omitempty"`
}

// DanNetworkInfo is what the guest interface is configured with.
// Neighbors are never written: the Go runtime parses their address as a
// plain IP, runtime-rs as CIDR.
type DanNetworkInfo struct {
	Interface DanInterface `json:"interface"`
	Routes    []DanRoute   `json:"routes,omitempty"`
}

// DanInterface carries the guest's addresses in CIDR form and its MTU,
// always written (the Go runtime's default is 0, runtime-rs's 1500).
type DanInterface struct {
	IPAddresses []string `json:"ip_addresses"`
	MTU         int      `json:"mtu"`
}

// DanRoute is one guest route. The Go runtime takes a route without a
// gateway for IPv6 whatever its destination; runtime-rs reads the family
// from the destination.
type DanRoute struct {
	Dest    string `json:"dest,omitempty"`
	Gateway string `json:"gateway"`
}

// DanDeviceFor returns the DAN entry of h, named ifName. Macvtap and
// memif have no DAN type and give an error.
func DanDeviceFor(h *Hint, ifName string) (DanDevice, error) {
	d := DanDevice{Name: ifName, GuestMAC: h.Guest.MAC}
	switch h.Kind {
	case KindVFIO:
		d.Device = DanDeviceSpec{Type: DanVFIO, PCIDeviceID: h.VFIO.PCIAddress}
	case KindTap:
		d.Device = DanDeviceSpec{Type: DanHostTap, TapName: h.Tap.Name, QueueNum: h.Tap.Queues}
	case KindVhostUser:
		d.Device = DanDeviceSpec{Type: DanVhostUser, Path: h.VhostUser.Socket, QueueNum: h.VhostUser.Queues}
	default:
		return DanDevice{}, fmt.Errorf("a %s device has no Kata DAN type (vfio, host-tap, vhost-user)", h.Kind)
	}
	mtu := h.Guest.MTU
	if mtu == 0 {
		mtu = 1500
	}
	d.NetworkInfo.Interface = DanInterface{IPAddresses: []string{}, MTU: mtu}
	for _, ip := range h.Guest.IPs {
		d.NetworkInfo.Interface.IPAddresses = append(d.NetworkInfo.Interface.IPAddresses, ip.Address)
	}
	for _, r := range h.Guest.Routes {
		d.NetworkInfo.Routes = append(d.NetworkInfo.Routes, DanRoute{Dest: r.Dst, Gateway: r.GW})
	}
	return d, nil
}

// DanPath is the DAN file of sandboxID in dir.
func DanPath(dir, sandboxID string) string {
	return filepath.Join(dir, sandboxID+".json")
}

// AddDanDevice puts d into the DAN file of sandboxID in dir (created when
// missing, 0600), replacing an entry of the same name, keeping the
// entries sorted by name. netns, when set, must match the file's. Writers
// of dir are serialised with flock(2) on the directory itself, so no lock
// file is left in Kata's directory.
func AddDanDevice(dir, sandboxID, netns string, d DanDevice) error {
	return updateDan(dir, sandboxID, func(c *DanConfig) error {
		if netns != "" && c.Netns != "" && c.Netns != netns {
			return fmt.Errorf("DAN file %s is for netns %q, not %q", DanPath(dir, sandboxID), c.Netns, netns)
		}
		if netns != "" {
			c.Netns = netns
		}
		c.Devices = slices.DeleteFunc(c.Devices, func(e DanDevice) bool { return e.Name == d.Name })
		c.Devices = append(c.Devices, d)
		slices.SortStableFunc(c.Devices, func(a, b DanDevice) int { return cmp.Compare(a.Name, b.Name) })
		return nil
	})
}

// RemoveDanDevice takes the entry called name out of the DAN file of
// sandboxID in dir, and removes the file when no entry is left. A missing
// directory, file or entry is success.
func RemoveDanDevice(dir, sandboxID, name string) error {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return updateDan(dir, sandboxID, func(c *DanConfig) error {
		c.Devices = slices.DeleteFunc(c.Devices, func(e DanDevice) bool { return e.Name == name })
		return nil
	})
}

// ReadDan reads the DAN file of sandboxID in dir.
func ReadDan(dir, sandboxID string) (*DanConfig, error) {
	data, err := os.ReadFile(DanPath(dir, sandboxID))
	if err != nil {
		return nil, err
	}
	var c DanConfig
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("decode DAN file %s: %w", DanPath(dir, sandboxID), err)
	}
	return &c, nil
}

// updateDan applies change to the DAN file under the directory's lock and
// writes it back (atomically), or removes it when it has no device.
func updateDan(dir, sandboxID string, change func(*DanConfig) error) error {
	if err := ValidateContainerID(sandboxID); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	lock, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err = flockRetry(int(lock.Fd())); err != nil {
		return fmt.Errorf("lock %s: %w", dir, err)
	}
	// temporary files of this sandbox's writers killed mid-write
	tmps, _ := filepath.Glob(filepath.Join(dir, "."+sandboxID+".json.tmp*"))
	for _, tmp := range tmps {
		if rmErr := os.Remove(tmp); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
			return rmErr
		}
	}
	c, err := ReadDan(dir, sandboxID)
	if errors.Is(err, os.ErrNotExist) {
		c, err = &DanConfig{}, nil
	}
	if err != nil {
		return err
	}
	if err = change(c); err != nil {
		return err
	}
	path := DanPath(dir, sandboxID)
	if len(c.Devices) == 0 {
		if err = os.Remove(path); errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, data, 0o600)
}

func flockRetry(fd int) error {
	for {
		err := unix.Flock(fd, unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}
