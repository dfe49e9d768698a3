package vpp

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/vmcni/vmcni/internal/cnierr"
	"github.com/vmcni/vmcni/internal/plugin"
	"github.com/vmcni/vmcni/internal/socketdir"
	"github.com/vmcni/vmcni/vpp/vppapi"
)

// Interface kinds (config "interface").
const (
	InterfaceVhostUser = "vhost-user" // VPP vhost-user interface (VirtualEthernetX/Y/Z)
	InterfaceMemif     = "memif"      // VPP memif interface on a per-attachment socket
)

// Network kinds (config "network").
const (
	NetworkL2 = "l2" // the interface joins bridge domain bridgeDomain
	NetworkL3 = "l3" // VPP routes the guest: unnumbered to the network's gateway loopback, host routes
)

// Roles of the VMM / application side of a socket (config "mode" for
// vhost-user, "memif.role" for memif). VPP takes the other role.
const (
	RoleServer = "server"
	RoleClient = "client"
)

// Defaults.
const (
	DefaultSocketDir     = "/run/vmcni/vpp"
	DefaultTimeout       = 5 * time.Second
	DefaultMTU           = 1500
	DefaultSocketDirMode = 0o750
	DefaultRingSize      = 1024
	DefaultBufferSize    = 2048
	// maxBridgeDomain is VPP's L2_BD_ID_MAX.
	maxBridgeDomain = 1<<24 - 1
)

// Duration is a time.Duration written as a Go duration string ("5s").
type Duration struct{ time.Duration }

// UnmarshalJSON accepts "500ms", "5s"...
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"5s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalJSON writes the duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// MemifConf is the "memif" section.
type MemifConf struct {
	// Role (optional) is the application's (VMM's) role on the socket:
	// client (VPP is the memif master and creates the socket) or server
	// (VPP is the slave and connects). Defaults to client.
	Role string `json:"role,omitempty"`
	// Mode (optional) is ethernet or ip (ip needs network l3). Defaults to
	// ethernet.
	Mode string `json:"mode,omitempty"`
	// ID (optional) is the memif interface id on the socket. Defaults to 0.
	ID uint32 `json:"id,omitempty"`
	// RxQueues and TxQueues (optional) are VPP's queue counts, 1-255.
	// Default to queues.
	RxQueues int `json:"rxQueues,omitempty"`
	TxQueues int `json:"txQueues,omitempty"`
	// RingSize (optional) is the ring size, a power of two 8-32768.
	// Defaults to 1024.
	RingSize uint32 `json:"ringSize,omitempty"`
	// BufferSize (optional) is the buffer size in bytes, 128-65535.
	// Defaults to 2048.
	BufferSize int `json:"bufferSize,omitempty"`
	// Secret (optional) is the memif shared secret, at most 23 bytes.
	// Defaults to none.
	Secret string `json:"secret,omitempty"`
}

// NetConf is vm-vpp's network configuration.
type NetConf struct {
	plugin.NetConf

	// APISocket (optional) is VPP's binary API socket. Defaults to
	// /run/vpp/api.sock.
	APISocket string `json:"apiSocket,omitempty"`
	// Timeout (optional) bounds the connection handshake and every reply.
	// Defaults to "5s".
	Timeout Duration `json:"timeout,omitempty"`
	// Interface (optional) is vhost-user or memif. Defaults to vhost-user.
	Interface string `json:"interface,omitempty"`
	// Network (optional) is l2 or l3. Defaults to l2.
	Network string `json:"network,omitempty"`
	// BridgeDomain (required for l2) is the VPP bridge domain id, 1-16777215;
	// created if missing.
	BridgeDomain uint32 `json:"bridgeDomain,omitempty"`
	// SocketDir (optional) is the parent of the per-attachment socket
	// directories <socketDir>/<containerID>/<ifname>/. Defaults to
	// /run/vmcni/vpp.
	SocketDir string `json:"socketDir,omitempty"`
	// Group (optional) owns the per-attachment directory: a group name or
	// numeric gid. Defaults to root's group.
	Group string `json:"group,omitempty"`
	// SocketDirMode (optional) is the per-attachment directory's mode, an
	// octal string. Defaults to "0750" ("0770" lets a non-root VMM in group
	// create its server socket there).
	SocketDirMode string `json:"socketDirMode,omitempty"`
	// Mode (optional, vhost-user) is the VMM's role on the socket: server
	// (the VMM listens, VPP connects and reconnects) or client (VPP
	// listens). Defaults to server.
	Mode string `json:"mode,omitempty"`
	// Queues (optional) is the number of queue pairs the VMM should use,
	// 1-255; memif rx/tx queues default to it. Defaults to 1.
	Queues int `json:"queues,omitempty"`
	// Memif (optional) tunes the memif interface.
	Memif MemifConf `json:"memif,omitempty"`
	// MTU (optional) of the VPP interface and the guest, 68-9216. Defaults
	// to 1500.
	MTU int `json:"mtu,omitempty"`
	// VppMAC (optional) is the MAC of VPP's interface (the guest's next hop
	// in l3). Defaults to one VPP chooses.
	VppMAC string `json:"vppMac,omitempty"`

	// dirMode is SocketDirMode parsed by Validate.
	dirMode os.FileMode
}

// ParseConfig decodes stdin, applies defaults and merges the MAC overrides
// in order CNI_ARGS MAC < args.cni.mac < runtimeConfig.mac. It has no side
// effects; call Validate next.
func ParseConfig(stdin []byte, cniArgs string) (*NetConf, error) {
	conf := &NetConf{
		APISocket: vppapi.DefaultSocket, Timeout: Duration{DefaultTimeout},
		Interface: InterfaceVhostUser, Network: NetworkL2, SocketDir: DefaultSocketDir,
		SocketDirMode: fmt.Sprintf("%04o", DefaultSocketDirMode), Mode: RoleServer, Queues: 1,
		MTU:   DefaultMTU,
		Memif: MemifConf{Role: RoleClient, Mode: "ethernet", RingSize: DefaultRingSize, BufferSize: DefaultBufferSize},
	}
	if err := plugin.Decode(stdin, cniArgs, conf); err != nil {
		return nil, err
	}
	if conf.Memif.RxQueues == 0 {
		conf.Memif.RxQueues = conf.Queues
	}
	if conf.Memif.TxQueues == 0 {
		conf.Memif.TxQueues = conf.Queues
	}
	return conf, nil
}

// Validate checks every field without touching the system.
func (c *NetConf) Validate() error {
	if err := c.NetConf.Validate(); err != nil {
		return err
	}
	if !filepath.IsAbs(c.APISocket) {
		return cnierr.Config("apiSocket %q must be an absolute path", c.APISocket)
	}
	if c.Timeout.Duration < 100*time.Millisecond || c.Timeout.Duration > 5*time.Minute {
		return cnierr.Config("timeout %s is outside 100ms-5m", c.Timeout)
	}
	switch c.Interface {
	case InterfaceVhostUser, InterfaceMemif:
	default:
		return cnierr.Config("interface %q is not one of %s, %s", c.Interface, InterfaceVhostUser, InterfaceMemif)
	}
	switch c.Network {
	case NetworkL2:
		if c.BridgeDomain == 0 || c.BridgeDomain > maxBridgeDomain {
			return cnierr.Config("network l2 needs bridgeDomain in 1-%d, got %d", maxBridgeDomain, c.BridgeDomain)
		}
	case NetworkL3:
	default:
		return cnierr.Config("network %q is not one of %s, %s", c.Network, NetworkL2, NetworkL3)
	}
	if err := validateRole("mode", c.Mode); err != nil {
		return err
	}
	if c.Queues < 1 || c.Queues > 255 {
		return cnierr.Config("queues %d is outside 1-255", c.Queues)
	}
	if err := c.validateMemif(); err != nil {
		return err
	}
	if c.MTU < 68 || c.MTU > 9216 {
		return cnierr.Config("mtu %d is outside 68-9216", c.MTU)
	}
	if err := validateMAC("vppMac", c.VppMAC); err != nil {
		return err
	}
	if c.MAC != "" && c.VppMAC != "" && sameMAC(c.MAC, c.VppMAC) {
		return cnierr.Config("vppMac %q equals the guest's mac: VPP's port must have its own MAC", c.VppMAC)
	}
	return c.validateSocketDir()
}

// ValidateForAdd is Validate plus what only ADD requires: l3 needs an IPAM
// plugin (DEL and GC must work from a config that lacks it).
func (c *NetConf) ValidateForAdd() error {
	if err := c.Validate(); err != nil {
		return err
	}
	return c.addOnly()
}

func (c *NetConf) addOnly() error {
	if c.Network == NetworkL3 && c.IPAM.Type == "" {
		return cnierr.Config("network l3 needs ipam: VPP takes the gateways and the guest's host routes from it")
	}
	return nil
}

func (c *NetConf) validateMemif() error {
	m := c.Memif
	if err := validateRole("memif.role", m.Role); err != nil {
		return err
	}
	switch m.Mode {
	case "ethernet":
	case "ip":
		if c.Interface == InterfaceMemif && c.Network != NetworkL3 {
			return cnierr.Config("memif.mode ip carries no Ethernet header: it needs network l3")
		}
	default:
		return cnierr.Config("memif.mode %q is not one of ethernet, ip", m.Mode)
	}
	if m.RxQueues < 1 || m.RxQueues > 255 || m.TxQueues < 1 || m.TxQueues > 255 {
		return cnierr.Config("memif.rxQueues %d / memif.txQueues %d outside 1-255", m.RxQueues, m.TxQueues)
	}
	if m.RingSize < 8 || m.RingSize > 32768 || m.RingSize&(m.RingSize-1) != 0 {
		return cnierr.Config("memif.ringSize %d is not a power of two in 8-32768", m.RingSize)
	}
	if m.BufferSize < 128 || m.BufferSize > 65535 {
		return cnierr.Config("memif.bufferSize %d is outside 128-65535", m.BufferSize)
	}
	if len(m.Secret) > 23 {
		return cnierr.Config("memif.secret is %d bytes, VPP takes at most 23", len(m.Secret))
	}
	return nil
}

func (c *NetConf) validateSocketDir() error {
	if !filepath.IsAbs(c.SocketDir) || filepath.Clean(c.SocketDir) != c.SocketDir || c.SocketDir == "/" {
		return cnierr.Config("socketDir %q must be a clean absolute path other than /", c.SocketDir)
	}
	var err error
	c.dirMode, err = socketdir.ParseMode(c.SocketDirMode)
	return err
}

func validateRole(key, role string) error {
	if role != RoleServer && role != RoleClient {
		return cnierr.Config("%s %q is not one of %s, %s", key, role, RoleServer, RoleClient)
	}
	return nil
}

func validateMAC(key, s string) error {
	if s == "" {
		return nil
	}
	mac, err := net.ParseMAC(s)
	if err != nil || len(mac) != 6 {
		return cnierr.Config("%s %q is not an Ethernet MAC address", key, s)
	}
	if mac[0]&1 == 1 {
		return cnierr.Config("%s %q is a multicast address", key, s)
	}
	return nil
}

func sameMAC(a, b string) bool {
	ma, errA := net.ParseMAC(a)
	mb, errB := net.ParseMAC(b)
	return errA == nil && errB == nil && ma.String() == mb.String()
}

// features are the binapi message groups this config's commands use.
func (c *NetConf) features() []vppapi.Feature {
	f := []vppapi.Feature{vppapi.Feature(c.Interface)}
	if c.Network == NetworkL2 {
		f = append(f, vppapi.FeatureL2)
	} else {
		f = append(f, vppapi.FeatureL3)
	}
	return f
}
