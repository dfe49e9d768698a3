package driver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"time"

	"github.com/vmcni/vmcni/cnm-adapter/api"
	"github.com/vmcni/vmcni/cnm-adapter/state"
	"github.com/vmcni/vmcni/internal/netns"
)

// Reconcile brings the host and the state back in line after a restart or
// crash, and may run any time (it takes the same locks as requests):
//
//   - endpoints caught mid-Join ("joining") get a CNI DEL and go back to
//     "created";
//   - with a Docker client: networks Docker no longer has are deleted with
//     all their endpoints; endpoints Docker no longer lists get CNI DEL and
//     are forgotten; IPAM pools no Docker network uses are released, and
//     so are leases of addresses no container of the pool's network holds
//     (records younger than the grace period are left alone: Docker may
//     not list them yet);
//   - VM devices caught mid-build ("attaching") get their chained CNI DEL;
//   - transfer netns with no endpoint mid-Join are deleted;
//   - joined endpoints of vmdevice networks whose sandbox exists but that
//     have no VM device (or a failed one) get a new sandbox watcher.
//
// It returns the joined errors of the steps that failed; the rest still run.
func (d *Driver) Reconcile(ctx context.Context) error {
	var errs []error
	eps, err := d.store.Endpoints("")
	if err != nil {
		return err
	}
	for _, ep := range eps {
		switch {
		case ep.Phase == state.PhaseJoining:
			errs = append(errs, d.withEndpoint(ctx, ep.ID, func(cur *state.Endpoint) error {
				if cur.Phase != state.PhaseJoining {
					return nil // a Join of this daemon finished meanwhile
				}
				d.log.Warn("reconcile: undoing interrupted Join", "endpoint", short(cur.ID))
				return d.teardown(ctx, cur)
			}))
		case ep.VM != nil && ep.VM.Phase == state.VMAttaching:
			errs = append(errs, d.withEndpoint(ctx, ep.ID, func(cur *state.Endpoint) error {
				if cur.VM == nil || cur.VM.Phase != state.VMAttaching {
					return nil
				}
				d.log.Warn("reconcile: undoing interrupted VM device", "endpoint", short(cur.ID))
				if err := d.detachVM(cur); err != nil {
					return fmt.Errorf("endpoint %q: %w", short(cur.ID), err)
				}
				return d.store.PutEndpoint(cur)
			}))
		}
	}
	if d.docker != nil {
		errs = append(errs, d.reconcileNetworks(ctx), d.reconcilePools(ctx))
	}
	errs = append(errs, d.removeStaleTransferNS(), d.resumeVMDevices(ctx))
	return errors.Join(errs...)
}

// resumeVMDevices restarts the sandbox watcher of joined endpoints of
// vmdevice networks that have no VM device (the daemon died before it was
// built, its build was undone above, or it failed) while their sandbox
// exists: the device is built as soon as the interface is found.
func (d *Driver) resumeVMDevices(ctx context.Context) error {
	eps, err := d.store.Endpoints("")
	if err != nil {
		return err
	}
	var errs []error
	for _, ep := range eps {
		if ep.Phase != state.PhaseJoined || (ep.VM != nil && ep.VM.Phase != state.VMFailed) || !netns.Exists(ep.SandboxKey) {
			continue
		}
		errs = append(errs, d.withEndpoint(ctx, ep.ID, func(cur *state.Endpoint) error {
			n, nerr := d.store.Network(cur.NetworkID)
			if nerr != nil {
				return nerr
			}
			if cur.Phase == state.PhaseJoined && vmDevice(n) != "" && (cur.VM == nil || cur.VM.Phase == state.VMFailed) {
				d.log.Info("reconcile: building missing VM device", "endpoint", short(cur.ID))
				cur.VM = nil
				if perr := d.store.PutEndpoint(cur); perr != nil {
					return perr
				}
				d.startVMWatch(cur)
			}
			return nil
		}))
	}
	return errors.Join(errs...)
}

// withEndpoint runs fn on the current record of id under its lock.
func (d *Driver) withEndpoint(ctx context.Context, id string, fn func(*state.Endpoint) error) error {
	unlock, err := d.locks.lock(ctx, "ep/"+id)
	if err != nil {
		return err
	}
	defer unlock()
	ep, err := d.store.Endpoint(id)
	if errors.Is(err, state.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return fn(ep)
}

func (d *Driver) old(t time.Time) bool { return time.Since(t) > d.grace }

func (d *Driver) reconcileNetworks(ctx context.Context) error {
	nets, err := d.store.Networks()
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range nets {
		dn, derr := d.docker.Network(ctx, n.ID)
		if errors.Is(derr, ErrNoSuchNetwork) {
			if d.old(n.Created) {
				d.log.Warn("reconcile: Docker no longer has the network", "network", short(n.ID))
				errs = append(errs, d.DeleteNetwork(ctx, &api.NetworkRequest{NetworkID: n.ID}))
			}
			continue
		}
		if derr != nil {
			errs = append(errs, derr)
			continue
		}
		known := map[string]bool{}
		for _, c := range dn.Containers {
			known[c.EndpointID] = true
		}
		eps, lerr := d.store.Endpoints(n.ID)
		if lerr != nil {
			errs = append(errs, lerr)
			continue
		}
		for _, ep := range eps {
			if known[ep.ID] || (ep.Phase == state.PhaseCreated && !d.old(ep.Created)) {
				continue
			}
			if ep.Phase == state.PhaseJoined && !d.old(ep.Created) {
				continue // Docker lists an endpoint once its sandbox is set up
			}
			d.log.Warn("reconcile: Docker no longer has the endpoint", "endpoint", short(ep.ID), "phase", ep.Phase)
			errs = append(errs, d.withEndpoint(ctx, ep.ID, func(cur *state.Endpoint) error {
				return d.deleteEndpointLocked(ctx, cur.ID)
			}))
		}
	}
	return errors.Join(errs...)
}

func (d *Driver) reconcilePools(ctx context.Context) error {
	pools, err := d.store.Pools()
	if err != nil || len(pools) == 0 {
		return err
	}
	dnets, err := d.docker.Networks(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range pools {
		var users []string
		for _, dn := range dnets {
			for _, c := range dn.IPAM.Config {
				if c.Subnet == p.Subnet && dn.IPAM.Driver != "default" {
					users = append(users, dn.ID)
				}
			}
		}
		if len(users) == 0 {
			if d.old(p.Created) {
				d.log.Warn("reconcile: no Docker network uses the pool", "pool", p.ID)
				errs = append(errs, d.withIPAM(ctx, func() error { return d.releasePool(ctx, p.ID) }))
			}
			continue
		}
		inUse := map[string]bool{}
		for _, id := range users {
			dn, derr := d.docker.Network(ctx, id)
			if derr != nil {
				errs = append(errs, derr)
				inUse = nil
				break
			}
			for _, c := range dn.Containers {
				for _, a := range []string{c.IPv4Address, c.IPv6Address} {
					if ip, _, perr := net.ParseCIDR(a); perr == nil {
						inUse[ip.String()] = true
					}
				}
			}
		}
		if inUse == nil {
			continue
		}
		errs = append(errs, d.withIPAM(ctx, func() error {
			leases, lerr := d.store.Leases(p.ID)
			if lerr != nil {
				return lerr
			}
			var lerrs []error
			for _, l := range leases {
				if !inUse[l.Address] && d.old(l.Created) {
					d.log.Warn("reconcile: releasing unused lease", "pool", p.ID, "address", l.Address)
					lerrs = append(lerrs, d.releaseLease(ctx, p, l))
				}
			}
			return errors.Join(lerrs...)
		}))
	}
	return errors.Join(errs...)
}

func (d *Driver) withIPAM(ctx context.Context, fn func() error) error {
	unlock, err := d.locks.lock(ctx, "ipam")
	if err != nil {
		return err
	}
	defer unlock()
	return fn()
}

// removeStaleTransferNS deletes the transfer netns of this daemon's
// endpoints that are not joining (a Join that died between creating it
// and recording its end). Only names derived from endpoints in this
// daemon's store are touched: another adapter with the same name prefix
// (a second daemon, a test) keeps its in-flight Joins.
func (d *Driver) removeStaleTransferNS() error {
	eps, err := d.store.Endpoints("")
	if err != nil {
		return err
	}
	var errs []error
	for _, ep := range eps {
		if ep.Phase == state.PhaseJoining {
			continue
		}
		if name := d.transferNS(ep.ID); netns.Exists(filepath.Join(netns.NamedDir, name)) {
			errs = append(errs, netns.DeleteNamed(name))
		}
	}
	return errors.Join(errs...)
}
