package driver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/containernetworking/cni/libcni"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/vmcni/vmcni/cnm-adapter/state"
	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/netns"
	"github.com/vmcni/vmcni/internal/undo"
)

// The VM device (networks with -o vmdevice=MODE).
//
// libnetwork moves SrcName into the sandbox only after Join has returned:
// with runc's external-key setup, from the libnetwork-setkey prestart hook
// (after Join and after ProgramExternalConnectivity, neither of which can
// see the interface in the sandbox); with `docker network connect` to a
// running container, right after Join. No driver call follows the move.
// So Join starts a watcher that polls the sandbox netns (the Join
// request's SandboxKey) until the endpoint's interface is there and fully
// configured, then runs vm-bridge CHAINED on it with CNI ADD: the
// tap/macvtap (and netns bridge) appear in the sandbox and vm-bridge
// writes the hint file <stateDir>/<endpoint ID>/<ethN>/hint.json.

// dstPrefix is the DstPrefix returned by Join: libnetwork names the
// interface <dstPrefix><n> in the sandbox.
const dstPrefix = "eth"

// sandboxIfMax bounds the <dstPrefix><n> names the watcher looks at.
const sandboxIfMax = 32

// vmPollInterval is how often the watcher looks into the sandbox.
const vmPollInterval = 100 * time.Millisecond

// vmWatches tracks the running sandbox watchers.
type vmWatches struct {
	mu sync.Mutex          // guards m
	m  map[string]*vmWatch // endpoint ID → its watcher
}

type vmWatch struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when the watcher returned
}

// startVMWatch starts the sandbox watcher of ep unless one runs. It must
// be called with ep's lock held, on a joined endpoint.
func (d *Driver) startVMWatch(ep *state.Endpoint) {
	mac, err := net.ParseMAC(ep.MAC)
	if err != nil || ep.SandboxKey == "" {
		d.log.Error("VM device: endpoint has no MAC or sandbox key", "endpoint", short(ep.ID), "mac", ep.MAC, "sandbox", ep.SandboxKey)
		return
	}
	d.vmw.mu.Lock()
	defer d.vmw.mu.Unlock()
	if d.vmw.m == nil {
		d.vmw.m = map[string]*vmWatch{}
	}
	if _, running := d.vmw.m[ep.ID]; running {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.vmTimeout)
	w := &vmWatch{cancel: cancel, done: make(chan struct{})}
	d.vmw.m[ep.ID] = w
	id, key := ep.ID, ep.SandboxKey
	go func() {
		defer close(w.done)
		defer cancel()
		defer func() {
			d.vmw.mu.Lock()
			if d.vmw.m[id] == w {
				delete(d.vmw.m, id)
			}
			d.vmw.mu.Unlock()
		}()
		defer func() {
			// A watcher's bug must not take down the daemon (and every
			// other container's network with it).
			if r := recover(); r != nil {
				d.log.Error("VM device watcher panicked", "endpoint", short(id), "panic", r)
			}
		}()
		d.watchVM(ctx, id, key, mac)
	}()
}

// stopVMWatch stops ep's watcher, if any, and waits for it. Safe with
// ep's lock held: a watcher waiting for the lock gives up when cancelled.
func (d *Driver) stopVMWatch(id string) {
	d.vmw.mu.Lock()
	w := d.vmw.m[id]
	delete(d.vmw.m, id)
	d.vmw.mu.Unlock()
	if w != nil {
		w.cancel()
		<-w.done
	}
}

// StopVMWatches stops every sandbox watcher (daemon shutdown). Endpoints
// left without their VM device are picked up by the next Reconcile.
func (d *Driver) StopVMWatches() {
	d.vmw.mu.Lock()
	ids := make([]string, 0, len(d.vmw.m))
	for id := range d.vmw.m {
		ids = append(ids, id)
	}
	d.vmw.mu.Unlock()
	for _, id := range ids {
		d.stopVMWatch(id)
	}
}

// watchVM polls the sandbox until the endpoint's interface is there, then
// builds the VM device under the endpoint lock. On timeout it records the
// failure.
func (d *Driver) watchVM(ctx context.Context, id, key string, mac net.HardwareAddr) {
	start := time.Now()
	tick := time.NewTicker(vmPollInterval)
	defer tick.Stop()
	var ifName string
	var lastErr error
	for ifName == "" {
		ifName, lastErr = findSandboxIf(key, mac)
		if ifName != "" {
			break
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				cause := fmt.Errorf("the interface with MAC %q did not appear in sandbox %q within %s", mac, key, d.vmTimeout)
				if lastErr != nil {
					cause = fmt.Errorf("%w (last error: %w)", cause, lastErr)
				}
				d.log.Error("VM device not built", "endpoint", short(id), "err", cause)
				d.recordVMFailure(id, key, cause)
			}
			return
		case <-tick.C:
		}
	}
	d.log.Debug("sandbox interface ready", "endpoint", short(id), "ifName", ifName, "sandbox", key, "afterJoin", time.Since(start))
	unlock, err := d.locks.lock(ctx, "ep/"+id)
	if err != nil {
		return // Leave or a teardown took over
	}
	defer unlock()
	ep, n, err := d.endpointAndNetwork(id)
	if err != nil {
		d.log.Warn("VM device: endpoint gone before its device was built", "endpoint", short(id), "err", err)
		return
	}
	if ep.Phase != state.PhaseJoined || ep.SandboxKey != key || vmDevice(n) == "" ||
		(ep.VM != nil && ep.VM.Phase != state.VMFailed) {
		return
	}
	if err = d.attachVM(n, ep, ifName); err != nil {
		d.log.Error("VM device not built", "endpoint", short(id), "ifName", ifName, "err", err)
		return
	}
	d.log.Info("VM device built", "endpoint", short(id), "mode", ep.VM.Mode, "ifName", ifName, "sandbox", key)
}

func (d *Driver) endpointAndNetwork(id string) (*state.Endpoint, *state.Network, error) {
	ep, err := d.store.Endpoint(id)
	if err != nil {
		return nil, nil, err
	}
	n, err := d.store.Network(ep.NetworkID)
	if err != nil {
		return nil, nil, err
	}
	return ep, n, nil
}

// recordVMFailure marks the VM device of a still-joined endpoint failed.
func (d *Driver) recordVMFailure(id, key string, cause error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := d.withEndpoint(ctx, id, func(ep *state.Endpoint) error {
		if ep.Phase != state.PhaseJoined || ep.SandboxKey != key || ep.VM != nil {
			return nil
		}
		n, nerr := d.store.Network(ep.NetworkID)
		if nerr != nil {
			return nerr
		}
		ep.VM = &state.VMDevice{Mode: vmDevice(n), Phase: state.VMFailed, Error: cause.Error(), Updated: time.Now()}
		return d.store.PutEndpoint(ep)
	})
	if err != nil {
		d.log.Warn("VM device: record failure", "endpoint", short(id), "err", err)
	}
}

// findSandboxIf returns the name of the endpoint's interface in the
// sandbox at key once libnetwork has finished configuring it, else "".
// libnetwork moves SrcName in, renames it <dstPrefix><n>, sets the MAC and
// addresses and sets it up last; routes follow, and none of vm-bridge's
// chained changes conflicts with them.
func findSandboxIf(key string, mac net.HardwareAddr) (string, error) {
	if !netns.Exists(key) {
		return "", nil // not created or not bind-mounted yet
	}
	var found string
	err := netns.Do(key, func() error {
		for i := 0; i < sandboxIfMax; i++ {
			l, err := link.ByName(fmt.Sprintf("%s%d", dstPrefix, i))
			if link.IsNotFound(err) {
				continue
			}
			if err != nil {
				return err
			}
			a := l.Attrs()
			if bytes.Equal(a.HardwareAddr, mac) && a.Flags&net.FlagUp != 0 {
				found = a.Name
				return nil
			}
		}
		return nil
	})
	if errors.Is(err, netns.ErrGone) {
		return "", nil
	}
	return found, err
}

// vmBridgeChained is the generated chained vm-bridge config; the
// prevResult is embedded, so the recorded config replays DEL by itself.
type vmBridgeChained struct {
	Type       string          `json:"type"`
	Mode       string          `json:"mode"`
	StateDir   string          `json:"stateDir,omitempty"`
	LogFile    string          `json:"logFile,omitempty"`
	LogLevel   string          `json:"logLevel,omitempty"`
	PrevResult *current.Result `json:"prevResult"`
}

// renderVMConfig returns the chained config and runtime of ep's VM device
// on the sandbox interface ifName.
func (d *Driver) renderVMConfig(n *state.Network, ep *state.Endpoint, ifName string) ([]byte, *state.Runtime, error) {
	prev, err := vmPrevResult(n, ep, ifName)
	if err != nil {
		return nil, nil, err
	}
	pc := vmBridgeChained{
		Type: "vm-bridge", Mode: vmDevice(n), StateDir: n.Options[OptStateDir],
		LogFile: n.Options[OptLogFile], LogLevel: n.Options[OptLogLevel], PrevResult: prev,
	}
	if pc.StateDir == "" {
		pc.StateDir = d.stateDir
	}
	data, err := json.Marshal(conflist{CNIVersion: "1.1.0", Name: cniName(n), Plugins: []any{pc}})
	if err != nil {
		return nil, nil, fmt.Errorf("encode VM device config: %w", err)
	}
	return data, &state.Runtime{ContainerID: ep.ID, NetNS: ep.SandboxKey, IfName: ifName}, nil
}

// vmPrevResult describes the sandbox interface as a previous plugin would
// have: its name, the endpoint's MAC, the sandbox, and the addresses,
// routes and DNS of the host-side ADD's result (Docker's addresses and
// gateways when that result has none).
func vmPrevResult(n *state.Network, ep *state.Endpoint, ifName string) (*current.Result, error) {
	zero := 0
	res := &current.Result{
		CNIVersion: "1.1.0",
		Interfaces: []*current.Interface{{Name: ifName, Mac: ep.MAC, Sandbox: ep.SandboxKey}},
	}
	if len(ep.Result) > 0 {
		var host current.Result
		if err := json.Unmarshal(ep.Result, &host); err != nil {
			return nil, fmt.Errorf("decode recorded CNI result of endpoint %q: %w", short(ep.ID), err)
		}
		seen := map[string]bool{}
		for _, ip := range host.IPs {
			if seen[ip.Address.String()] {
				continue // vm-bridge repeats each address on its pseudo-interface
			}
			seen[ip.Address.String()] = true
			res.IPs = append(res.IPs, &current.IPConfig{Interface: &zero, Address: ip.Address, Gateway: ip.Gateway})
		}
		res.Routes, res.DNS = host.Routes, host.DNS
	}
	if len(res.IPs) == 0 {
		for _, a := range []struct {
			addr  string
			pools []state.Pool
		}{{ep.Address, n.IPv4}, {ep.AddressIPv6, n.IPv6}} {
			if a.addr == "" {
				continue
			}
			ip, subnet, err := net.ParseCIDR(a.addr)
			if err != nil {
				return nil, fmt.Errorf("endpoint %q: address %q: %w", short(ep.ID), a.addr, err)
			}
			subnet.IP = ip
			res.IPs = append(res.IPs, &current.IPConfig{Interface: &zero, Address: *subnet, Gateway: net.ParseIP(gatewayOf(a.pools, a.addr))})
		}
	}
	return res, nil
}

// attachVM runs the chained CNI ADD (ep's lock held): recorded
// "attaching" with its exact config before the ADD, "attached" with the
// result after. A failed ADD is undone with the chained DEL (vm-bridge
// rolls back itself too) and recorded "failed"; if that DEL fails as well
// the record stays "attaching" and Leave / DeleteEndpoint / Reconcile
// retry it.
func (d *Driver) attachVM(n *state.Network, ep *state.Endpoint, ifName string) (err error) {
	mode := vmDevice(n)
	conf, rt, err := d.renderVMConfig(n, ep, ifName)
	if err != nil {
		return d.failVM(ep, mode, err)
	}
	list, err := libcni.NetworkConfFromBytes(conf)
	if err != nil {
		return d.failVM(ep, mode, fmt.Errorf("parse VM device config: %w", err))
	}
	ep.VM = &state.VMDevice{Mode: mode, Phase: state.VMAttaching, Conflist: conf, Runtime: rt, Updated: time.Now()}
	if err = d.store.PutEndpoint(ep); err != nil {
		return err
	}
	var u undo.Stack
	defer func() {
		if err == nil {
			return
		}
		if rerr := u.Rollback(); rerr != nil {
			err = errors.Join(err, rerr) // stays "attaching"
			return
		}
		err = d.failVM(ep, mode, err)
	}()
	u.Push("CNI DEL of the VM device", func() error { return d.cniDel(list, rt) })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := d.cni.AddNetworkList(ctx, list, runtimeConf(rt))
	if err != nil {
		return fmt.Errorf("CNI ADD of VM device %q on %q in sandbox %q: %w", mode, ifName, ep.SandboxKey, err)
	}
	result, err := current.NewResultFromResult(res)
	if err != nil {
		return fmt.Errorf("convert VM device CNI result: %w", err)
	}
	if ep.VM.Result, err = json.Marshal(result); err != nil {
		return fmt.Errorf("encode VM device CNI result: %w", err)
	}
	ep.VM.Phase, ep.VM.Updated = state.VMAttached, time.Now()
	if err = d.store.PutEndpoint(ep); err != nil {
		return err
	}
	u.Commit()
	return nil
}

// failVM records cause as the reason ep has no VM device and returns it.
func (d *Driver) failVM(ep *state.Endpoint, mode string, cause error) error {
	ep.VM = &state.VMDevice{Mode: mode, Phase: state.VMFailed, Error: cause.Error(), Updated: time.Now()}
	return errors.Join(cause, d.store.PutEndpoint(ep))
}

// detachVM undoes ep's VM device with the recorded chained config (CNI
// DEL: the tap/macvtap, netns bridge, tc filters, hint file and vm-bridge
// record go; the interface gets its MAC back) and clears ep.VM in memory;
// the caller writes the record. Idempotent. Once the sandbox is gone its
// links went with it: DEL then runs without CNI_NETNS and removes only the
// hint file and vm-bridge's record.
func (d *Driver) detachVM(ep *state.Endpoint) error {
	if ep.VM == nil {
		return nil
	}
	if len(ep.VM.Conflist) > 0 && ep.VM.Runtime != nil {
		list, err := libcni.NetworkConfFromBytes(ep.VM.Conflist)
		if err != nil {
			return fmt.Errorf("parse recorded VM device config: %w", err)
		}
		rt := *ep.VM.Runtime
		if !netns.Exists(rt.NetNS) {
			rt.NetNS = ""
		}
		if err = d.cniDel(list, &rt); err != nil {
			return fmt.Errorf("VM device on %q: %w", rt.IfName, err)
		}
	}
	ep.VM = nil
	return nil
}
