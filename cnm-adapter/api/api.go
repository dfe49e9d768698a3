// Package api holds the wire types of Docker's libnetwork remote network
// driver protocol and remote IPAM protocol (JSON over HTTP POST on a unix
// socket), and the two interfaces the adapter's HTTP server drives.
//
// Field names and shapes follow libnetwork's drivers/remote/api and
// ipams/remote/api: every response embeds Response, whose Err carries the
// failure back to Docker.
package api

import "context"

// ContentType is the media type of every request and response.
const ContentType = "application/vnd.docker.plugins.v1.2+json"

// Plugin kinds announced by Plugin.Activate.
const (
	// ImplementsNetworkDriver is the remote network driver kind.
	ImplementsNetworkDriver = "NetworkDriver"
	// ImplementsIpamDriver is the remote IPAM driver kind.
	ImplementsIpamDriver = "IpamDriver"
)

// Response is embedded in every response: a non-empty Err is a failure.
type Response struct {
	// Err is the error message Docker shows (empty on success).
	Err string `json:"Err,omitempty"`
}

// ActivateResponse answers /Plugin.Activate.
type ActivateResponse struct {
	// Implements lists the plugin kinds served on this socket.
	Implements []string
}

// CapabilitiesResponse answers /NetworkDriver.GetCapabilities.
type CapabilitiesResponse struct {
	Response
	// Scope is "local" or "global".
	Scope string
	// ConnectivityScope is "local" or "global".
	ConnectivityScope string
}

// IPAMData is one address pool of a network as Docker sends it: Pool and
// Gateway in CIDR form ("10.1.0.0/24", "10.1.0.1/24").
type IPAMData struct {
	// AddressSpace names the IPAM address space.
	AddressSpace string
	// Pool is the subnet.
	Pool string
	// Gateway is the gateway with the pool's prefix length.
	Gateway string
	// AuxAddresses are reserved addresses by name.
	AuxAddresses map[string]string `json:",omitempty"`
}

// CreateNetworkRequest is /NetworkDriver.CreateNetwork's body. Options
// holds "com.docker.network.generic" (the -o options, a string map) and
// other libnetwork keys.
type CreateNetworkRequest struct {
	// NetworkID is Docker's network ID.
	NetworkID string
	// Options are libnetwork's network options.
	Options map[string]any
	// IPv4Data are the IPv4 pools.
	IPv4Data []IPAMData
	// IPv6Data are the IPv6 pools.
	IPv6Data []IPAMData
}

// NetworkRequest names a network (DeleteNetwork, FreeNetwork).
type NetworkRequest struct {
	// NetworkID is Docker's network ID.
	NetworkID string
}

// AllocateNetworkRequest is /NetworkDriver.AllocateNetwork's body (swarm).
type AllocateNetworkRequest struct {
	// NetworkID is Docker's network ID.
	NetworkID string
	// Options are the network options.
	Options map[string]string
	// IPv4Data are the IPv4 pools.
	IPv4Data []IPAMData
	// IPv6Data are the IPv6 pools.
	IPv6Data []IPAMData
}

// AllocateNetworkResponse answers AllocateNetwork.
type AllocateNetworkResponse struct {
	Response
	// Options are driver-specific options.
	Options map[string]string `json:",omitempty"`
}

// EndpointInterface is an endpoint's addresses: CIDR addresses and a MAC.
type EndpointInterface struct {
	// Address is the IPv4 address in CIDR form.
	Address string `json:",omitempty"`
	// AddressIPv6 is the IPv6 address in CIDR form.
	AddressIPv6 string `json:",omitempty"`
	// MacAddress is the MAC, or empty.
	MacAddress string `json:",omitempty"`
}

// CreateEndpointRequest is /NetworkDriver.CreateEndpoint's body.
type CreateEndpointRequest struct {
	// NetworkID is Docker's network ID.
	NetworkID string
	// EndpointID is Docker's endpoint ID.
	EndpointID string
	// Interface holds the addresses Docker's IPAM assigned.
	Interface *EndpointInterface
	// Options are endpoint options (port mappings, ...).
	Options map[string]any
}

// CreateEndpointResponse answers CreateEndpoint. Interface may only carry
// what the request left empty (libnetwork rejects overrides).
type CreateEndpointResponse struct {
	Response
	// Interface carries driver-chosen values (the MAC), or nil.
	Interface *EndpointInterface `json:",omitempty"`
}

// EndpointRequest names an endpoint (DeleteEndpoint, EndpointOperInfo,
// Leave, RevokeExternalConnectivity).
type EndpointRequest struct {
	// NetworkID is Docker's network ID.
	NetworkID string
	// EndpointID is Docker's endpoint ID.
	EndpointID string
}

// EndpointInfoResponse answers EndpointOperInfo.
type EndpointInfoResponse struct {
	Response
	// Value is operational data shown by docker inspect.
	Value map[string]any
}

// JoinRequest is /NetworkDriver.Join's body.
type JoinRequest struct {
	// NetworkID is Docker's network ID.
	NetworkID string
	// EndpointID is Docker's endpoint ID.
	EndpointID string
	// SandboxKey is the sandbox's netns path; it may not exist yet.
	SandboxKey string
	// Options are join options.
	Options map[string]any
}

// InterfaceName tells libnetwork which host interface to move into the
// sandbox (SrcName) and how to name it there (DstPrefix + index).
type InterfaceName struct {
	// SrcName is the interface in the host netns.
	SrcName string
	// DstPrefix is the name prefix inside the sandbox ("eth").
	DstPrefix string
	// DstName is an exact name (unused by libnetwork's remote driver).
	DstName string `json:",omitempty"`
}

// StaticRoute is a route libnetwork adds in the sandbox.
type StaticRoute struct {
	// Destination is a CIDR.
	Destination string
	// RouteType is 0 (via NextHop) or 1 (connected).
	RouteType int
	// NextHop is the gateway for RouteType 0.
	NextHop string `json:",omitempty"`
}

// JoinResponse answers Join.
type JoinResponse struct {
	Response
	// InterfaceName is the interface to move into the sandbox.
	InterfaceName *InterfaceName `json:",omitempty"`
	// Gateway is the IPv4 default gateway (no prefix).
	Gateway string `json:",omitempty"`
	// GatewayIPv6 is the IPv6 default gateway.
	GatewayIPv6 string `json:",omitempty"`
	// StaticRoutes are extra routes.
	StaticRoutes []StaticRoute `json:",omitempty"`
	// DisableGatewayService stops Docker from adding docker_gwbridge.
	DisableGatewayService bool `json:",omitempty"`
}

// ExternalConnectivityRequest is ProgramExternalConnectivity's body.
type ExternalConnectivityRequest struct {
	// NetworkID is Docker's network ID.
	NetworkID string
	// EndpointID is Docker's endpoint ID.
	EndpointID string
	// Options carry port mappings and exposed ports.
	Options map[string]any
}

// DiscoveryNotification is DiscoverNew/DiscoverDelete's body.
type DiscoveryNotification struct {
	// DiscoveryType is 1 for a node discovery.
	DiscoveryType int
	// DiscoveryData is type-specific.
	DiscoveryData any
}

// IPAMCapabilitiesResponse answers /IpamDriver.GetCapabilities.
type IPAMCapabilitiesResponse struct {
	Response
	// RequiresMACAddress asks Docker to send the MAC with RequestAddress.
	RequiresMACAddress bool
	// RequiresRequestReplay asks Docker to replay requests after restart.
	RequiresRequestReplay bool
}

// AddressSpacesResponse answers GetDefaultAddressSpaces.
type AddressSpacesResponse struct {
	Response
	// LocalDefaultAddressSpace names the local address space.
	LocalDefaultAddressSpace string
	// GlobalDefaultAddressSpace names the global address space.
	GlobalDefaultAddressSpace string
}

// RequestPoolRequest is /IpamDriver.RequestPool's body.
type RequestPoolRequest struct {
	// AddressSpace is the address space.
	AddressSpace string
	// Pool is the requested subnet, or empty for "pick one".
	Pool string
	// SubPool restricts allocation to a range inside Pool.
	SubPool string
	// Options are --ipam-opt values.
	Options map[string]string
	// V6 asks for an IPv6 pool.
	V6 bool
}

// RequestPoolResponse answers RequestPool.
type RequestPoolResponse struct {
	Response
	// PoolID identifies the pool in later calls.
	PoolID string
	// Pool is the subnet in CIDR form.
	Pool string
	// Data is extra pool data.
	Data map[string]string `json:",omitempty"`
}

// ReleasePoolRequest is ReleasePool's body.
type ReleasePoolRequest struct {
	// PoolID is RequestPool's PoolID.
	PoolID string
}

// RequestAddressRequest is RequestAddress's body. Options may carry
// "RequestAddressType": "com.docker.network.gateway" for the gateway.
type RequestAddressRequest struct {
	// PoolID is RequestPool's PoolID.
	PoolID string
	// Address is a wanted address (no prefix), or empty.
	Address string
	// Options are request options.
	Options map[string]string
}

// RequestAddressResponse answers RequestAddress; Address is in CIDR form.
type RequestAddressResponse struct {
	Response
	// Address is the address with the pool's prefix length.
	Address string
	// Data is extra data.
	Data map[string]string `json:",omitempty"`
}

// ReleaseAddressRequest is ReleaseAddress's body.
type ReleaseAddressRequest struct {
	// PoolID is RequestPool's PoolID.
	PoolID string
	// Address is the address (no prefix).
	Address string
}

// RequestAddressTypeOption is the RequestAddress option key whose value
// GatewayAddressType marks the gateway request.
const (
	RequestAddressTypeOption = "RequestAddressType"
	// GatewayAddressType is the value for the gateway address.
	GatewayAddressType = "com.docker.network.gateway"
	// GenericOption is the CreateNetwork option key holding the -o map.
	GenericOption = "com.docker.network.generic"
)

// NetworkDriver is the remote network driver the server drives. Every
// method gets the request's context, which carries its deadline.
type NetworkDriver interface {
	// Capabilities reports scope.
	Capabilities(ctx context.Context) (*CapabilitiesResponse, error)
	// CreateNetwork records a network and validates its options.
	CreateNetwork(ctx context.Context, req *CreateNetworkRequest) error
	// DeleteNetwork removes a network.
	DeleteNetwork(ctx context.Context, req *NetworkRequest) error
	// AllocateNetwork is swarm's global allocation (unsupported locally).
	AllocateNetwork(ctx context.Context, req *AllocateNetworkRequest) (*AllocateNetworkResponse, error)
	// FreeNetwork undoes AllocateNetwork.
	FreeNetwork(ctx context.Context, req *NetworkRequest) error
	// CreateEndpoint records an endpoint.
	CreateEndpoint(ctx context.Context, req *CreateEndpointRequest) (*CreateEndpointResponse, error)
	// DeleteEndpoint runs CNI DEL and forgets the endpoint.
	DeleteEndpoint(ctx context.Context, req *EndpointRequest) error
	// EndpointInfo reports operational data.
	EndpointInfo(ctx context.Context, req *EndpointRequest) (*EndpointInfoResponse, error)
	// Join runs CNI ADD and hands the interface over.
	Join(ctx context.Context, req *JoinRequest) (*JoinResponse, error)
	// Leave marks the endpoint left.
	Leave(ctx context.Context, req *EndpointRequest) error
	// ProgramExternalConnectivity handles port mappings.
	ProgramExternalConnectivity(ctx context.Context, req *ExternalConnectivityRequest) error
	// RevokeExternalConnectivity undoes it.
	RevokeExternalConnectivity(ctx context.Context, req *EndpointRequest) error
	// Discover handles DiscoverNew (added) and DiscoverDelete.
	Discover(ctx context.Context, req *DiscoveryNotification, added bool) error
}

// IPAMDriver is the remote IPAM driver the server drives.
type IPAMDriver interface {
	// IPAMCapabilities reports capabilities.
	IPAMCapabilities(ctx context.Context) (*IPAMCapabilitiesResponse, error)
	// AddressSpaces names the default address spaces.
	AddressSpaces(ctx context.Context) (*AddressSpacesResponse, error)
	// RequestPool reserves a pool.
	RequestPool(ctx context.Context, req *RequestPoolRequest) (*RequestPoolResponse, error)
	// ReleasePool releases a pool.
	ReleasePool(ctx context.Context, req *ReleasePoolRequest) error
	// RequestAddress leases an address.
	RequestAddress(ctx context.Context, req *RequestAddressRequest) (*RequestAddressResponse, error)
	// ReleaseAddress releases a lease.
	ReleaseAddress(ctx context.Context, req *ReleaseAddressRequest) error
}
