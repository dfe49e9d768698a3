package driver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vmcni/vmcni/cnm-adapter/api"
	"github.com/vmcni/vmcni/cnm-adapter/state"
	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/netns"
)

var _ api.NetworkDriver = (*Driver)(nil)

// Capabilities implements api.NetworkDriver: a local-scope driver.
func (d *Driver) Capabilities(context.Context) (*api.CapabilitiesResponse, error) {
	return &api.CapabilitiesResponse{Scope: "local", ConnectivityScope: "local"}, nil
}

// CreateNetwork implements api.NetworkDriver: it validates the -o options
// and Docker's pools and records the network. Nothing touches the host
// until the first Join. A repeated create of a recorded network succeeds.
func (d *Driver) CreateNetwork(ctx context.Context, req *api.CreateNetworkRequest) error {
	if err := validID("NetworkID", req.NetworkID); err != nil {
		return fmt.Errorf("CreateNetwork: %w", err)
	}
	unlock, err := d.locks.lock(ctx, "net/"+req.NetworkID)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err = d.store.Network(req.NetworkID); err == nil {
		return nil
	}
	given, err := genericOptions(req.Options)
	if err != nil {
		return fmt.Errorf("network %q: %w", short(req.NetworkID), err)
	}
	opts, err := d.parseNetworkOptions(req.NetworkID, given)
	if err != nil {
		return fmt.Errorf("network %q: %w", short(req.NetworkID), err)
	}
	n := &state.Network{ID: req.NetworkID, Options: opts, Created: time.Now()}
	if n.IPv4, err = poolsOf(req.IPv4Data, false); err != nil {
		return fmt.Errorf("network %q: %w", short(req.NetworkID), err)
	}
	if n.IPv6, err = poolsOf(req.IPv6Data, true); err != nil {
		return fmt.Errorf("network %q: %w", short(req.NetworkID), err)
	}
	if path := opts[OptConflist]; path != "" {
		if n.Conflist, err = loadConflist(path); err != nil {
			return fmt.Errorf("network %q: %w", short(req.NetworkID), err)
		}
	} else {
		if len(n.IPv4) == 0 {
			return fmt.Errorf("network %q: vm-bridge needs an IPv4 pool from Docker's IPAM", short(req.NetworkID))
		}
		n.Bridge = opts[OptBridge]
		n.BridgeExisted = link.Exists(n.Bridge)
	}
	if err = d.store.PutNetwork(n); err != nil {
		return err
	}
	d.log.Info("network created", "network", short(n.ID), "options", opts)
	return nil
}

// DeleteNetwork implements api.NetworkDriver: endpoints still recorded are
// torn down, the host bridge is deleted if the adapter created it and it
// has no ports left, and the record goes. An unknown network is success.
func (d *Driver) DeleteNetwork(ctx context.Context, req *api.NetworkRequest) error {
	unlock, err := d.locks.lock(ctx, "net/"+req.NetworkID)
	if err != nil {
		return err
	}
	defer unlock()
	return d.deleteNetwork(ctx, req.NetworkID)
}

func (d *Driver) deleteNetwork(ctx context.Context, id string) error {
	n, err := d.store.Network(id)
	if errors.Is(err, state.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	eps, err := d.store.Endpoints(id)
	if err != nil {
		return err
	}
	var errs []error
	for _, ep := range eps {
		errs = append(errs, d.deleteEndpointLocked(ctx, ep.ID))
	}
	if n.Bridge != "" && !n.BridgeExisted {
		errs = append(errs, link.DeleteBridgeIfUnused(n.Bridge))
	}
	if err = errors.Join(errs...); err != nil {
		return fmt.Errorf("delete network %q: %w", short(id), err)
	}
	d.log.Info("network deleted", "network", short(id))
	return d.store.DeleteNetwork(id)
}

// AllocateNetwork implements api.NetworkDriver: swarm networks are not
// supported (the driver is local scope).
func (d *Driver) AllocateNetwork(context.Context, *api.AllocateNetworkRequest) (*api.AllocateNetworkResponse, error) {
	return nil, errors.New("AllocateNetwork: vmcni-cnm is a local-scope driver; swarm networks are not supported")
}

// FreeNetwork implements api.NetworkDriver (nothing to free).
func (d *Driver) FreeNetwork(context.Context, *api.NetworkRequest) error { return nil }

// Discover implements api.NetworkDriver: node discovery is irrelevant to a
// local driver.
func (d *Driver) Discover(context.Context, *api.DiscoveryNotification, bool) error { return nil }

// ProgramExternalConnectivity implements api.NetworkDriver. Port
// publishing (-p) is refused: vmcni-cnm has no port mapper, and silently
// not publishing would be worse.
func (d *Driver) ProgramExternalConnectivity(_ context.Context, req *api.ExternalConnectivityRequest) error {
	if ep, err := d.store.Endpoint(req.EndpointID); err == nil {
		// Evidence for the VM device design: at container start libnetwork
		// calls this before the interface reaches the sandbox.
		d.log.Debug("ProgramExternalConnectivity", "endpoint", short(ep.ID), "sandbox", ep.SandboxKey,
			"sandboxExists", netns.Exists(ep.SandboxKey), "srcNameOnHost", ep.SrcName != "" && link.Exists(ep.SrcName))
	}
	if pm, ok := req.Options["com.docker.network.portmap"].([]any); ok && len(pm) > 0 {
		return fmt.Errorf("endpoint %q: port publishing (-p) is not supported by vmcni-cnm; reach the container at its address", short(req.EndpointID))
	}
	return nil
}

// RevokeExternalConnectivity implements api.NetworkDriver (nothing to do).
func (d *Driver) RevokeExternalConnectivity(context.Context, *api.EndpointRequest) error { return nil }
