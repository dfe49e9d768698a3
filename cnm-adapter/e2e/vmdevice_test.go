package e2e

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmcni/vmcni/cnm-adapter/internal/hostcheck"
	"github.com/vmcni/vmcni/cnm-adapter/state"
	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/netns"
	"github.com/vmcni/vmcni/internal/testutil"
	"github.com/vmcni/vmcni/pkg/hint"
)

// inspect returns one Go-template field of the container's endpoint on
// network netName.
func (e *env) endpointField(container, netName, field string) string {
	return e.docker("inspect", "-f", fmt.Sprintf("{{(index .NetworkSettings.Networks %q).%s}}", netName, field), container)
}

// waitHint waits for the hint file of (epID, ifName) to appear and validate.
func (e *env) waitHint(epID, ifName string) *hint.Hint {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		h, err := hint.Read(e.dirs[0], epID, ifName)
		if err == nil {
			return h
		}
		if time.Now().After(deadline) {
			adapterLog, _ := os.ReadFile(filepath.Join(e.dir, "adapter.log"))
			e.t.Fatalf("no valid hint for endpoint %s/%s: %v\nadapter log:\n%s", short(epID), ifName, err, tail(adapterLog))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// checkTapDevice asserts that the sandbox at key holds tapName and the pod
// interface ifName with the endpoint's MAC, and that the hint describes
// them.
func checkTapDevice(t *testing.T, h *hint.Hint, key, epID, ifName, mac string) {
	t.Helper()
	if h.Kind != hint.KindTap || h.Tap == nil || h.ContainerID != epID || h.IfName != ifName || h.Netns != key || h.Tap.Netns != key {
		t.Fatalf("hint does not describe a tap in sandbox %q for %s/%s: %+v", key, short(epID), ifName, h)
	}
	if h.Guest.MAC != mac {
		t.Fatalf("hint guest MAC %q, the container interface has %q", h.Guest.MAC, mac)
	}
	err := netns.Do(key, func() error {
		tap, lerr := link.ByName(h.Tap.Name)
		if lerr != nil {
			return fmt.Errorf("tap %q: %w", h.Tap.Name, lerr)
		}
		if a, ok := hint.ParseDeviceAlias(tap.Attrs().Alias); !ok || a.GuestMAC != mac {
			return fmt.Errorf("tap %q alias %q does not carry guest MAC %q", h.Tap.Name, tap.Attrs().Alias, mac)
		}
		pod, lerr := link.ByName(ifName)
		if lerr != nil {
			return fmt.Errorf("pod interface %q: %w", ifName, lerr)
		}
		if pod.Attrs().HardwareAddr.String() != mac {
			return fmt.Errorf("pod interface %q has MAC %s, want %s", ifName, pod.Attrs().HardwareAddr, mac)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("sandbox %q: %v", key, err)
	}
}

// tapGone asserts the sandbox at key no longer holds tapName and the hint
// of (epID, ifName) is gone.
func (e *env) tapGone(key, tapName, epID, ifName string) {
	e.t.Helper()
	err := netns.Do(key, func() error {
		if link.Exists(tapName) {
			return fmt.Errorf("tap %q still exists", tapName)
		}
		return nil
	})
	if err != nil {
		e.t.Fatalf("sandbox %q: %v", key, err)
	}
	if _, err = os.Stat(hint.Path(e.dirs[0], epID, ifName)); !errors.Is(err, os.ErrNotExist) {
		e.t.Fatalf("hint of %s/%s still there: %v", short(epID), ifName, err)
	}
}

// TestDockerVMDevice: a network with -o vmdevice=tcfilter. A container
// started on it gets, once libnetwork has moved its interface into the
// sandbox, a tap wired by tc in its netns and a valid hint file naming
// that tap with the interface's MAC. `docker network disconnect` (Leave
// with the sandbox alive) removes tap and hint; `docker network connect`
// (the move right after Join) builds them again; rm -f and network rm
// leave nothing: links, hint files, plugin records, adapter state.
func TestDockerVMDevice(t *testing.T) {
	e := newEnv(t)
	image := e.importImage()
	e.startAdapter()
	before := testutil.TakeSnapshot(t, e.dirs)

	subnet := fmt.Sprintf("10.213.%d.0/24", 100+rand.IntN(150))
	bridge := testutil.UniqueName("vmct")
	netName := e.name + "v"
	e.docker("network", "create", "-d", e.name, "--subnet", subnet,
		"-o", "vmdevice=tcfilter", "-o", "bridge="+bridge, netName)
	c := e.name + "vm"
	t.Cleanup(func() {
		_, _ = e.dockerErr("rm", "-f", c)
		_, _ = e.dockerErr("network", "rm", netName)
	})
	e.docker("run", "-d", "--name", c, "--network", netName, image, "sleep", "3600")
	key := e.docker("inspect", "-f", "{{.NetworkSettings.SandboxKey}}", c)
	ep := e.endpointField(c, netName, "EndpointID")
	mac := e.endpointField(c, netName, "MacAddress")
	srcNames := map[string]bool{bridge: true, "vmct" + ep[:11]: true}

	h := e.waitHint(ep, "eth0")
	checkTapDevice(t, h, key, ep, "eth0", mac)
	if len(h.Guest.IPs) != 1 || !strings.HasPrefix(h.Guest.IPs[0].Address, e.endpointField(c, netName, "IPAddress")+"/") {
		t.Fatalf("hint guest IPs %+v, container has %s", h.Guest.IPs, e.endpointField(c, netName, "IPAddress"))
	}

	t.Log("network disconnect: Leave undoes the VM device while the sandbox lives")
	e.docker("network", "disconnect", netName, c)
	e.tapGone(key, h.Tap.Name, ep, "eth0")

	t.Log("network connect: the interface reaches the running sandbox right after Join")
	e.docker("network", "connect", netName, c)
	ep2 := e.endpointField(c, netName, "EndpointID")
	mac2 := e.endpointField(c, netName, "MacAddress")
	srcNames["vmct"+ep2[:11]] = true
	var ifName string
	_ = netns.Do(key, func() error { // after disconnect libnetwork may number it eth0 or eth1
		for _, n := range []string{"eth0", "eth1"} {
			if l, err := link.ByName(n); err == nil && l.Attrs().HardwareAddr.String() == mac2 {
				ifName = n
			}
		}
		return nil
	})
	if ifName == "" {
		t.Fatalf("no interface with MAC %s in sandbox %q", mac2, key)
	}
	h2 := e.waitHint(ep2, ifName)
	checkTapDevice(t, h2, key, ep2, ifName, mac2)

	e.docker("rm", "-f", c)
	e.docker("network", "rm", netName)
	e.stopAdapter()
	hostcheck.AssertSameHost(t, before, e.dirs, func(name string) bool { return srcNames[name] })
	st, err := state.Open(filepath.Join(e.stateDir, "state.db"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if n, cerr := st.Count(); cerr != nil || !n.Empty() {
		t.Fatalf("adapter state not empty: %+v %v", n, cerr)
	}
	logData, _ := os.ReadFile(filepath.Join(e.dir, "adapter.log"))
	for _, l := range strings.Split(string(logData), "\n") {
		if strings.Contains(l, "sandboxExists") || strings.Contains(l, "sandbox interface ready") {
			t.Log(l) // evidence of when the interface reaches the sandbox
		}
	}
}

// TestDockerVMDeviceModes: -o vmdevice=bridge and =macvtap build their
// device (netns bridge + tap, macvtap) in the sandbox with a valid hint
// whose guest MAC is the container interface's; rm -f and network rm leave
// nothing.
func TestDockerVMDeviceModes(t *testing.T) {
	e := newEnv(t)
	image := e.importImage()
	e.startAdapter()
	before := testutil.TakeSnapshot(t, e.dirs)
	srcNames := map[string]bool{}
	for i, mode := range []string{"bridge", "macvtap"} {
		subnet := fmt.Sprintf("10.213.%d.0/24", 100+rand.IntN(150))
		bridge := testutil.UniqueName("vmct")
		netName := fmt.Sprintf("%sm%d", e.name, i)
		c := fmt.Sprintf("%smc%d", e.name, i)
		srcNames[bridge] = true
		e.docker("network", "create", "-d", e.name, "--subnet", subnet, "-o", "vmdevice="+mode, "-o", "bridge="+bridge, netName)
		t.Cleanup(func() {
			_, _ = e.dockerErr("rm", "-f", c)
			_, _ = e.dockerErr("network", "rm", netName)
		})
		e.docker("run", "-d", "--name", c, "--network", netName, image, "sleep", "3600")
		key := e.docker("inspect", "-f", "{{.NetworkSettings.SandboxKey}}", c)
		ep := e.endpointField(c, netName, "EndpointID")
		mac := e.endpointField(c, netName, "MacAddress")
		srcNames["vmct"+ep[:11]] = true
		h := e.waitHint(ep, "eth0")
		if h.Netns != key || h.Guest.MAC != mac || h.DeviceName() == "" ||
			(mode == "bridge") != (h.Kind == hint.KindTap) || (mode == "macvtap") != (h.Kind == hint.KindMacvtap) {
			t.Fatalf("%s: hint %+v (sandbox %q, MAC %s)", mode, h, key, mac)
		}
		err := netns.Do(key, func() error {
			dev, lerr := link.ByName(h.DeviceName())
			if lerr != nil {
				return lerr
			}
			if a, ok := hint.ParseDeviceAlias(dev.Attrs().Alias); !ok || a.GuestMAC != mac {
				return fmt.Errorf("device %q alias %q", h.DeviceName(), dev.Attrs().Alias)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%s: sandbox %q: %v", mode, key, err)
		}
		e.docker("rm", "-f", c)
		e.docker("network", "rm", netName)
	}
	e.stopAdapter()
	hostcheck.AssertSameHost(t, before, e.dirs, func(name string) bool { return srcNames[name] })
	st, err := state.Open(filepath.Join(e.stateDir, "state.db"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if n, cerr := st.Count(); cerr != nil || !n.Empty() {
		t.Fatalf("adapter state not empty: %+v %v", n, cerr)
	}
}
