package hint

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"

	"github.com/containernetworking/cni/pkg/types"
)

// Version is the contract version written in every hint file.
const Version = "1"

// DefaultStateDir is where attachment records and hint files live unless a
// plugin's config sets stateDir.
const DefaultStateDir = "/var/lib/cni/vmcni"

// Kind is the kind of device the guest attaches.
type Kind string

// The device kinds of contract v1.
const (
	KindTap       Kind = "tap"        // a tap in the pod netns; open it with TUNSETIFF there
	KindMacvtap   Kind = "macvtap"    // a macvtap in the pod netns; open its char device
	KindVhostUser Kind = "vhost-user" // a vhost-user unix socket
	KindVFIO      Kind = "vfio"       // a PCI device bound to vfio-pci
	KindMemif     Kind = "memif"      // a memif socket (VPP / DPDK)
)

// Hint is the content of a hint file.
type Hint struct {
	HintVersion string `json:"hintVersion"`
	Plugin      string `json:"plugin"`
	Network     string `json:"network"`
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifName"`
	// Netns is the pod netns path, empty for devices that are not in a netns.
	Netns string `json:"netns,omitempty"`
	Kind  Kind   `json:"kind"`

	Tap       *Tap       `json:"tap,omitempty"`
	Macvtap   *Macvtap   `json:"macvtap,omitempty"`
	VhostUser *VhostUser `json:"vhostUser,omitempty"`
	VFIO      *VFIO      `json:"vfio,omitempty"`
	Memif     *Memif     `json:"memif,omitempty"`

	Guest Guest `json:"guest"`
}

// Tap describes a persistent tap. The VMM opens it from a thread inside Netns
// with TUNSETIFF IFF_TAP|IFF_NO_PI, plus IFF_VNET_HDR when VnetHdr and
// IFF_MULTI_QUEUE once per queue when Queues > 1.
type Tap struct {
	Name string `json:"name"`
	// MAC is the tap device's own MAC (not the guest's); reported on the
	// device interface of the result (podman rejects sandboxed interfaces
	// without one).
	MAC     string `json:"mac,omitempty"`
	Netns   string `json:"netns"`
	Queues  int    `json:"queues"`
	VnetHdr bool   `json:"vnetHdr"`
	// Wiring says how the tap reaches the pod interface: "tcfilter" or "bridge".
	Wiring string `json:"wiring"`
}

// Macvtap describes a macvtap in the pod netns. /dev/tap<ifindex> may be
// absent or name another netns's device: the VMM should mknod a private node
// from Major:Minor and open it (once per queue).
type Macvtap struct {
	Name    string `json:"name"`
	Netns   string `json:"netns"`
	Ifindex int    `json:"ifindex"`
	Major   uint32 `json:"major"`
	Minor   uint32 `json:"minor"`
	Mode    string `json:"mode"`
	Queues  int    `json:"queues"`
	VnetHdr bool   `json:"vnetHdr"`
}

// VhostUser describes a vhost-user socket. Mode is the VMM's role on the
// socket: "server" (the VMM listens, the switch connects; OVS
// dpdkvhostuserclient) or "client".
type VhostUser struct {
	Socket string `json:"socket"`
	Mode   string `json:"mode"`
	Queues int    `json:"queues"`
}

// VFIO describes a PCI device bound to vfio-pci.
type VFIO struct {
	PCIAddress string `json:"pciAddress"`
	IOMMUGroup string `json:"iommuGroup"`
	// DevicePath is /dev/vfio/<group>.
	DevicePath string `json:"devicePath"`
}

// Memif describes a memif socket. Role is the VMM/application's role:
// "server" or "client".
type Memif struct {
	Socket   string `json:"socket"`
	Role     string `json:"role"`
	Mode     string `json:"mode"`
	ID       uint32 `json:"id"`
	Queues   int    `json:"queues"`
	RingSize uint32 `json:"ringSize"`
}

// Guest is what the guest's NIC must be configured with.
type Guest struct {
	MAC    string     `json:"mac"`
	MTU    int        `json:"mtu,omitempty"`
	IPs    []IP       `json:"ips,omitempty"`
	Routes []Route    `json:"routes,omitempty"`
	DNS    *types.DNS `json:"dns,omitempty"`
}

// IP is one guest address in CIDR form with its gateway, if any.
type IP struct {
	Address string `json:"address"`
	Gateway string `json:"gateway,omitempty"`
}

// Route is one guest route; an empty GW means on-link. MTU is the CNI 1.1
// route MTU (0: the NIC's).
type Route struct {
	Dst string `json:"dst"`
	GW  string `json:"gw,omitempty"`
	MTU int    `json:"mtu,omitempty"`
}

// RouteFromCNI is the guest route of a CNI result's route.
func RouteFromCNI(r *types.Route) Route {
	route := Route{Dst: r.Dst.String(), MTU: r.MTU}
	if r.GW != nil {
		route.GW = r.GW.String()
	}
	return route
}

// DeviceName is the name the device carries in the CNI result: the tap or
// macvtap name, or the socket / PCI address for devices outside a netns.
func (h *Hint) DeviceName() string {
	switch h.Kind {
	case KindTap:
		return h.Tap.Name
	case KindMacvtap:
		return h.Macvtap.Name
	case KindVhostUser:
		return filepath.Base(h.VhostUser.Socket)
	case KindVFIO:
		return h.VFIO.PCIAddress
	case KindMemif:
		return filepath.Base(h.Memif.Socket)
	}
	return ""
}

// Validate checks that the hint is self-consistent: a known kind with its
// section set (and no other), a MAC, well-formed addresses.
func (h *Hint) Validate() error {
	if h.HintVersion != Version {
		return fmt.Errorf("unsupported hintVersion %q (want %q)", h.HintVersion, Version)
	}
	sections := map[Kind]bool{
		KindTap: h.Tap != nil, KindMacvtap: h.Macvtap != nil, KindVhostUser: h.VhostUser != nil,
		KindVFIO: h.VFIO != nil, KindMemif: h.Memif != nil,
	}
	set, known := sections[h.Kind]
	if !known {
		return fmt.Errorf("unknown device kind %q", h.Kind)
	}
	if !set {
		return fmt.Errorf("kind %q without its %q section", h.Kind, h.Kind)
	}
	for kind, present := range sections {
		if present && kind != h.Kind {
			return fmt.Errorf("kind %q with a stray %q section", h.Kind, kind)
		}
	}
	if _, err := net.ParseMAC(h.Guest.MAC); err != nil {
		return fmt.Errorf("guest mac: %w", err)
	}
	for _, ip := range h.Guest.IPs {
		if _, _, err := net.ParseCIDR(ip.Address); err != nil {
			return fmt.Errorf("guest ip: %w", err)
		}
	}
	return nil
}

// containerIDPattern is the CNI spec's rule for container IDs; it also keeps
// them safe as a path element.
var containerIDPattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`)

// MaxContainerID is the longest container ID ValidateKey accepts: with
// "_" and a 15-byte interface name it still fits a file name (255 bytes).
const MaxContainerID = 239

// ValidateContainerID checks that containerID follows the CNI spec's rule
// and fits a file name.
func ValidateContainerID(containerID string) error {
	if !containerIDPattern.MatchString(containerID) {
		return fmt.Errorf("container ID %q does not match %s", containerID, containerIDPattern)
	}
	if len(containerID) > MaxContainerID {
		return fmt.Errorf("container ID is %d bytes, over the %d that fit in file names", len(containerID), MaxContainerID)
	}
	return nil
}

// ValidateKey checks that containerID and ifname are safe to use as path
// elements (CNI spec rules for container IDs; no '/', NUL, "." or "..").
func ValidateKey(containerID, ifName string) error {
	if err := ValidateContainerID(containerID); err != nil {
		return err
	}
	if ifName == "" || ifName == "." || ifName == ".." || len(ifName) > 15 {
		return fmt.Errorf("interface name %q must be 1-15 bytes and not '.' or '..'", ifName)
	}
	for _, c := range ifName {
		if c == '/' || c == ':' || c == 0 || c == ' ' || c == '\t' || c == '\n' {
			return fmt.Errorf("interface name %q contains %q", ifName, c)
		}
	}
	return nil
}

// AttachmentDir is <stateDir>/<containerID>/<ifName>: the directory holding
// an attachment's hint file (and the plugin's private record).
func AttachmentDir(stateDir, containerID, ifName string) string {
	return filepath.Join(stateDir, containerID, ifName)
}

// Path is where the hint file of (containerID, ifName) lives.
func Path(stateDir, containerID, ifName string) string {
	return filepath.Join(AttachmentDir(stateDir, containerID, ifName), "hint.json")
}

// Write stores h atomically at Path(stateDir, h.ContainerID, h.IfName).
func Write(stateDir string, h *Hint) error {
	if err := ValidateKey(h.ContainerID, h.IfName); err != nil {
		return err
	}
	data, err := json.MarshalIndent(h, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(Path(stateDir, h.ContainerID, h.IfName), data, 0o644)
}

// Read loads and validates the hint file of (containerID, ifName). A missing
// file gives an error matching os.ErrNotExist.
func Read(stateDir, containerID, ifName string) (*Hint, error) {
	if err := ValidateKey(containerID, ifName); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(Path(stateDir, containerID, ifName))
	if err != nil {
		return nil, err
	}
	return Decode(data)
}

// Decode parses and validates a hint file's content.
func Decode(data []byte) (*Hint, error) {
	var h Hint
	if err := json.Unmarshal(data, &h); err != nil {
		return nil, fmt.Errorf("decode hint: %w", err)
	}
	if err := h.Validate(); err != nil {
		return nil, fmt.Errorf("invalid hint: %w", err)
	}
	return &h, nil
}

// Remove deletes the hint file of (containerID, ifName); a missing file is
// not an error.
func Remove(stateDir, containerID, ifName string) error {
	if err := ValidateKey(containerID, ifName); err != nil {
		return err
	}
	err := os.Remove(Path(stateDir, containerID, ifName))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// WriteFileAtomic writes data to path through a temporary file and a rename,
// creating parent directories (0755) as needed, so readers never see a
// partial file. It does not fsync: see WriteFileDurable.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	_, err := writeFile(path, data, perm, syncNever)
	return err
}

// WriteFileDurable is WriteFileAtomic for state that must survive a power
// loss (records, allocations): the data is fsync'd before the rename, so
// the path never holds an empty or partial file, and the directory is
// fsync'd when the file is new, so the name itself survives. A later
// rewrite that a crash loses leaves the previous content.
func WriteFileDurable(path string, data []byte, perm os.FileMode) error {
	_, err := writeFile(path, data, perm, syncBeforeRename)
	return err
}

// WriteFileDeferSync is WriteFileDurable in two halves: it returns once
// the new content is in place under path (every process sees it, and a
// kill cannot undo it), and sync makes it durable: the file, then the
// directory when the name is new. Until sync returns, a power loss may
// leave path empty or missing, so use it only where that state is
// handled and nothing that survives a reboot depends on the file yet.
// Call sync exactly once: it also closes the file.
func WriteFileDeferSync(path string, data []byte, perm os.FileMode) (sync func() error, err error) {
	return writeFile(path, data, perm, syncDeferred)
}

type syncMode int

const (
	syncNever syncMode = iota
	syncBeforeRename
	syncDeferred
)

// writeFile writes path through a temporary file and a rename; with
// syncDeferred it returns the fsyncs to run, else a no-op.
func writeFile(path string, data []byte, perm os.FileMode, mode syncMode) (sync func() error, err error) {
	if err = os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	_, statErr := os.Lstat(path)
	isNew := errors.Is(statErr, os.ErrNotExist)
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return nil, err
	}
	_, werr := tmp.Write(data)
	var serr, cerr error
	if mode == syncBeforeRename {
		serr = tmp.Sync()
	}
	if mode != syncDeferred {
		cerr = tmp.Close()
	}
	err = errors.Join(werr, serr, cerr, os.Chmod(tmp.Name(), perm))
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		if mode == syncDeferred {
			_ = tmp.Close()
		}
		_ = os.Remove(tmp.Name())
		return nil, err
	}
	syncName := func() error {
		if !isNew {
			return nil
		}
		return syncDir(filepath.Dir(path))
	}
	switch mode {
	case syncBeforeRename:
		return func() error { return nil }, syncName()
	case syncDeferred:
		return func() error {
			if err := errors.Join(tmp.Sync(), tmp.Close()); err != nil {
				return err
			}
			return syncName()
		}, nil
	}
	return func() error { return nil }, nil
}

// RemoveTempFiles removes the temporary files that writes into dir
// (WriteFileAtomic, WriteFileDurable) left when a crash interrupted them.
// Call it only where no such write can be running: under the lock the
// writers of dir hold. Missing files are not an error.
func RemoveTempFiles(dir string) error {
	tmps, err := filepath.Glob(filepath.Join(dir, ".*.tmp*"))
	if err != nil {
		return err
	}
	var errs []error
	for _, tmp := range tmps {
		if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
