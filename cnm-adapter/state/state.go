// Package state is the adapter's persistent state: networks, endpoints,
// IPAM pools and leases, in one bbolt database (default
// /var/lib/vmcni/cnm/state.db).
//
// Schema (bucket → key → JSON value), version 1 (bucket "meta", key
// "schema"):
//
//	networks   NetworkID            → Network
//	endpoints  EndpointID           → Endpoint (with the conflist and
//	                                  RuntimeConf its CNI ADD used, so DEL
//	                                  replays exactly that, and the same
//	                                  for its optional VM device, "vm")
//	pools      PoolID               → Pool
//	leases     PoolID "|" IP        → Lease
//
// Every write is one bbolt transaction (fsync'd), so a crash leaves either
// the old or the new record. Records are written before the side effect
// they describe (phase "joining" before CNI ADD): reconciliation after a
// crash finds everything the daemon may have created.
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	bucketMeta      = []byte("meta")
	bucketNetworks  = []byte("networks")
	bucketEndpoints = []byte("endpoints")
	bucketPools     = []byte("pools")
	bucketLeases    = []byte("leases")
)

// SchemaVersion is the version written to meta/schema.
const SchemaVersion = "1"

// ErrNotFound reports a missing record.
var ErrNotFound = errors.New("not found")

// Network is a Docker network the adapter serves.
type Network struct {
	// ID is Docker's network ID.
	ID string `json:"id"`
	// Options are the -o options as given.
	Options map[string]string `json:"options,omitempty"`
	// Conflist is the network's CNI config template (a conflist given with
	// -o conflist, copied at create time), or empty for a generated one.
	Conflist []byte `json:"conflist,omitempty"`
	// IPv4 and IPv6 are Docker's pools.
	IPv4 []Pool `json:"ipv4,omitempty"`
	// IPv6 are Docker's IPv6 pools.
	IPv6 []Pool `json:"ipv6,omitempty"`
	// Bridge is the host bridge of a generated vm-bridge config.
	Bridge string `json:"bridge,omitempty"`
	// BridgeExisted is true when Bridge existed before CreateNetwork (the
	// adapter then never deletes it).
	BridgeExisted bool `json:"bridgeExisted,omitempty"`
	// Created is when CreateNetwork recorded it.
	Created time.Time `json:"created"`
}

// Endpoint phases.
const (
	// PhaseCreated: CreateEndpoint recorded it; nothing on the host yet.
	PhaseCreated = "created"
	// PhaseJoining: CNI ADD may have run (partially); reconciliation DELs.
	PhaseJoining = "joining"
	// PhaseJoined: ADD succeeded and the interface was handed to Docker.
	PhaseJoined = "joined"
	// PhaseLeft: Docker called Leave; DeleteEndpoint is next.
	PhaseLeft = "left"
)

// Runtime is what libcni needs to replay an attachment.
type Runtime struct {
	// ContainerID is CNI_CONTAINERID (the endpoint ID).
	ContainerID string `json:"containerID"`
	// NetNS is CNI_NETNS (the transfer netns path).
	NetNS string `json:"netns"`
	// IfName is CNI_IFNAME.
	IfName string `json:"ifName"`
	// Args are CNI_ARGS pairs.
	Args [][2]string `json:"args,omitempty"`
	// CapabilityArgs are runtimeConfig values.
	CapabilityArgs map[string]any `json:"capabilityArgs,omitempty"`
}

// Endpoint is a Docker endpoint on a served network.
type Endpoint struct {
	// ID is Docker's endpoint ID.
	ID string `json:"id"`
	// NetworkID is its network.
	NetworkID string `json:"networkID"`
	// Address and AddressIPv6 are Docker's addresses (CIDR).
	Address string `json:"address,omitempty"`
	// AddressIPv6 is the IPv6 address (CIDR).
	AddressIPv6 string `json:"addressIPv6,omitempty"`
	// MAC is the endpoint's MAC.
	MAC string `json:"mac,omitempty"`
	// Phase is one of the Phase constants.
	Phase string `json:"phase"`
	// SrcName is the host interface handed to Docker in Join.
	SrcName string `json:"srcName,omitempty"`
	// TransferNS is the name of the temporary netns CNI ADD ran in.
	TransferNS string `json:"transferNS,omitempty"`
	// SandboxKey is Docker's sandbox path from Join.
	SandboxKey string `json:"sandboxKey,omitempty"`
	// Conflist is the exact CNI config ADD ran with.
	Conflist []byte `json:"conflist,omitempty"`
	// Runtime is the RuntimeConf ADD ran with.
	Runtime *Runtime `json:"runtime,omitempty"`
	// Result is the CNI result of ADD.
	Result json.RawMessage `json:"result,omitempty"`
	// VM is the second, chained attachment that builds the VM device in
	// the sandbox (networks with -o vmdevice), or nil.
	VM *VMDevice `json:"vm,omitempty"`
	// Created is when CreateEndpoint recorded it.
	Created time.Time `json:"created"`
}

// VM device phases.
const (
	// VMAttaching: the chained CNI ADD may have run (partially); Leave,
	// DeleteEndpoint and reconciliation run its DEL.
	VMAttaching = "attaching"
	// VMAttached: the VM device and its hint file exist in the sandbox.
	VMAttached = "attached"
	// VMFailed: the device could not be built (Error says why); nothing
	// of it is left.
	VMFailed = "failed"
)

// VMDevice is the chained vm-bridge attachment run in the sandbox after
// libnetwork moved the endpoint's interface there.
type VMDevice struct {
	// Mode is vm-bridge's mode: tcfilter, bridge or macvtap.
	Mode string `json:"mode"`
	// Phase is one of the VM phase constants.
	Phase string `json:"phase"`
	// Conflist is the exact chained config (prevResult embedded) ADD ran
	// with; DEL replays it.
	Conflist []byte `json:"conflist,omitempty"`
	// Runtime is the RuntimeConf of the chained ADD: ContainerID = the
	// endpoint ID, NetNS = the sandbox key, IfName = the sandbox interface.
	Runtime *Runtime `json:"runtime,omitempty"`
	// Result is the chained ADD's CNI result.
	Result json.RawMessage `json:"result,omitempty"`
	// Error is why the device is missing (phase failed).
	Error string `json:"error,omitempty"`
	// Updated is when the phase last changed.
	Updated time.Time `json:"updated"`
}

// Pool is an address pool (of a network, or of the IPAM driver).
type Pool struct {
	// ID is the PoolID given to Docker (IPAM driver pools).
	ID string `json:"id,omitempty"`
	// AddressSpace is the IPAM address space.
	AddressSpace string `json:"addressSpace,omitempty"`
	// Subnet is the pool's CIDR.
	Subnet string `json:"subnet"`
	// Range is a sub-range CIDR to allocate from, or empty.
	Range string `json:"range,omitempty"`
	// Gateway is the gateway in CIDR form, or empty.
	Gateway string `json:"gateway,omitempty"`
	// V6 marks an IPv6 pool.
	V6 bool `json:"v6,omitempty"`
	// CNINetwork is the CNI network name the IPAM plugin keys leases by
	// (host-local: /var/lib/cni/networks/<name>), shared with CNI users.
	CNINetwork string `json:"cniNetwork,omitempty"`
	// IPAMConf is the CNI IPAM plugin config used for every lease.
	IPAMConf []byte `json:"ipamConf,omitempty"`
	// Created is when the pool was recorded.
	Created time.Time `json:"created"`
}

// Lease is an address leased through the CNI IPAM plugin.
type Lease struct {
	// PoolID is the pool.
	PoolID string `json:"poolID"`
	// Address is the IP (no prefix).
	Address string `json:"address"`
	// ContainerID is the CNI_CONTAINERID the lease was taken with.
	ContainerID string `json:"containerID"`
	// Pending is true while the IPAM ADD has not been confirmed.
	Pending bool `json:"pending,omitempty"`
	// Created is when it was recorded.
	Created time.Time `json:"created"`
}

// Store is the database. It is safe for concurrent use (bbolt serializes
// writers).
type Store struct {
	db *bolt.DB
}

// Open opens (creating) the database at path with mode 0600, waiting at
// most timeout for another process's lock.
func Open(path string, timeout time.Duration) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create state dir of %q: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
	if err != nil {
		return nil, fmt.Errorf("open state db %q: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketNetworks, bucketEndpoints, bucketPools, bucketLeases} {
			if _, berr := tx.CreateBucketIfNotExists(b); berr != nil {
				return berr
			}
		}
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get([]byte("schema")); v != nil && string(v) != SchemaVersion {
			return fmt.Errorf("schema version %q, this daemon knows %q", v, SchemaVersion)
		}
		return meta.Put([]byte("schema"), []byte(SchemaVersion))
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("init state db %q: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

func put(s *Store, bucket []byte, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s %q: %w", bucket, key, err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put([]byte(key), data) })
	if err != nil {
		return fmt.Errorf("write %s %q: %w", bucket, key, err)
	}
	return nil
}

func get[T any](s *Store, bucket []byte, key string) (*T, error) {
	var data []byte
	_ = s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucket).Get([]byte(key)); v != nil {
			data = append([]byte(nil), v...)
		}
		return nil
	})
	if data == nil {
		return nil, fmt.Errorf("%s %q: %w", bucket, key, ErrNotFound)
	}
	v := new(T)
	if err := json.Unmarshal(data, v); err != nil {
		return nil, fmt.Errorf("decode %s %q: %w", bucket, key, err)
	}
	return v, nil
}

func del(s *Store, bucket []byte, key string) error {
	err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Delete([]byte(key)) })
	if err != nil {
		return fmt.Errorf("delete %s %q: %w", bucket, key, err)
	}
	return nil
}

func list[T any](s *Store, bucket []byte, prefix string) ([]*T, error) {
	var out []*T
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucket).Cursor()
		for k, v := c.Seek([]byte(prefix)); k != nil && len(k) >= len(prefix) && string(k[:len(prefix)]) == prefix; k, v = c.Next() {
			item := new(T)
			if err := json.Unmarshal(v, item); err != nil {
				return fmt.Errorf("decode %s %q: %w", bucket, k, err)
			}
			out = append(out, item)
		}
		return nil
	})
	return out, err
}

// PutNetwork writes a network.
func (s *Store) PutNetwork(n *Network) error { return put(s, bucketNetworks, n.ID, n) }

// Network reads a network; a missing one matches ErrNotFound.
func (s *Store) Network(id string) (*Network, error) { return get[Network](s, bucketNetworks, id) }

// DeleteNetwork removes a network record (missing is fine).
func (s *Store) DeleteNetwork(id string) error { return del(s, bucketNetworks, id) }

// Networks lists every network.
func (s *Store) Networks() ([]*Network, error) { return list[Network](s, bucketNetworks, "") }

// PutEndpoint writes an endpoint.
func (s *Store) PutEndpoint(e *Endpoint) error { return put(s, bucketEndpoints, e.ID, e) }

// Endpoint reads an endpoint; a missing one matches ErrNotFound.
func (s *Store) Endpoint(id string) (*Endpoint, error) { return get[Endpoint](s, bucketEndpoints, id) }

// DeleteEndpoint removes an endpoint record (missing is fine).
func (s *Store) DeleteEndpoint(id string) error { return del(s, bucketEndpoints, id) }

// Endpoints lists every endpoint (of networkID, or all when empty).
func (s *Store) Endpoints(networkID string) ([]*Endpoint, error) {
	all, err := list[Endpoint](s, bucketEndpoints, "")
	if err != nil || networkID == "" {
		return all, err
	}
	var out []*Endpoint
	for _, e := range all {
		if e.NetworkID == networkID {
			out = append(out, e)
		}
	}
	return out, nil
}

// PutPool writes a pool.
func (s *Store) PutPool(p *Pool) error { return put(s, bucketPools, p.ID, p) }

// Pool reads a pool; a missing one matches ErrNotFound.
func (s *Store) Pool(id string) (*Pool, error) { return get[Pool](s, bucketPools, id) }

// DeletePool removes a pool record (missing is fine).
func (s *Store) DeletePool(id string) error { return del(s, bucketPools, id) }

// Pools lists every pool.
func (s *Store) Pools() ([]*Pool, error) { return list[Pool](s, bucketPools, "") }

func leaseKey(poolID, addr string) string { return poolID + "|" + addr }

// PutLease writes a lease.
func (s *Store) PutLease(l *Lease) error {
	return put(s, bucketLeases, leaseKey(l.PoolID, l.Address), l)
}

// Lease reads a lease; a missing one matches ErrNotFound.
func (s *Store) Lease(poolID, addr string) (*Lease, error) {
	return get[Lease](s, bucketLeases, leaseKey(poolID, addr))
}

// DeleteLease removes a lease record (missing is fine).
func (s *Store) DeleteLease(poolID, addr string) error {
	return del(s, bucketLeases, leaseKey(poolID, addr))
}

// Leases lists the leases of poolID (all when empty).
func (s *Store) Leases(poolID string) ([]*Lease, error) {
	prefix := ""
	if poolID != "" {
		prefix = poolID + "|"
	}
	return list[Lease](s, bucketLeases, prefix)
}

// Counts is the number of records per bucket.
type Counts struct {
	// Networks, Endpoints, Pools and Leases count records.
	Networks, Endpoints, Pools, Leases int
}

// Empty reports whether nothing is recorded.
func (c Counts) Empty() bool { return c == Counts{} }

// Count counts the records of every bucket.
func (s *Store) Count() (Counts, error) {
	var c Counts
	err := s.db.View(func(tx *bolt.Tx) error {
		c.Networks = tx.Bucket(bucketNetworks).Stats().KeyN
		c.Endpoints = tx.Bucket(bucketEndpoints).Stats().KeyN
		c.Pools = tx.Bucket(bucketPools).Stats().KeyN
		c.Leases = tx.Bucket(bucketLeases).Stats().KeyN
		return nil
	})
	return c, err
}
