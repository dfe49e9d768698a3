package vhostuser

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"time"

	"github.com/vmcni/vmcni/internal/cnierr"
)

// Port is a switch port for one attachment.
type Port struct {
	Name        string
	Socket      string
	Queues      int
	MTU         int
	VLAN        int
	Network     string
	ContainerID string
	IfName      string
}

// Switch is the vhost-user backend a port lives on. Implementations: the
// OVS-DPDK switch (ovs-vsctl) and the no-op switch of backend none.
type Switch interface {
	// AddPort creates p (replacing a port of the same name).
	AddPort(ctx context.Context, p Port) error
	// DelPort deletes the port called name; a missing port is success.
	DelPort(ctx context.Context, name string) error
	// Ports lists the ports of network this plugin created.
	Ports(ctx context.Context, network string) ([]Port, error)
	// Ready reports whether the backend can serve ADD.
	Ready(ctx context.Context) error
}

// External IDs vm-vhostuser puts on its OVS ports, for DEL and GC.
const (
	extNetwork   = "vmcni-network"
	extContainer = "vmcni-container-id"
	extIfName    = "vmcni-ifname"
)

// ovsSwitch drives OVS through ovs-vsctl: each call is one OVSDB
// transaction with a timeout. Arguments are passed as a vector (no shell);
// every value in them was validated by Validate or derived from validated
// names.
type ovsSwitch struct {
	db      string
	bridge  string
	timeout time.Duration
}

func (o *ovsSwitch) vsctl(ctx context.Context, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout+2*time.Second)
	defer cancel()
	full := append([]string{"--db=" + o.db, "--timeout=" + strconv.Itoa(int(o.timeout.Seconds()))}, args...)
	cmd := exec.CommandContext(ctx, "ovs-vsctl", full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if errors.Is(err, exec.ErrNotFound) {
		return nil, cnierr.Unavailable("ovs-vsctl not found: install openvswitch-switch(-dpdk)")
	}
	if err != nil {
		return nil, fmt.Errorf("ovs-vsctl %v: %w: %s", args, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.Bytes(), nil
}

func (o *ovsSwitch) AddPort(ctx context.Context, p Port) error {
	args := []string{
		"--", "--if-exists", "del-port", o.bridge, p.Name,
		"--", "add-port", o.bridge, p.Name,
		"--", "set", "Interface", p.Name, "type=dpdkvhostuserclient",
		"options:vhost-server-path=" + p.Socket,
		"options:n_rxq=" + strconv.Itoa(p.Queues),
	}
	if p.MTU > 0 {
		args = append(args, "mtu_request="+strconv.Itoa(p.MTU))
	}
	args = append(args, "--", "set", "Port", p.Name,
		"external_ids:"+extNetwork+"="+p.Network,
		"external_ids:"+extContainer+"="+p.ContainerID,
		"external_ids:"+extIfName+"="+p.IfName)
	if p.VLAN > 0 {
		args = append(args, "tag="+strconv.Itoa(p.VLAN))
	}
	if _, err := o.vsctl(ctx, args...); err != nil {
		return fmt.Errorf("add OVS port %q to %q: %w", p.Name, o.bridge, err)
	}
	return nil
}

func (o *ovsSwitch) DelPort(ctx context.Context, name string) error {
	if _, err := o.vsctl(ctx, "--if-exists", "del-port", name); err != nil {
		return fmt.Errorf("delete OVS port %q: %w", name, err)
	}
	return nil
}

func (o *ovsSwitch) Ports(ctx context.Context, network string) ([]Port, error) {
	out, err := o.vsctl(ctx, "--format=json", "--columns=name,external_ids", "find", "Port",
		"external_ids:"+extNetwork+"="+network)
	if err != nil {
		return nil, err
	}
	var table struct {
		Data [][]json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(out, &table); err != nil {
		return nil, fmt.Errorf("decode ovs-vsctl find: %w", err)
	}
	var ports []Port
	for _, row := range table.Data {
		if len(row) != 2 {
			continue
		}
		var name string
		if json.Unmarshal(row[0], &name) != nil {
			continue
		}
		ids := ovsMap(row[1])
		ports = append(ports, Port{Name: name, Network: ids[extNetwork], ContainerID: ids[extContainer], IfName: ids[extIfName]})
	}
	return ports, nil
}

// ovsMap decodes OVSDB's ["map", [[k, v], ...]].
func ovsMap(raw json.RawMessage) map[string]string {
	var m []json.RawMessage
	out := map[string]string{}
	if json.Unmarshal(raw, &m) != nil || len(m) != 2 {
		return out
	}
	var pairs [][2]string
	if json.Unmarshal(m[1], &pairs) != nil {
		return out
	}
	for _, p := range pairs {
		out[p[0]] = p[1]
	}
	return out
}

func (o *ovsSwitch) Ready(ctx context.Context) error {
	_, err := o.vsctl(ctx, "br-exists", o.bridge)
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 2 {
		return cnierr.Unavailable("OVS bridge %q does not exist", o.bridge)
	}
	if err != nil {
		return cnierr.Unavailable("OVS unreachable at %q: %w", o.db, err)
	}
	return nil
}

// noSwitch is backend none: the socket's other side is managed elsewhere.
type noSwitch struct{}

func (noSwitch) AddPort(context.Context, Port) error           { return nil }
func (noSwitch) DelPort(context.Context, string) error         { return nil }
func (noSwitch) Ports(context.Context, string) ([]Port, error) { return nil, nil }
func (noSwitch) Ready(context.Context) error                   { return nil }

// switchFor returns the backend of c.
func switchFor(c *NetConf) Switch {
	if c.Backend == BackendNone {
		return noSwitch{}
	}
	return &ovsSwitch{db: c.OVSDB, bridge: c.Bridge, timeout: time.Duration(c.OVSTimeout) * time.Second}
}
