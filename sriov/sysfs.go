package sriov

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// FS is every file-system access vm-sriov makes to sysfs and /dev: names are
// slash-separated and relative to a root ("sys/bus/pci/devices/<addr>/driver").
// It is deliberately narrow so that a simulated tree can stand in for the
// kernel's.
type FS interface {
	// ReadFile returns a file's content.
	ReadFile(name string) ([]byte, error)
	// WriteFile writes data to an existing file (a sysfs attribute: open
	// O_WRONLY|O_TRUNC, one write, close); it never creates files.
	WriteFile(name string, data []byte) error
	// ReadLink returns a symlink's target.
	ReadLink(name string) (string, error)
	// ReadDir returns the sorted names in a directory.
	ReadDir(name string) ([]string, error)
	// Exists reports whether name exists (following symlinks).
	Exists(name string) bool
	// Path is the absolute host path of name (for paths handed to others,
	// such as /dev/vfio/<group> in the hint).
	Path(name string) string
}

// RootFS is the FS of a directory: "/" on a real host.
type RootFS struct {
	Root string
}

// Path implements FS.
func (r RootFS) Path(name string) string { return filepath.Join(r.Root, filepath.FromSlash(name)) }

// ReadFile implements FS.
func (r RootFS) ReadFile(name string) ([]byte, error) { return os.ReadFile(r.Path(name)) }

// WriteFile implements FS.
func (r RootFS) WriteFile(name string, data []byte) error {
	f, err := os.OpenFile(r.Path(name), os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	return errors.Join(werr, f.Close())
}

// ReadLink implements FS.
func (r RootFS) ReadLink(name string) (string, error) { return os.Readlink(r.Path(name)) }

// ReadDir implements FS.
func (r RootFS) ReadDir(name string) ([]string, error) {
	entries, err := os.ReadDir(r.Path(name))
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out, nil
}

// Exists implements FS.
func (r RootFS) Exists(name string) bool {
	_, err := os.Stat(r.Path(name))
	return err == nil
}

// VFIODriver is the driver a VF is bound to in vfio mode.
const VFIODriver = "vfio-pci"

// vfioCompatible are the drivers the kernel accepts for the other devices
// of a VFIO group (besides vfio-pci and no driver): pci-stub, and pcieport
// for bridges.
var vfioCompatible = map[string]bool{VFIODriver: true, "": true, "pci-stub": true, "pcieport": true}

// pci reads and drives PCI devices through an FS.
type pci struct {
	fs FS
}

func devDir(addr string) string { return path.Join("sys/bus/pci/devices", addr) }

// linkBase returns the last element of a symlink's target, "" when the
// link does not exist.
func (p pci) linkBase(name string) (string, error) {
	target, err := p.fs.ReadLink(name)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return path.Base(filepath.ToSlash(target)), nil
}

// Driver returns the driver addr is bound to, "" when unbound.
func (p pci) Driver(addr string) (string, error) {
	d, err := p.linkBase(path.Join(devDir(addr), "driver"))
	if err != nil {
		return "", fmt.Errorf("driver of %q: %w", addr, err)
	}
	return d, nil
}

// Override returns addr's driver_override ("" when "(null)" or empty).
func (p pci) Override(addr string) (string, error) {
	data, err := p.fs.ReadFile(path.Join(devDir(addr), "driver_override"))
	if err != nil {
		return "", fmt.Errorf("driver_override of %q: %w", addr, err)
	}
	v := strings.TrimSpace(string(data))
	if v == "(null)" {
		v = ""
	}
	return v, nil
}

// PF returns the PF of VF addr, its netdev name and the VF's index.
func (p pci) PF(addr string) (pf, pfNetdev string, vf int, err error) {
	if !p.fs.Exists(devDir(addr)) {
		return "", "", 0, fmt.Errorf("PCI device %q not found under %q", addr, p.fs.Path("sys/bus/pci/devices"))
	}
	pf, err = p.linkBase(path.Join(devDir(addr), "physfn"))
	if err != nil || pf == "" {
		return "", "", 0, errors.Join(fmt.Errorf("PCI device %q is not an SR-IOV VF (no physfn)", addr), err)
	}
	names, err := p.fs.ReadDir(devDir(pf))
	if err != nil {
		return "", "", 0, fmt.Errorf("read PF %q: %w", pf, err)
	}
	vf = -1
	for _, n := range names {
		idx, ok := strings.CutPrefix(n, "virtfn")
		if !ok {
			continue
		}
		if b, _ := p.linkBase(path.Join(devDir(pf), n)); b == addr {
			vf, err = strconv.Atoi(idx)
			if err != nil {
				return "", "", 0, fmt.Errorf("PF %q: bad link %q: %w", pf, n, err)
			}
		}
	}
	if vf < 0 {
		return "", "", 0, fmt.Errorf("PF %q has no virtfn link to %q", pf, addr)
	}
	netdevs, err := p.Netdevs(pf)
	if err != nil || len(netdevs) == 0 {
		return "", "", 0, errors.Join(fmt.Errorf("PF %q has no netdev (is its driver loaded?)", pf), err)
	}
	return pf, netdevs[0], vf, nil
}

// Netdevs returns the netdev names of addr visible in this sysfs (the
// netns of the sysfs mount).
func (p pci) Netdevs(addr string) ([]string, error) {
	names, err := p.fs.ReadDir(path.Join(devDir(addr), "net"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return names, err
}

// IOMMUGroup returns addr's IOMMU group, "" when it has none.
func (p pci) IOMMUGroup(addr string) (string, error) {
	g, err := p.linkBase(path.Join(devDir(addr), "iommu_group"))
	if err != nil {
		return "", fmt.Errorf("IOMMU group of %q: %w", addr, err)
	}
	return g, nil
}

// CheckViable returns an error naming the first device of group (other than
// self) bound to a driver VFIO does not accept: the kernel would refuse to
// open the group.
func (p pci) CheckViable(group, self string) error {
	devs, err := p.fs.ReadDir(path.Join("sys/kernel/iommu_groups", group, "devices"))
	if err != nil {
		return fmt.Errorf("list IOMMU group %q: %w", group, err)
	}
	for _, d := range devs {
		if d == self {
			continue
		}
		drv, err := p.Driver(d)
		if err != nil {
			return err
		}
		if !vfioCompatible[drv] {
			return fmt.Errorf("IOMMU group %q is not viable: device %q in it is bound to %q (must be vfio-pci or unbound)", group, d, drv)
		}
	}
	return nil
}

// write writes value to a sysfs attribute.
func (p pci) write(name, value string) error {
	if err := p.fs.WriteFile(name, []byte(value)); err != nil {
		return fmt.Errorf("write %q to %q: %w", strings.TrimSpace(value), p.fs.Path(name), err)
	}
	return nil
}

// Unbind detaches addr from driver.
func (p pci) Unbind(addr, driver string) error {
	return p.write(path.Join("sys/bus/pci/drivers", driver, "unbind"), addr)
}

// SetOverride writes driver_override ("" clears it).
func (p pci) SetOverride(addr, driver string) error {
	return p.write(path.Join(devDir(addr), "driver_override"), driver+"\n")
}

// Probe asks the kernel to bind addr to a matching driver.
func (p pci) Probe(addr string) error {
	return p.write("sys/bus/pci/drivers_probe", addr)
}

// WaitDriver polls until addr's driver is want ("" = unbound) or timeout.
// The kernel binds synchronously, but asynchronous probing and slow drivers
// exist; the poll also lets a simulated tree react.
func (p pci) WaitDriver(addr, want string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		got, err := p.Driver(addr)
		if err == nil && got == want {
			return nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return err
			}
			return fmt.Errorf("PCI device %q is bound to %q after %s, want %q", addr, got, timeout, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// WaitExists polls until name exists or timeout.
func (p pci) WaitExists(name string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for !p.fs.Exists(name) {
		if time.Now().After(deadline) {
			return fmt.Errorf("%q did not appear within %s", p.fs.Path(name), timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}
