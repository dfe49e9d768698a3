package conformance

import (
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

// vmHint checks the VM side of the hint contract for each pseudo-interface.
func (s *suite) vmHint(res *current.Result, att attachment) verdict {
	pseudo := hint.PseudoInterfaces(res, att.ContainerID)
	if len(pseudo) == 0 {
		return skip("not applicable: the result has no vmcni pseudo-interface (sandbox = container ID), i.e. no VM device")
	}
	var problems, details []string
	for _, i := range pseudo {
		iface := res.Interfaces[i]
		if err := checkPseudo(res, i, att); err != nil {
			problems = append(problems, err.Error())
		}
		h, dir, err := s.readHint(att)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		if err := checkHint(res, iface, h, att); err != nil {
			problems = append(problems, fmt.Sprintf("hint file in %s: %v", dir, err))
			continue
		}
		details = append(details, fmt.Sprintf("pseudo-interface [%d] %s: kind %s, hint file %s agrees", i, iface.Name, h.Kind, hint.Path(dir, att.ContainerID, att.IfName)))
	}
	if len(problems) > 0 {
		return fail("%s", problems[0]).with(append(problems[1:], details...)...)
	}
	return pass("%d pseudo-interface(s) agree with their device and hint file", len(pseudo)).with(details...)
}

// checkPseudo checks one pseudo-interface on its own: its MAC, its device
// interface in the netns (tap, macvtap), socketPath and pciID.
func checkPseudo(res *current.Result, i int, att attachment) error {
	iface := res.Interfaces[i]
	if _, err := net.ParseMAC(iface.Mac); err != nil {
		return fmt.Errorf("pseudo-interface %q: mac %q: %w", iface.Name, iface.Mac, err)
	}
	for _, dev := range res.Interfaces {
		if dev.Name == iface.Name && dev.Sandbox == att.Netns {
			if err := linkIn(att.Netns, dev.Name, ""); err != nil {
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
