package vhostuser

import (
	"encoding/json"
	"net"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/vmcni/vmcni/internal/cnierr"
	"github.com/vmcni/vmcni/internal/logging"
	"github.com/vmcni/vmcni/pkg/hint"
)

// Backends.
const (
	BackendOVSDPDK = "ovs-dpdk" // a dpdkvhostuserclient port on an OVS netdev bridge
	BackendNone    = "none"     // only the socket directory and the hint
)

// Defaults.
const (
	DefaultSocketDir = "/run/vmcni/vhost-user"
	DefaultOVSDB     = "unix:/var/run/openvswitch/db.sock"
	socketName       = "sock"
	// maxSocketPath is sun_path's size (108) minus the terminating NUL.
	maxSocketPath = 107
)

// NetConf is vm-vhostuser's network configuration.
type NetConf struct {
	types.PluginConf
	logging.Config

	// Backend (optional) is ovs-dpdk or none. Defaults to ovs-dpdk.
	Backend string `json:"backend,omitempty"`
	// Bridge (required for ovs-dpdk) is the OVS bridge (datapath_type=netdev).
	Bridge string `json:"bridge,omitempty"`
	// OVSDB (optional) is the OVSDB server. Defaults to
	// unix:/var/run/openvswitch/db.sock.
	OVSDB string `json:"ovsdb,omitempty"`
	// OVSTimeout (optional) bounds each OVSDB transaction, in seconds.
	// Defaults to 5.
	OVSTimeout int `json:"ovsTimeout,omitempty"`
	// SocketDir (optional) holds one directory per attachment. Defaults to
	// /run/vmcni/vhost-user.
	SocketDir string `json:"socketDir,omitempty"`
	// Mode (optional) is the VMM's role on the socket: server (default; the
	// switch connects, OVS dpdkvhostuserclient, QEMU server=on) or client
	// (the backend listens; backend none only).
	Mode string `json:"mode,omitempty"`
	// Group (optional) owns the attachment directory (name or gid), so a
	// non-root VMM in that group can use the socket. Defaults to root.
	Group string `json:"group,omitempty"`
	// SocketDirMode (optional) is the attachment directory's mode, octal.
	// Defaults to "0750".
	SocketDirMode string `json:"socketDirMode,omitempty"`
	// Queues (optional) is the number of queue pairs. Defaults to 1.
	Queues int `json:"queues,omitempty"`
	// MTU (optional) of the guest and the OVS interface (mtu_request).
	MTU int `json:"mtu,omitempty"`
	// MAC (optional) the guest uses. Defaults to a random local MAC.
	MAC string `json:"mac,omitempty"`
	// VLAN (optional) is the OVS access tag, 1-4094. Defaults to none.
	VLAN int `json:"vlan,omitempty"`
	// StateDir (optional) holds records and hint files. Defaults to
	// /var/lib/cni/vmcni.
	StateDir string `json:"stateDir,omitempty"`

	RuntimeConfig struct {
		MAC            string `json:"mac,omitempty"`
		DeviceInfoFile string `json:"CNIDeviceInfoFile,omitempty"`
	} `json:"runtimeConfig"`

	// Raw is the config as received, prevResult removed (kept for GC).
	Raw []byte `json:"-"`
	// Prev is prevResult (CHECK).
	Prev *current.Result `json:"-"`
	gid  int
	mode uint32
}

// bridgeName is what OVS and this plugin accept as a bridge name.
var bridgeName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// ParseConfig decodes stdin and applies defaults; runtimeConfig.mac
// overrides mac. It has no side effects; call Validate next.
func ParseConfig(stdin []byte) (*NetConf, error) {
	c := &NetConf{Backend: BackendOVSDPDK, OVSDB: DefaultOVSDB, OVSTimeout: 5, SocketDir: DefaultSocketDir,
		Mode: "server", SocketDirMode: "0750", Queues: 1, StateDir: hint.DefaultStateDir}
	if err := json.Unmarshal(stdin, c); err != nil {
		return nil, cnierr.Decode("parse network config: %w", err)
	}
	if c.RuntimeConfig.MAC != "" {
		c.MAC = c.RuntimeConfig.MAC
	}
	if c.RawPrevResult != nil {
		if err := version.ParsePrevResult(&c.PluginConf); err != nil {
			return nil, cnierr.Decode("parse prevResult: %w", err)
		}
		prev, err := current.NewResultFromResult(c.PrevResult)
		if err != nil {
			return nil, cnierr.Decode("convert prevResult: %w", err)
		}
		c.Prev = prev
	}
	raw := map[string]any{}
	_ = json.Unmarshal(stdin, &raw)
	delete(raw, "prevResult")
	c.Raw, _ = json.Marshal(raw)
	return c, nil
}

// Validate checks every field without touching the system.
func (c *NetConf) Validate() error {
	if c.Name == "" {
		return cnierr.Config("name is required")
	}
	switch c.Backend {
	case BackendOVSDPDK:
		if !bridgeName.MatchString(c.Bridge) {
			return cnierr.Config("bridge %q: the ovs-dpdk backend needs an OVS bridge name ([A-Za-z0-9_.-], 1-64)", c.Bridge)
		}
		if c.Mode != "server" {
			return cnierr.Config("mode %q: with ovs-dpdk the VMM is the socket server (OVS dpdkvhostuserclient ports); use mode server", c.Mode)
		}
		if !strings.HasPrefix(c.OVSDB, "unix:/") && !strings.HasPrefix(c.OVSDB, "tcp:") {
			return cnierr.Config("ovsdb %q must be unix:/path or tcp:host:port", c.OVSDB)
		}
	case BackendNone:
		if c.Mode != "server" && c.Mode != "client" {
			return cnierr.Config("mode %q is not server or client", c.Mode)
		}
	default:
		return cnierr.Config("backend %q is not %s or %s", c.Backend, BackendOVSDPDK, BackendNone)
	}
	if !filepath.IsAbs(c.SocketDir) || filepath.Clean(c.SocketDir) != c.SocketDir {
		return cnierr.Config("socketDir %q must be a clean absolute path", c.SocketDir)
	}
	if !filepath.IsAbs(c.StateDir) {
		return cnierr.Config("stateDir %q must be an absolute path", c.StateDir)
	}
	mode, err := strconv.ParseUint(c.SocketDirMode, 8, 32)
	if err != nil || mode > 0o777 || mode&0o700 != 0o700 {
		return cnierr.Config("socketDirMode %q must be octal, at most 0777, with owner rwx", c.SocketDirMode)
	}
	c.mode = uint32(mode)
	if c.gid, err = lookupGroup(c.Group); err != nil {
		return cnierr.Config("group: %w", err)
	}
	if c.Queues < 1 || c.Queues > 64 {
		return cnierr.Config("queues %d is outside 1-64", c.Queues)
	}
	if c.MTU != 0 && (c.MTU < 68 || c.MTU > 9710) {
		return cnierr.Config("mtu %d is outside 68-9710", c.MTU)
	}
	if c.VLAN < 0 || c.VLAN > 4094 {
		return cnierr.Config("vlan %d is outside 0-4094", c.VLAN)
	}
	if c.MAC != "" {
		mac, err := net.ParseMAC(c.MAC)
		if err != nil || len(mac) != 6 || mac[0]&1 == 1 {
			return cnierr.Config("mac %q is not a unicast Ethernet MAC", c.MAC)
		}
	}
	if c.OVSTimeout < 1 || c.OVSTimeout > 300 {
		return cnierr.Config("ovsTimeout %d is outside 1-300 seconds", c.OVSTimeout)
	}
	if err := c.Config.Validate(); err != nil {
		return cnierr.Config("%w", err)
	}
	return nil
}

func lookupGroup(g string) (int, error) {
	if g == "" {
		return 0, nil
	}
	if gid, err := strconv.Atoi(g); err == nil && gid >= 0 {
		return gid, nil
	}
	grp, err := user.LookupGroup(g)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(grp.Gid)
}

// Paths are an attachment's directory and socket.
type Paths struct {
	Dir    string `json:"dir"`
	Socket string `json:"socket"`
}

// PathsFor returns the directory and socket of (containerID, ifName) under
// socketDir and checks them: they must stay inside socketDir and the socket
// path must fit in sun_path (107 bytes).
func PathsFor(socketDir, containerID, ifName string) (Paths, error) {
	if err := hint.ValidateKey(containerID, ifName); err != nil {
		return Paths{}, cnierr.Env("%w", err)
	}
	dir := filepath.Join(socketDir, containerID+"-"+ifName)
	if filepath.Dir(dir) != socketDir {
		return Paths{}, cnierr.Config("attachment directory %q escapes socketDir %q", dir, socketDir)
	}
	sock := filepath.Join(dir, socketName)
	if len(sock) > maxSocketPath {
		return Paths{}, cnierr.Config("socket path %q is %d bytes; unix sockets allow %d (shorten socketDir or the container ID)", sock, len(sock), maxSocketPath)
	}
	return Paths{Dir: dir, Socket: sock}, nil
}
