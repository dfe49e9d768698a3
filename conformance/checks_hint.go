package conformance

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"

	"github.com/vmcni/vmcni/internal/netns"
	"github.com/vmcni/vmcni/pkg/hint"
)

// pciAddress is a full PCI address, domain:bus:device.function (the same
// rule vm-sriov applies to deviceID).
var pciAddress = regexp.MustCompile(`^[0-9a-f]{4,8}:[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7]$`)

// linkIn finds name in the netns at path ("" = the host) and compares its
// MAC with mac when mac is set.
func linkIn(path, name, mac string) error {
	find := func() error {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return fmt.Errorf("link %q: %w", name, err)
		}
		if mac == "" {
			return nil
		}
		want, err := net.ParseMAC(mac)
		if err != nil {
			return fmt.Errorf("link %q: result mac %q: %w", name, mac, err)
		}
		if got := l.Attrs().HardwareAddr; got.String() != want.String() {
			return fmt.Errorf("link %q has mac %s, the result says %s", name, got, want)
		}
		return nil
	}
	if path == "" {
		return find()
	}
	return netns.Do(path, find)
}

// resultInterfaces checks that every interface of res exists where its
// sandbox says, and that every IP points at an interface of res.
func (s *suite) resultInterfaces(res *current.Result, att attachment) verdict {
	var problems, details []string
	for i, iface := range res.Interfaces {
		var err error
		switch iface.Sandbox {
		case "":
			err = linkIn("", iface.Name, iface.Mac)
			details = append(details, fmt.Sprintf("[%d] %s on the host", i, iface.Name))
		case att.Netns:
			err = linkIn(att.Netns, iface.Name, iface.Mac)
			details = append(details, fmt.Sprintf("[%d] %s in the netns", i, iface.Name))
		case att.ContainerID:
			details = append(details, fmt.Sprintf("[%d] %s: pseudo-interface (see %s)", i, iface.Name, CheckVMHint))
		default:
			err = fmt.Errorf("interface %q: sandbox %q is neither the netns, the host nor the container ID", iface.Name, iface.Sandbox)
		}
		if err != nil {
			problems = append(problems, err.Error())
		}
	}
	for _, ip := range res.IPs {
		if ip.Interface != nil && (*ip.Interface < 0 || *ip.Interface >= len(res.Interfaces)) {
			problems = append(problems, fmt.Sprintf("ip %s: interface index %d out of range", ip.Address.String(), *ip.Interface))
		}
	}
	if len(res.Interfaces) == 0 {
		return fail("the result names no interface")
	}
	if len(problems) > 0 {
		return fail("%s", problems[0]).with(append(problems[1:], details...)...)
	}
	return pass("%d interface(s) of the result exist where their sandbox says", len(res.Interfaces)).with(details...)
}

// vmDevice checks, for each pseudo-interface, the conventions any VM
// runtime reads (package hint's doc lists them): the pseudo-interface
// itself, its device in the netns, the CNI 1.1 fields, the NPWG
// device-info file when asked for one, and the Kata DAN file when the
// conflist sets kataDanDir.
func (s *suite) vmDevice(res *current.Result, att attachment) verdict {
	return eachPseudo(res, att, "describe a device a VM runtime can attach", func(i int, iface *current.Interface) (details []string, err error) {
		if err = checkPseudo(res, i, att); err != nil {
			return nil, err
		}
		details = append(details, fmt.Sprintf("pseudo-interface [%d] %s: %s", i, iface.Name, describePseudo(res, i)))
		if file, _ := att.CapArgs["CNIDeviceInfoFile"].(string); file != "" {
			detail, err := checkDeviceInfo(file, iface)
			if err != nil {
				return details, err
			}
			if detail != "" {
				details = append(details, detail)
			}
		}
		for _, dir := range s.net.kataDanDirs() {
			if err := checkDan(dir, iface, att); err != nil {
				return details, err
			}
			details = append(details, fmt.Sprintf("Kata DAN file %s has %s", hint.DanPath(dir, att.ContainerID), att.IfName))
		}
		return details, nil
	})
}

// eachPseudo runs check on every pseudo-interface of res (sandbox = the
// container ID): a pass saying they all "what", a failure with every
// problem, or a skip when there is none.
func eachPseudo(res *current.Result, att attachment, what string, check func(i int, iface *current.Interface) ([]string, error)) verdict {
	pseudo := hint.PseudoInterfaces(res, att.ContainerID)
	if len(pseudo) == 0 {
		return skip("not applicable: the result has no pseudo-interface (sandbox = container ID), i.e. no VM device")
	}
	var problems, details []string
	for _, i := range pseudo {
		d, err := check(i, res.Interfaces[i])
		details = append(details, d...)
		if err != nil {
			problems = append(problems, err.Error())
		}
	}
	if len(problems) > 0 {
		return fail("%s", problems[0]).with(append(problems[1:], details...)...)
	}
	return pass("%d pseudo-interface(s) %s", len(pseudo), what).with(details...)
}

// describePseudo says what a runtime learns from pseudo-interface i, and
// whether firecracker-go-sdk's vmconf (exactly one IP) can take it.
func describePseudo(res *current.Result, i int) string {
	iface := res.Interfaces[i]
	var ips int
	for _, ip := range res.IPs {
		if ip.Interface != nil && *ip.Interface == i {
			ips++
		}
	}
	what := "a device in the netns"
	switch {
	case iface.SocketPath != "":
		what = "socketPath " + iface.SocketPath
	case iface.PciID != "":
		what = "pciID " + iface.PciID
	}
	vmconf := "firecracker-go-sdk vmconf takes it"
	if ips != 1 {
		vmconf = fmt.Sprintf("firecracker-go-sdk vmconf refuses it (%d IPs, it takes exactly one)", ips)
	}
	return fmt.Sprintf("%s, mac %s, mtu %d, %d IP(s); %s", what, iface.Mac, iface.Mtu, ips, vmconf)
}

// checkDeviceInfo checks the NPWG device-info file of a vhost-user, memif
// or vfio pseudo-interface; taps and macvtaps have no device-info type.
func checkDeviceInfo(file string, iface *current.Interface) (string, error) {
	if iface.SocketPath == "" && iface.PciID == "" {
		return "", nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("device-info file %s: %w", file, err)
	}
	var info hint.DeviceInfo
	if err := json.Unmarshal(data, &info); err != nil {
		return "", fmt.Errorf("device-info file %s: %w", file, err)
	}
	switch {
	case info.PCI != nil && iface.PciID != "" && info.PCI.PCIAddress == iface.PciID:
	case info.VhostUser != nil && info.VhostUser.Path == iface.SocketPath:
	case info.Memif != nil && info.Memif.Path == iface.SocketPath:
	default:
		return "", fmt.Errorf("device-info file %s (type %q) does not name the device of %q", file, info.Type, iface.Name)
	}
	return fmt.Sprintf("device-info file %s: type %s", file, info.Type), nil
}

// checkDan checks that the Kata DAN file of the sandbox in dir has the
// attachment's entry, naming the pseudo-interface's device and MAC.
func checkDan(dir string, iface *current.Interface, att attachment) error {
	dan, err := hint.ReadDan(dir, att.ContainerID)
	if err != nil {
		return fmt.Errorf("kata DAN file: %w", err)
	}
	for _, d := range dan.Devices {
		if d.Name != att.IfName {
			continue
		}
		dev := d.Device
		if d.GuestMAC != iface.Mac {
			return fmt.Errorf("kata DAN entry %s: guest_mac %s, the pseudo-interface says %s", d.Name, d.GuestMAC, iface.Mac)
		}
		if (dev.Type == hint.DanHostTap && dev.TapName == iface.Name) ||
			(dev.Type == hint.DanVhostUser && dev.Path == iface.SocketPath) ||
			(dev.Type == hint.DanVFIO && dev.PCIDeviceID == iface.PciID) {
			return nil
		}
		return fmt.Errorf("kata DAN entry %s (%+v) does not name the device of pseudo-interface %q", d.Name, dev, iface.Name)
	}
	return fmt.Errorf("kata DAN file %s has no entry %q", hint.DanPath(dir, att.ContainerID), att.IfName)
}

// vmHint checks vmcni's hint file for each pseudo-interface, when asked.
func (s *suite) vmHint(res *current.Result, att attachment) verdict {
	if !s.cfg.HintFile {
		return skip("not asked for: vmcni's hint file is checked with -hint-file (Config.HintFile); %s judges what every runtime reads", CheckVMDevice)
	}
	return eachPseudo(res, att, "agree with their hint file", func(i int, iface *current.Interface) ([]string, error) {
		h, dir, err := s.readHint(att)
		if err != nil {
			return nil, err
		}
		if err := checkHint(res, iface, h, att); err != nil {
			return nil, fmt.Errorf("hint file in %s: %w", dir, err)
		}
		return []string{fmt.Sprintf("pseudo-interface [%d] %s: kind %s, hint file %s agrees", i, iface.Name, h.Kind, hint.Path(dir, att.ContainerID, att.IfName))}, nil
	})
}

// checkPseudo checks one pseudo-interface on its own: its MAC and mtu,
// its device interface in the netns (tap, macvtap) with that mtu,
// socketPath and pciID.
func checkPseudo(res *current.Result, i int, att attachment) error {
	iface := res.Interfaces[i]
	if _, err := net.ParseMAC(iface.Mac); err != nil {
		return fmt.Errorf("pseudo-interface %q: mac %q: %w", iface.Name, iface.Mac, err)
	}
	if iface.Mtu != 0 && (iface.Mtu < 68 || iface.Mtu > 65535) {
		return fmt.Errorf("pseudo-interface %q: mtu %d is outside 68..65535", iface.Name, iface.Mtu)
	}
	for _, dev := range res.Interfaces {
		if dev.Name == iface.Name && dev.Sandbox == att.Netns {
			if err := deviceMTU(att.Netns, dev.Name, iface.Mtu); err != nil {
				return fmt.Errorf("device of pseudo-interface %q: %w", iface.Name, err)
			}
		}
	}
	if iface.SocketPath != "" {
		st, err := os.Stat(iface.SocketPath)
		switch {
		case err == nil && st.Mode()&os.ModeSocket == 0:
			return fmt.Errorf("socketPath %q is a %s, not a socket", iface.SocketPath, st.Mode().Type())
		case errors.Is(err, os.ErrNotExist):
			// A backend that creates no socket (the VMM listens later):
			// the directory must be there.
			dst, derr := os.Stat(filepath.Dir(iface.SocketPath))
			if derr != nil || !dst.IsDir() {
				return fmt.Errorf("socketPath %q: neither the socket nor its directory exists", iface.SocketPath)
			}
		case err != nil:
			return fmt.Errorf("socketPath %q: %w", iface.SocketPath, err)
		}
	}
	if iface.PciID != "" && !pciAddress.MatchString(iface.PciID) {
		return fmt.Errorf("pciID %q is not a PCI address like 0000:3b:02.1", iface.PciID)
	}
	return nil
}

// readHint finds the attachment's hint file in the conflist's state dirs.
func (s *suite) readHint(att attachment) (*hint.Hint, string, error) {
	dirs := s.net.stateDirs()
	for _, dir := range dirs {
		h, err := hint.Read(dir, att.ContainerID, att.IfName)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, dir, fmt.Errorf("hint file in %s: %w", dir, err)
		}
		return h, dir, nil
	}
	return nil, "", fmt.Errorf("no hint file for %s/%s in %v", att.ContainerID, att.IfName, dirs)
}

// checkHint checks a hint file against the result and the host.
func checkHint(res *current.Result, iface *current.Interface, h *hint.Hint, att attachment) error {
	if h.ContainerID != att.ContainerID || h.IfName != att.IfName {
		return fmt.Errorf("hint is for %s/%s", h.ContainerID, h.IfName)
	}
	if h.DeviceName() != iface.Name {
		return fmt.Errorf("hint device %q, pseudo-interface %q", h.DeviceName(), iface.Name)
	}
	if err := hint.CheckResult(res, h); err != nil {
		return err
	}
	switch h.Kind {
	case hint.KindTap:
		return linkIn(h.Tap.Netns, h.Tap.Name, "")
	case hint.KindMacvtap:
		return linkIn(h.Macvtap.Netns, h.Macvtap.Name, h.Guest.MAC)
	case hint.KindVhostUser:
		if iface.SocketPath != "" && iface.SocketPath != h.VhostUser.Socket {
			return fmt.Errorf("socketPath %q, hint socket %q", iface.SocketPath, h.VhostUser.Socket)
		}
	case hint.KindMemif:
		if iface.SocketPath != "" && iface.SocketPath != h.Memif.Socket {
			return fmt.Errorf("socketPath %q, hint socket %q", iface.SocketPath, h.Memif.Socket)
		}
	case hint.KindVFIO:
		if iface.PciID != "" && iface.PciID != h.VFIO.PCIAddress {
			return fmt.Errorf("pciID %q, hint PCI address %q", iface.PciID, h.VFIO.PCIAddress)
		}
	}
	return nil
}

// deviceMTU checks that the link name exists in the netns at path and,
// when mtu is set, has that MTU (the guest's, which the device carries).
func deviceMTU(path, name string, mtu int) error {
	return netns.Do(path, func() error {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return fmt.Errorf("link %q: %w", name, err)
		}
		if mtu != 0 && l.Attrs().MTU != mtu {
			return fmt.Errorf("link %q has mtu %d, the pseudo-interface says %d", name, l.Attrs().MTU, mtu)
		}
		return nil
	})
}
