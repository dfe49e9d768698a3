package driver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ErrNoSuchNetwork is returned by Docker.Network for a network Docker does
// not know.
var ErrNoSuchNetwork = errors.New("no such network in Docker")

// DockerNetwork is the part of Docker's network inspect Reconcile uses.
type DockerNetwork struct {
	// ID is the network ID.
	ID string `json:"Id"`
	// Name is the network name.
	Name string `json:"Name"`
	// Driver is the network driver.
	Driver string `json:"Driver"`
	// IPAM is the IPAM driver and its pools.
	IPAM struct {
		// Driver is the IPAM driver.
		Driver string `json:"Driver"`
		// Config are the pools.
		Config []struct {
			// Subnet is a pool.
			Subnet string `json:"Subnet"`
			// Gateway is its gateway.
			Gateway string `json:"Gateway"`
		} `json:"Config"`
	} `json:"IPAM"`
	// Containers maps container IDs to their endpoints (inspect only).
	Containers map[string]DockerEndpoint `json:"Containers"`
}

// DockerEndpoint is one container's endpoint in a network inspect.
type DockerEndpoint struct {
	// EndpointID is the endpoint.
	EndpointID string `json:"EndpointID"`
	// IPv4Address is CIDR.
	IPv4Address string `json:"IPv4Address"`
	// IPv6Address is CIDR.
	IPv6Address string `json:"IPv6Address"`
}

// Docker is what Reconcile asks Docker.
type Docker interface {
	// Network inspects one network; ErrNoSuchNetwork when Docker has none.
	Network(ctx context.Context, id string) (*DockerNetwork, error)
	// Networks lists every network (without Containers).
	Networks(ctx context.Context) ([]DockerNetwork, error)
}

// DockerClient talks to the Docker Engine API over a unix socket with
// net/http (API version 1.41, Docker 20.10).
type DockerClient struct {
	http *http.Client
}

// NewDockerClient returns a client for host ("unix:///var/run/docker.sock"
// or a plain socket path).
func NewDockerClient(host string) (*DockerClient, error) {
	path := strings.TrimPrefix(host, "unix://")
	if path == "" || strings.Contains(path, "://") {
		return nil, fmt.Errorf("docker host %q: only unix sockets are supported", host)
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}
	return &DockerClient{http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}, nil
}

func (c *DockerClient) get(ctx context.Context, path string, v any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/v1.41"+path, http.NoBody)
	if err != nil {
		return 0, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("docker API GET %q: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, fmt.Errorf("docker API GET %q: status %d", path, resp.StatusCode)
	}
	if err = json.NewDecoder(resp.Body).Decode(v); err != nil {
		return resp.StatusCode, fmt.Errorf("docker API GET %q: decode: %w", path, err)
	}
	return resp.StatusCode, nil
}

// Network implements Docker.
func (c *DockerClient) Network(ctx context.Context, id string) (*DockerNetwork, error) {
	var n DockerNetwork
	status, err := c.get(ctx, "/networks/"+url.PathEscape(id), &n)
	if status == http.StatusNotFound {
		return nil, fmt.Errorf("network %q: %w", short(id), ErrNoSuchNetwork)
	}
	if err != nil {
		return nil, err
	}
	return &n, nil
}

// Networks implements Docker.
func (c *DockerClient) Networks(ctx context.Context) ([]DockerNetwork, error) {
	var ns []DockerNetwork
	_, err := c.get(ctx, "/networks", &ns)
	return ns, err
}
