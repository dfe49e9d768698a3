package driver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/containernetworking/cni/libcni"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/vmcni/vmcni/cnm-adapter/api"
	"github.com/vmcni/vmcni/cnm-adapter/state"
)

var _ api.IPAMDriver = (*Driver)(nil)

// IPAM pool options (docker network create --ipam-opt KEY=VALUE).
const (
	// IPAMOptCNIName (default "cnm-" + the pool's subnet) is the CNI
	// network name host-local keys leases by: give the name of a CNI
	// network on the same subnet to share its leases.
	IPAMOptCNIName = "cniname"
)

// Address spaces reported to Docker.
const (
	LocalAddressSpace  = "vmcni-local"
	GlobalAddressSpace = "vmcni-global"
)

// IPAMCapabilities implements api.IPAMDriver.
func (d *Driver) IPAMCapabilities(context.Context) (*api.IPAMCapabilitiesResponse, error) {
	return &api.IPAMCapabilitiesResponse{}, nil
}

// AddressSpaces implements api.IPAMDriver.
func (d *Driver) AddressSpaces(context.Context) (*api.AddressSpacesResponse, error) {
	return &api.AddressSpacesResponse{LocalDefaultAddressSpace: LocalAddressSpace, GlobalDefaultAddressSpace: GlobalAddressSpace}, nil
}

func overlaps(a, b *net.IPNet) bool { return a.Contains(b.IP) || b.Contains(a.IP) }

// RequestPool implements api.IPAMDriver: the given subnet (or the first
// free default pool) is recorded; leases come from host-local later.
func (d *Driver) RequestPool(ctx context.Context, req *api.RequestPoolRequest) (*api.RequestPoolResponse, error) {
	unlock, err := d.locks.lock(ctx, "ipam")
	if err != nil {
		return nil, err
	}
	defer unlock()
	pools, err := d.store.Pools()
	if err != nil {
		return nil, err
	}
	taken := func(n *net.IPNet) bool {
		for _, p := range pools {
			_, s, perr := net.ParseCIDR(p.Subnet)
			if perr == nil && p.AddressSpace == req.AddressSpace && overlaps(s, n) {
				return true
			}
		}
		return false
	}
	var subnet *net.IPNet
	switch {
	case req.Pool != "":
		if _, subnet, err = net.ParseCIDR(req.Pool); err != nil {
			return nil, fmt.Errorf("RequestPool: pool %q: %w", req.Pool, err)
		}
		if (subnet.IP.To4() == nil) != req.V6 {
			return nil, fmt.Errorf("RequestPool: pool %q is not of the requested family", req.Pool)
		}
		if taken(subnet) {
			return nil, fmt.Errorf("RequestPool: pool %q overlaps a pool already in use", req.Pool)
		}
	case req.V6:
		return nil, errors.New("RequestPool: give an IPv6 subnet (--subnet) for an IPv6 network; there is no default IPv6 pool")
	default:
		for _, c := range d.pools {
			_, cand, perr := net.ParseCIDR(c)
			if perr == nil && !taken(cand) {
				subnet = cand
				break
			}
		}
		if subnet == nil {
			return nil, errors.New("RequestPool: every default pool is in use; give --subnet")
		}
	}
	p := &state.Pool{ID: req.AddressSpace + "/" + subnet.String(), AddressSpace: req.AddressSpace, Subnet: subnet.String(), V6: req.V6, Created: time.Now()}
	if req.SubPool != "" {
		_, sub, perr := net.ParseCIDR(req.SubPool)
		if perr != nil || !subnet.Contains(sub.IP) {
			return nil, fmt.Errorf("RequestPool: sub-pool %q is not inside %q", req.SubPool, subnet)
		}
		p.Range = sub.String()
	}
	p.CNINetwork = req.Options[IPAMOptCNIName]
	if p.CNINetwork == "" {
		p.CNINetwork = "cnm-" + subnet.IP.String()
	}
	if err = d.store.PutPool(p); err != nil {
		return nil, err
	}
	d.log.Info("pool reserved", "pool", p.ID, "cniNetwork", p.CNINetwork)
	return &api.RequestPoolResponse{PoolID: p.ID, Pool: p.Subnet}, nil
}

// ReleasePool implements api.IPAMDriver: leases left in the pool are
// released through host-local, then the pool goes.
func (d *Driver) ReleasePool(ctx context.Context, req *api.ReleasePoolRequest) error {
	unlock, err := d.locks.lock(ctx, "ipam")
	if err != nil {
		return err
	}
	defer unlock()
	return d.releasePool(ctx, req.PoolID)
}

func (d *Driver) releasePool(ctx context.Context, id string) error {
	p, err := d.store.Pool(id)
	if errors.Is(err, state.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	leases, err := d.store.Leases(id)
	if err != nil {
		return err
	}
	var errs []error
	for _, l := range leases {
		errs = append(errs, d.releaseLease(ctx, p, l))
	}
	if err = errors.Join(errs...); err != nil {
		return fmt.Errorf("release pool %q: %w", id, err)
	}
	return d.store.DeletePool(id)
}

// ipamConf is the single-plugin CNI config that runs host-local for p.
func (d *Driver) ipamConf(p *state.Pool) (*libcni.PluginConfig, error) {
	rng := map[string]string{"subnet": p.Subnet}
	if p.Gateway != "" {
		gw, _, _ := net.ParseCIDR(p.Gateway)
		rng["gateway"] = gw.String()
	}
	if p.Range != "" {
		_, sub, _ := net.ParseCIDR(p.Range)
		_, subnet, _ := net.ParseCIDR(p.Subnet)
		first, last := bounds(sub)
		if first.Equal(subnet.IP) {
			first = addInt(first, 1)
		}
		if _, sl := bounds(subnet); last.Equal(sl) {
			last = addInt(last, -1)
		}
		rng["rangeStart"], rng["rangeEnd"] = first.String(), last.String()
	}
	ipam := map[string]any{"type": "host-local", "ranges": [][]map[string]string{{rng}}}
	if d.ipamDir != "" {
		ipam["dataDir"] = d.ipamDir
	}
	conf := map[string]any{
		"cniVersion": "1.1.0", "name": p.CNINetwork, "type": "host-local",
		"capabilities": map[string]bool{"ips": true}, "ipam": ipam,
	}
	data, err := json.Marshal(conf)
	if err != nil {
		return nil, fmt.Errorf("encode IPAM config: %w", err)
	}
	return libcni.NetworkPluginConfFromBytes(data)
}

func bounds(n *net.IPNet) (first, last net.IP) {
	first = n.IP.Mask(n.Mask)
	last = make(net.IP, len(first))
	for i := range first {
		last[i] = first[i] | ^n.Mask[i]
	}
	return first, last
}

func addInt(ip net.IP, delta int64) net.IP {
	v := new(big.Int).SetBytes(ip)
	v.Add(v, big.NewInt(delta))
	out := v.Bytes()
	res := make(net.IP, len(ip))
	copy(res[len(res)-len(out):], out)
	return res
}

// leaseRuntime is the RuntimeConf host-local runs with: a per-lease ID
// (host-local keys its files by it) and no real netns (host-local never
// opens it, but skel requires CNI_NETNS on ADD).
func leaseRuntime(containerID string, ips []string) *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{ContainerID: containerID, IfName: "eth0", NetNS: "/proc/self/ns/net"}
	if len(ips) > 0 {
		rt.CapabilityArgs = map[string]any{"ips": ips}
	}
	return rt
}

// dropTornCache removes libcni's cache entry of conf's network for rt when
// it does not decode. libcni writes the entry in place, so an adapter
// killed meanwhile leaves it empty or cut; DelNetworkList drops such an
// entry itself, but DelNetwork (host-local alone, as leases are released)
// fails on it every time, which would keep the lease forever. The release
// needs nothing from it: host-local releases by container ID.
func (d *Driver) dropTornCache(conf *libcni.PluginConfig, rt *libcni.RuntimeConf) {
	_, err := d.ipamCNI.GetNetworkCachedResult(conf, rt)
	if err == nil {
		return
	}
	path := filepath.Join(d.cacheDir, "results", conf.Network.Name+"-"+rt.ContainerID+"-"+rt.IfName)
	d.log.Warn("removing a torn libcni cache entry", "path", path, "err", err)
	if err = os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		d.log.Warn("remove torn libcni cache entry", "path", path, "err", err)
	}
}

func prefixLen(subnet string) int {
	_, n, _ := net.ParseCIDR(subnet)
	ones, _ := n.Mask.Size()
	return ones
}

// RequestAddress implements api.IPAMDriver. The gateway request is
// answered from the pool (the given address or the subnet's first) and
// host-local excludes it from allocation; every other address is a
// host-local lease (a wanted address through the "ips" capability),
// recorded as pending before host-local runs.
func (d *Driver) RequestAddress(ctx context.Context, req *api.RequestAddressRequest) (*api.RequestAddressResponse, error) {
	unlock, err := d.locks.lock(ctx, "ipam")
	if err != nil {
		return nil, err
	}
	defer unlock()
	p, err := d.store.Pool(req.PoolID)
	if err != nil {
		return nil, fmt.Errorf("RequestAddress: %w", err)
	}
	_, subnet, _ := net.ParseCIDR(p.Subnet)
	var want net.IP
	if req.Address != "" {
		if want = net.ParseIP(req.Address); want == nil || !subnet.Contains(want) {
			return nil, fmt.Errorf("RequestAddress: address %q is not in pool %q", req.Address, p.Subnet)
		}
	}
	if req.Options[api.RequestAddressTypeOption] == api.GatewayAddressType {
		if want == nil {
			want = addInt(subnet.IP, 1)
		}
		p.Gateway = fmt.Sprintf("%s/%d", want, prefixLen(p.Subnet))
		if err = d.store.PutPool(p); err != nil {
			return nil, err
		}
		return &api.RequestAddressResponse{Address: p.Gateway}, nil
	}
	conf, err := d.ipamConf(p)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	pending := &state.Lease{PoolID: p.ID, Address: "pending-" + hex.EncodeToString(b), ContainerID: "cnm-" + hex.EncodeToString(b), Pending: true, Created: time.Now()}
	if err = d.store.PutLease(pending); err != nil {
		return nil, err
	}
	var ips []string
	if want != nil {
		ips = []string{fmt.Sprintf("%s/%d", want, prefixLen(p.Subnet))}
	}
	res, err := d.ipamCNI.AddNetwork(ctx, conf, leaseRuntime(pending.ContainerID, ips))
	if err != nil {
		err = fmt.Errorf("RequestAddress: host-local on %q: %w", p.CNINetwork, err)
		if rerr := d.releaseLease(ctx, p, pending); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return nil, err
	}
	result, err := current.NewResultFromResult(res)
	if err != nil || len(result.IPs) == 0 {
		err = errors.Join(fmt.Errorf("RequestAddress: host-local gave no address: %w", err), d.releaseLease(ctx, p, pending))
		return nil, err
	}
	lease := &state.Lease{PoolID: p.ID, Address: result.IPs[0].Address.IP.String(), ContainerID: pending.ContainerID, Created: time.Now()}
	if err = d.store.PutLease(lease); err != nil {
		return nil, err
	}
	if err = d.store.DeleteLease(p.ID, pending.Address); err != nil {
		return nil, err
	}
	return &api.RequestAddressResponse{Address: fmt.Sprintf("%s/%d", lease.Address, prefixLen(p.Subnet))}, nil
}

// ReleaseAddress implements api.IPAMDriver; an unknown address is success.
func (d *Driver) ReleaseAddress(ctx context.Context, req *api.ReleaseAddressRequest) error {
	unlock, err := d.locks.lock(ctx, "ipam")
	if err != nil {
		return err
	}
	defer unlock()
	p, err := d.store.Pool(req.PoolID)
	if errors.Is(err, state.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if gw, _, _ := net.ParseCIDR(p.Gateway); gw != nil && gw.Equal(net.ParseIP(req.Address)) {
		p.Gateway = ""
		return d.store.PutPool(p)
	}
	l, err := d.store.Lease(p.ID, req.Address)
	if errors.Is(err, state.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return d.releaseLease(ctx, p, l)
}

// releaseLease runs host-local DEL for l and forgets it.
func (d *Driver) releaseLease(_ context.Context, p *state.Pool, l *state.Lease) error {
	conf, err := d.ipamConf(p)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rt := leaseRuntime(l.ContainerID, nil)
	d.dropTornCache(conf, rt)
	if err = d.ipamCNI.DelNetwork(ctx, conf, rt); err != nil {
		return fmt.Errorf("release %q in %q: %w", l.Address, p.CNINetwork, err)
	}
	return d.store.DeleteLease(p.ID, l.Address)
}
