package driver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/vmcni/vmcni/cnm-adapter/api"
	"github.com/vmcni/vmcni/cnm-adapter/state"
	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/netns"
)

// CreateEndpoint implements api.NetworkDriver: it records Docker's
// addresses and picks a MAC when Docker gave none (returned to Docker and
// given to the plugin as the "mac" capability).
func (d *Driver) CreateEndpoint(ctx context.Context, req *api.CreateEndpointRequest) (*api.CreateEndpointResponse, error) {
	if err := errors.Join(validID("NetworkID", req.NetworkID), validID("EndpointID", req.EndpointID)); err != nil {
		return nil, fmt.Errorf("CreateEndpoint: %w", err)
	}
	unlock, err := d.locks.lock(ctx, "ep/"+req.EndpointID)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if _, err = d.store.Network(req.NetworkID); err != nil {
		return nil, fmt.Errorf("endpoint %q: network %q is not a vmcni-cnm network: %w", short(req.EndpointID), short(req.NetworkID), err)
	}
	if old, gerr := d.store.Endpoint(req.EndpointID); gerr == nil {
		return &api.CreateEndpointResponse{Interface: &api.EndpointInterface{MacAddress: old.MAC}}, nil
	}
	ep := &state.Endpoint{ID: req.EndpointID, NetworkID: req.NetworkID, Phase: state.PhaseCreated, Created: time.Now()}
	resp := &api.CreateEndpointResponse{}
	if in := req.Interface; in != nil {
		for _, a := range []string{in.Address, in.AddressIPv6} {
			if a == "" {
				continue
			}
			if _, _, perr := net.ParseCIDR(a); perr != nil {
				return nil, fmt.Errorf("endpoint %q: address %q: %w", short(req.EndpointID), a, perr)
			}
		}
		ep.Address, ep.AddressIPv6, ep.MAC = in.Address, in.AddressIPv6, in.MacAddress
	}
	if ep.MAC == "" {
		ep.MAC = link.RandomMAC().String()
		resp.Interface = &api.EndpointInterface{MacAddress: ep.MAC}
	} else if _, perr := net.ParseMAC(ep.MAC); perr != nil {
		return nil, fmt.Errorf("endpoint %q: mac %q: %w", short(req.EndpointID), ep.MAC, perr)
	}
	if err = d.store.PutEndpoint(ep); err != nil {
		return nil, err
	}
	d.log.Info("endpoint created", "endpoint", short(ep.ID), "network", short(ep.NetworkID), "address", ep.Address)
	return resp, nil
}

// DeleteEndpoint implements api.NetworkDriver: CNI DEL with the recorded
// config, then the record goes. An unknown endpoint is success. If DEL
// fails the record stays, so Reconcile retries it.
func (d *Driver) DeleteEndpoint(ctx context.Context, req *api.EndpointRequest) error {
	unlock, err := d.locks.lock(ctx, "ep/"+req.EndpointID)
	if err != nil {
		return err
	}
	defer unlock()
	return d.deleteEndpointLocked(ctx, req.EndpointID)
}

func (d *Driver) deleteEndpointLocked(ctx context.Context, id string) error {
	ep, err := d.store.Endpoint(id)
	if errors.Is(err, state.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err = d.teardown(ctx, ep); err != nil {
		return fmt.Errorf("delete endpoint %q: %w", short(id), err)
	}
	d.log.Info("endpoint deleted", "endpoint", short(id))
	return d.store.DeleteEndpoint(id)
}

// EndpointInfo implements api.NetworkDriver.
func (d *Driver) EndpointInfo(_ context.Context, req *api.EndpointRequest) (*api.EndpointInfoResponse, error) {
	ep, err := d.store.Endpoint(req.EndpointID)
	if err != nil {
		return nil, fmt.Errorf("endpoint %q: %w", short(req.EndpointID), err)
	}
	v := map[string]any{"phase": ep.Phase, "mac": ep.MAC}
	if ep.SrcName != "" {
		v["srcName"] = ep.SrcName
	}
	if ep.Runtime != nil {
		v["cniContainerID"] = ep.Runtime.ContainerID
		v["cniIfName"] = ep.Runtime.IfName
	}
	if vm := ep.VM; vm != nil {
		v["vmDevice"] = vm.Mode
		v["vmPhase"] = vm.Phase
		if vm.Runtime != nil {
			v["vmIfName"] = vm.Runtime.IfName
		}
		if vm.Error != "" {
			v["vmError"] = vm.Error
		}
	}
	return &api.EndpointInfoResponse{Value: v}, nil
}

// Join implements api.NetworkDriver: CNI ADD in a transfer netns, the pod
// interface handed over as SrcName, the gateway returned and Docker's
// gateway service disabled (no docker_gwbridge).
func (d *Driver) Join(ctx context.Context, req *api.JoinRequest) (*api.JoinResponse, error) {
	unlock, err := d.locks.lock(ctx, "ep/"+req.EndpointID)
	if err != nil {
		return nil, err
	}
	defer unlock()
	ep, err := d.store.Endpoint(req.EndpointID)
	if err != nil {
		return nil, fmt.Errorf("join endpoint %q: %w", short(req.EndpointID), err)
	}
	n, err := d.store.Network(ep.NetworkID)
	if err != nil {
		return nil, fmt.Errorf("join endpoint %q: %w", short(req.EndpointID), err)
	}
	if ep.Phase == state.PhaseJoined && ep.SrcName != "" && link.Exists(ep.SrcName) {
		if vmDevice(n) != "" && ep.VM == nil {
			d.startVMWatch(ep)
		}
		return d.joinResponse(n, ep), nil // a repeated Join before Docker moved it
	}
	if ep.Phase != state.PhaseCreated {
		// A stale attempt (crash, or Join after Leave): undo it first.
		if err = d.teardown(ctx, ep); err != nil {
			return nil, fmt.Errorf("join endpoint %q: clean earlier attempt: %w", short(ep.ID), err)
		}
	}
	ep.SandboxKey = req.SandboxKey
	if err = d.attach(ctx, n, ep); err != nil {
		return nil, fmt.Errorf("join endpoint %q: %w", short(ep.ID), err)
	}
	d.log.Info("endpoint joined", "endpoint", short(ep.ID), "srcName", ep.SrcName, "sandbox", req.SandboxKey,
		"sandboxExists", netns.Exists(req.SandboxKey))
	if vmDevice(n) != "" {
		d.startVMWatch(ep) // the interface reaches the sandbox after Join
	}
	return d.joinResponse(n, ep), nil
}

func (d *Driver) joinResponse(n *state.Network, ep *state.Endpoint) *api.JoinResponse {
	resp := &api.JoinResponse{
		InterfaceName:         &api.InterfaceName{SrcName: ep.SrcName, DstPrefix: "eth"},
		DisableGatewayService: true,
	}
	resp.Gateway = gatewayOf(n.IPv4, ep.Address)
	resp.GatewayIPv6 = gatewayOf(n.IPv6, ep.AddressIPv6)
	// A conflist network may pick its own gateways: take its result's.
	v4, v6 := resultGateways(ep.Result)
	if resp.Gateway == "" {
		resp.Gateway = v4
	}
	if resp.GatewayIPv6 == "" {
		resp.GatewayIPv6 = v6
	}
	return resp
}

// resultGateways returns the first IPv4 and IPv6 gateways of a CNI result.
func resultGateways(raw json.RawMessage) (v4, v6 string) {
	var res struct {
		IPs []struct {
			Gateway string `json:"gateway"`
		} `json:"ips"`
	}
	if len(raw) == 0 || json.Unmarshal(raw, &res) != nil {
		return "", ""
	}
	for _, ip := range res.IPs {
		gw := net.ParseIP(ip.Gateway)
		switch {
		case gw == nil:
		case gw.To4() != nil && v4 == "":
			v4 = gw.String()
		case gw.To4() == nil && v6 == "":
			v6 = gw.String()
		}
	}
	return v4, v6
}

// Leave implements api.NetworkDriver. libnetwork moves the interface back
// out of the sandbox after Leave and calls DeleteEndpoint next, which runs
// CNI DEL (as Docker's bridge driver deletes its veth there). The VM
// device is undone here, while the sandbox and its interface still exist
// (chained CNI DEL); if that fails the record keeps it and DeleteEndpoint
// retries (libnetwork only logs Leave's errors).
func (d *Driver) Leave(ctx context.Context, req *api.EndpointRequest) error {
	unlock, err := d.locks.lock(ctx, "ep/"+req.EndpointID)
	if err != nil {
		return err
	}
	defer unlock()
	d.stopVMWatch(req.EndpointID)
	ep, err := d.store.Endpoint(req.EndpointID)
	if errors.Is(err, state.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	vmErr := d.detachVM(ep) // on failure ep.VM stays, for DeleteEndpoint
	if vmErr != nil {
		vmErr = fmt.Errorf("leave endpoint %q: %w", short(ep.ID), vmErr)
	}
	if ep.Phase == state.PhaseJoined {
		ep.Phase = state.PhaseLeft
	}
	return errors.Join(vmErr, d.store.PutEndpoint(ep))
}
