package vhostuser

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/vmcni/vmcni/internal/cnierr"
	"github.com/vmcni/vmcni/internal/plugin"
	"github.com/vmcni/vmcni/internal/socketdir"
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
)

// NetConf is vm-vhostuser's network configuration.
type NetConf struct {
	plugin.NetConf

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
	// VLAN (optional) is the OVS access tag, 1-4094. Defaults to none.
	VLAN int `json:"vlan,omitempty"`
	mode os.FileMode
}

// bridgeName is what OVS and this plugin accept as a bridge name.
var bridgeName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// ParseConfig decodes stdin and applies defaults and the MAC overrides
// (CNI_ARGS MAC < args.cni.mac < runtimeConfig.mac). It has no side
// effects; call Validate next.
func ParseConfig(stdin []byte, cniArgs string) (*NetConf, error) {
	c := &NetConf{Backend: BackendOVSDPDK, OVSDB: DefaultOVSDB, OVSTimeout: 5, SocketDir: DefaultSocketDir,
		Mode: "server", SocketDirMode: "0750", Queues: 1}
	if err := plugin.Decode(stdin, cniArgs, c); err != nil {
		return nil, err
	}
	return c, nil
}

// Validate checks every field without touching the system.
func (c *NetConf) Validate() error {
	if err := c.NetConf.Validate(); err != nil {
		return err
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
	var err error
	if c.mode, err = socketdir.ParseMode(c.SocketDirMode); err != nil {
		return err
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
	if c.OVSTimeout < 1 || c.OVSTimeout > 300 {
		return cnierr.Config("ovsTimeout %d is outside 1-300 seconds", c.OVSTimeout)
	}
	return nil
}

// PathsFor returns the directory and socket of (containerID, ifName) under
// socketDir: <socketDir>/<containerID>/<ifName>/sock, checked by package
// socketdir (inside socketDir, within sun_path).
func PathsFor(socketDir, containerID, ifName string) (socketdir.Paths, error) {
	return socketdir.For(socketDir, containerID, ifName, socketName)
}
