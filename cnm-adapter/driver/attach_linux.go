package driver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/containernetworking/cni/libcni"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/vmcni/vmcni/cnm-adapter/state"
	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/netns"
	"github.com/vmcni/vmcni/internal/undo"
	"github.com/vmcni/vmcni/pkg/hint"
)

// Names of what an endpoint creates on the host; they derive from the
// endpoint ID alone, so teardown finds them without a complete record.
func (d *Driver) srcName(epID string) string    { return d.prefix + short(epID)[:11] }
func (d *Driver) transferNS(epID string) string { return d.prefix + "x" + short(epID)[:10] }

// attach is Join's work (the endpoint lock held):
//
//  1. render the CNI config (Docker's addresses as static IPAM or the "ips"
//     capability, the MAC as "mac") and create the transfer netns;
//  2. record the endpoint as "joining" with the config and RuntimeConf,
//     before any CNI side effect;
//  3. CNI ADD into the transfer netns;
//  4. inside it: drop the VM plumbing's hold on the pod interface (ingress
//     qdisc), give it back the endpoint's MAC, and move it to the host
//     netns renamed SrcName in one netlink request;
//  5. delete the transfer netns (the VM device in it goes too) and the
//     now-wrong hint file, and record "joined" with the CNI result.
//
// Any failure rolls back in reverse (CNI DEL included).
func (d *Driver) attach(ctx context.Context, n *state.Network, ep *state.Endpoint) (err error) {
	var u undo.Stack
	defer func() {
		if err == nil {
			return
		}
		if rerr := u.Rollback(); rerr != nil {
			err = errors.Join(err, rerr) // stays "joining": Reconcile retries
			return
		}
		ep.Phase, ep.SrcName, ep.TransferNS, ep.Conflist, ep.Runtime, ep.Result = state.PhaseCreated, "", "", nil, nil, nil
		err = errors.Join(err, d.store.PutEndpoint(ep))
	}()
	conf, rt, err := d.renderConfig(n, ep)
	if err != nil {
		return err
	}
	list, err := libcni.NetworkConfFromBytes(conf)
	if err != nil {
		return fmt.Errorf("parse CNI config: %w", err)
	}
	nsName, src := d.transferNS(ep.ID), d.srcName(ep.ID)
	if err = errors.Join(netns.DeleteNamed(nsName), link.DeleteByName(src)); err != nil {
		return fmt.Errorf("remove leftovers: %w", err)
	}
	host, err := os.Open("/proc/self/ns/net")
	if err != nil {
		return fmt.Errorf("open host netns: %w", err)
	}
	defer host.Close()
	// Recorded before the netns exists: Reconcile never deletes the
	// transfer netns of an endpoint that is joining.
	rt.NetNS = filepath.Join(netns.NamedDir, nsName)
	ep.Phase, ep.TransferNS, ep.SrcName, ep.Conflist, ep.Runtime = state.PhaseJoining, nsName, src, conf, rt
	if err = d.store.PutEndpoint(ep); err != nil {
		return err
	}
	path, err := netns.CreateNamed(nsName)
	if err != nil {
		return fmt.Errorf("create transfer netns %q: %w", nsName, err)
	}
	u.Push("delete transfer netns", func() error { return netns.DeleteNamed(nsName) })
	// DEL after a failed ADD is allowed and cleans a partial ADD.
	u.Push("CNI DEL", func() error { return d.cniDel(list, rt) })
	res, err := d.cni.AddNetworkList(ctx, list, runtimeConf(rt))
	if err != nil {
		return fmt.Errorf("CNI ADD of network %q: %w", list.Name, err)
	}
	result, err := current.NewResultFromResult(res)
	if err != nil {
		return fmt.Errorf("convert CNI result: %w", err)
	}
	if err = checkAddresses(result, ep); err != nil {
		return err
	}
	mac, _ := net.ParseMAC(ep.MAC)
	err = netns.Do(path, func() error {
		l, lerr := link.ByName(rt.IfName)
		if lerr != nil {
			return lerr
		}
		if lerr = link.RemoveIngress(l); lerr != nil {
			return lerr
		}
		if mac != nil && l.Attrs().HardwareAddr.String() != mac.String() {
			if lerr = link.SetMAC(l, mac); lerr != nil {
				return lerr
			}
		}
		return link.MoveToNetns(l, int(host.Fd()), src)
	})
	if err != nil {
		return fmt.Errorf("hand over pod interface: %w", err)
	}
	u.Push("delete "+src, func() error { return link.DeleteByName(src) })
	if err = netns.DeleteNamed(nsName); err != nil {
		return fmt.Errorf("delete transfer netns %q: %w", nsName, err)
	}
	removeStaleHints(list, rt)
	if ep.Result, err = json.Marshal(result); err != nil {
		return fmt.Errorf("encode CNI result: %w", err)
	}
	ep.Phase = state.PhaseJoined
	if err = d.store.PutEndpoint(ep); err != nil {
		return err
	}
	u.Commit()
	return nil
}

// checkAddresses makes sure the plugins configured the addresses Docker
// assigned (a conflist whose IPAM ignores the "ips" capability would not).
func checkAddresses(res *current.Result, ep *state.Endpoint) error {
	for _, want := range []string{ep.Address, ep.AddressIPv6} {
		if want == "" {
			continue
		}
		ip, _, _ := net.ParseCIDR(want)
		found := false
		for _, got := range res.IPs {
			found = found || got.Address.IP.Equal(ip)
		}
		if !found {
			return fmt.Errorf("the CNI result has no address %q, which Docker assigned: give the conflist's IPAM the \"ips\" capability (host-local, static) or use --ipam-driver with this plugin", want)
		}
	}
	return nil
}

// removeStaleHints removes the hint files vm-bridge wrote for the VM
// device it built in the transfer netns: that device is gone, and a VM
// runtime must not act on a hint naming it.
func removeStaleHints(list *libcni.NetworkConfigList, rt *state.Runtime) {
	for _, p := range list.Plugins {
		if p.Network.Type != "vm-bridge" {
			continue
		}
		var c struct {
			StateDir string `json:"stateDir"`
		}
		_ = json.Unmarshal(p.Bytes, &c)
		if c.StateDir == "" {
			c.StateDir = hint.DefaultStateDir
		}
		_ = hint.Remove(filepath.Clean(c.StateDir), rt.ContainerID, rt.IfName)
	}
}

// cniDel runs CNI DEL with its own deadline (rollback and teardown must
// finish even when the request's context is spent).
func (d *Driver) cniDel(list *libcni.NetworkConfigList, rt *state.Runtime) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := d.cni.DelNetworkList(ctx, list, runtimeConf(rt)); err != nil {
		return fmt.Errorf("CNI DEL of network %q: %w", list.Name, err)
	}
	return nil
}

// teardown undoes whatever Join may have done for ep, best effort and
// idempotent: the VM device's chained DEL, CNI DEL with the recorded config (the veth pair goes with its
// host end), then the SrcName link (if libnetwork moved it back or never
// took it) and the transfer netns. On success ep is back to "created".
func (d *Driver) teardown(_ context.Context, ep *state.Endpoint) error {
	d.stopVMWatch(ep.ID)
	// The VM device first: its chained DEL restores the interface.
	errs := []error{d.detachVM(ep)}
	if len(ep.Conflist) > 0 && ep.Runtime != nil {
		list, err := libcni.NetworkConfFromBytes(ep.Conflist)
		if err != nil {
			errs = append(errs, fmt.Errorf("parse recorded config: %w", err))
		} else {
			errs = append(errs, d.cniDel(list, ep.Runtime))
		}
	}
	errs = append(errs, link.DeleteByName(d.srcName(ep.ID)), netns.DeleteNamed(d.transferNS(ep.ID)))
	if err := errors.Join(errs...); err != nil {
		return err
	}
	ep.Phase, ep.SrcName, ep.TransferNS, ep.Conflist, ep.Runtime, ep.Result = state.PhaseCreated, "", "", nil, nil, nil
	ep.VM = nil
	return d.store.PutEndpoint(ep)
}
