package plugin

import (
	"encoding/json"
	"net"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/vmcni/vmcni/internal/cnierr"
	"github.com/vmcni/vmcni/internal/logging"
	"github.com/vmcni/vmcni/pkg/hint"
)

// NetConf is the part of the network configuration every vmcni plugin
// shares; each plugin's NetConf embeds it, so these keys mean the same
// thing in every plugin.
type NetConf struct {
	types.PluginConf
	logging.Config

	// MAC (optional) is the MAC the guest must use. Defaults to the
	// plugin's choice (the pod interface's, the VF's, or a random one).
	// Overridden, lowest first, by CNI_ARGS MAC, args.cni.mac and
	// runtimeConfig.mac.
	MAC string `json:"mac,omitempty"`
	// StateDir (optional) holds attachment records and hint files.
	// Defaults to /var/lib/cni/vmcni.
	StateDir string `json:"stateDir,omitempty"`
	// IPAMExec runs the host-local binary for ipam.type host-local instead
	// of the in-process host-local (internal/ipam).
	IPAMExec bool `json:"ipamExec,omitempty"`
	// KataDanDir (optional) is a Kata Containers dan_conf directory: ADD
	// puts the attachment's entry in <kataDanDir>/<containerID>.json
	// (package hint, DanConfig) and DEL takes it out.
	KataDanDir string `json:"kataDanDir,omitempty"`

	// Args is the CNI "args" convention: args.cni.mac.
	Args CNIArgs `json:"args"`
	// RuntimeConfig carries the capabilities the runtime fills in.
	RuntimeConfig RuntimeConfig `json:"runtimeConfig"`

	// Raw is the config as received, prevResult removed: the record keeps
	// it, and DEL and GC of a recorded attachment use it.
	Raw []byte `json:"-"`
	// Prev is the parsed prevResult, nil when there is none.
	Prev *current.Result `json:"-"`
}

// RuntimeConfig is the runtimeConfig block: capability arguments.
type RuntimeConfig struct {
	// MAC is the "mac" capability.
	MAC string `json:"mac,omitempty"`
	// DeviceID is the device plugin's device (vm-sriov: the VF's PCI
	// address), as Multus passes it.
	DeviceID string `json:"deviceID,omitempty"`
	// DeviceInfoFile is the NPWG device-info file path (Multus).
	DeviceInfoFile string `json:"CNIDeviceInfoFile,omitempty"`
}

// CNIArgs is the CNI "args" convention block every vmcni plugin accepts in
// its config: {"args": {"cni": {"mac": "..."}}}.
type CNIArgs struct {
	CNI struct {
		MAC string `json:"mac,omitempty"`
	} `json:"cni"`
}

// Common returns c; it makes every config that embeds NetConf a Config.
func (c *NetConf) Common() *NetConf { return c }

// Chained reports whether a prevResult was given.
func (c *NetConf) Chained() bool { return c.Prev != nil }

// Decode unmarshals stdin into conf, a plugin's config (embedding NetConf)
// whose plugin-specific defaults are already set, and completes the
// shared part: the default stateDir, the MAC overrides (ResolveMAC), the
// parsed prevResult and Raw. It has no side effects. A prevResult with a
// null entry is refused (code 6) before the CNI library converts it.
func Decode(stdin []byte, cniArgs string, conf Config) error {
	if err := json.Unmarshal(stdin, conf); err != nil {
		return cnierr.Decode("parse network config: %w", err)
	}
	c := conf.Common()
	if c.StateDir == "" {
		c.StateDir = hint.DefaultStateDir
	}
	mac, err := ResolveMAC(c.MAC, cniArgs, c.Args, c.RuntimeConfig.MAC)
	if err != nil {
		return err
	}
	c.MAC = mac
	raw := map[string]json.RawMessage{}
	if err := json.Unmarshal(stdin, &raw); err != nil {
		return cnierr.Decode("parse network config: %w", err)
	}
	if c.RawPrevResult != nil {
		if err := refuseNullEntries(c.RawPrevResult); err != nil {
			return err
		}
		if err := version.ParsePrevResult(&c.PluginConf); err != nil {
			return cnierr.Decode("parse prevResult: %w", err)
		}
		prev, err := current.NewResultFromResult(c.PrevResult)
		if err != nil {
			return cnierr.Decode("convert prevResult: %w", err)
		}
		c.Prev = prev
	}
	for key := range raw {
		if strings.EqualFold(key, "prevResult") { // encoding/json matches keys case-insensitively
			delete(raw, key)
		}
	}
	c.Raw, _ = json.Marshal(raw)
	return nil
}

// refuseNullEntries rejects a prevResult whose interfaces, ips or routes
// hold a null: the CNI library's conversion of older versions dereferences
// every entry. Keys match case-insensitively, as encoding/json (and so the
// library) matches them.
func refuseNullEntries(prev map[string]any) error {
	for key, value := range prev {
		switch strings.ToLower(key) {
		case "interfaces", "ips", "routes":
		default:
			continue
		}
		entries, _ := value.([]any)
		for i, e := range entries {
			if e == nil {
				return cnierr.Decode("prevResult.%s[%d] is null", key, i)
			}
		}
	}
	return nil
}

// Validate checks the shared keys without touching the system: a name, a
// unicast Ethernet MAC, absolute stateDir and device-info paths, a known
// log level. Each plugin's Validate calls it first.
func (c *NetConf) Validate() error {
	if c.Name == "" {
		return cnierr.Config("name is required")
	}
	if c.MAC != "" {
		mac, err := net.ParseMAC(c.MAC)
		if err != nil || len(mac) != 6 {
			return cnierr.Config("mac %q is not an Ethernet MAC address", c.MAC)
		}
		if mac[0]&1 == 1 {
			return cnierr.Config("mac %q is a multicast address", c.MAC)
		}
	}
	if !filepath.IsAbs(c.StateDir) {
		return cnierr.Config("stateDir %q must be an absolute path", c.StateDir)
	}
	if c.KataDanDir != "" && !filepath.IsAbs(c.KataDanDir) {
		return cnierr.Config("kataDanDir %q must be an absolute path", c.KataDanDir)
	}
	if f := c.RuntimeConfig.DeviceInfoFile; f != "" && !filepath.IsAbs(f) {
		return cnierr.Config("runtimeConfig.CNIDeviceInfoFile %q must be an absolute path", f)
	}
	if err := c.Config.Validate(); err != nil {
		return cnierr.Config("%w", err)
	}
	return nil
}

// GuestMAC is the validated MAC override, nil when there is none.
func (c *NetConf) GuestMAC() net.HardwareAddr {
	mac, err := net.ParseMAC(c.MAC)
	if err != nil {
		return nil
	}
	return mac
}

// envMAC are the CNI_ARGS keys the MAC override reads.
type envMAC struct {
	types.CommonArgs
	MAC types.UnmarshallableString `json:"mac,omitempty"`
}

// ResolveMAC applies the MAC overrides every vmcni plugin honours, lowest
// first: the config's own "mac" (configured), CNI_ARGS MAC (cniArgs),
// args.cni.mac (args), runtimeConfig.mac (runtime, the "mac" capability).
// A malformed CNI_ARGS is code 4.
func ResolveMAC(configured, cniArgs string, args CNIArgs, runtime string) (string, error) {
	mac := configured
	if cniArgs != "" {
		var env envMAC
		if err := types.LoadArgs(cniArgs, &env); err != nil {
			return "", cnierr.Env("parse CNI_ARGS: %w", err)
		}
		if env.MAC != "" {
			mac = string(env.MAC)
		}
	}
	if args.CNI.MAC != "" {
		mac = args.CNI.MAC
	}
	if runtime != "" {
		mac = runtime
	}
	return mac, nil
}
