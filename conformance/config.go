package conformance

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"

	"github.com/containernetworking/cni/libcni"

	"github.com/vmcni/vmcni/internal/conflist"

	"github.com/vmcni/vmcni/pkg/hint"
)

// Config says what to test and how.
type Config struct {
	// BinDirs (required) is CNI_PATH: the directories holding the plugins
	// the conflist names (and their IPAM plugins).
	BinDirs []string
	// Conflist (required) is the network under test: a conflist, or a
	// single plugin config.
	Conflist []byte
	// InvalidConfigs (optional) are plugin configs (with "type") or
	// conflists the plugins must reject with error code 7 (invalid
	// config), with no side effect. Defaults to none (that check is
	// skipped).
	InvalidConfigs [][]byte
	// WatchDirs (optional) are directories whose files, directories and
	// sockets must be the same before and after. Every "stateDir",
	// "socketDir" and host-local "dataDir" in the conflist (or their
	// defaults) is watched anyway.
	WatchDirs []string
	// ExtraState (optional) adds what the plugins program outside the host
	// netns and the watched directories to every hygiene snapshot: lines
	// (OVS ports, VPP interfaces and routes, a PCI device's driver) that
	// must be the same before and after, compared like the rest. Defaults
	// to none.
	ExtraState func() ([]string, error)
	// IgnoreLinks (optional) are host links left out of the snapshots:
	// a shared host bridge that, like the reference bridge plugin's, stays
	// once created. Defaults to none.
	IgnoreLinks []string
	// IgnoreLinkPrefixes (optional) leaves out host links whose name starts
	// with one of these (links of other software running on the host).
	// Defaults to none.
	IgnoreLinkPrefixes []string
	// Skip (optional) declares checks not applicable, check name to reason;
	// they are reported as skipped with that reason. Defaults to none.
	Skip map[string]string
	// IfName (optional) is CNI_IFNAME. Defaults to "eth0".
	IfName string
	// Parallel (optional) is the number of attachments of the concurrency
	// check. Defaults to 8, capped at len(CapabilityArgsPool) when that is
	// set.
	Parallel int
	// CapabilityArgsPool (optional) gives every attachment the suite
	// creates its own capability args, as a device plugin allocates one
	// device per pod: [{"deviceID": "0000:3b:02.0"}, ...]. An attachment
	// takes a free entry and returns it when its check is done with it;
	// libcni, and the suite's direct execs, pass each plugin the keys its
	// "capabilities" declare, as runtimeConfig. Defaults to none: no
	// capability args.
	CapabilityArgsPool []map[string]any
	// HintFile (optional) runs the vm-hint check: vmcni's hint file must
	// agree with the result. Defaults to false (vm-hint skipped): the
	// vm-device check judges what every runtime reads.
	HintFile bool
	// NamePrefix (optional) prefixes the netns and container IDs the suite
	// creates. Defaults to "vmct".
	NamePrefix string
	// WorkDir (optional) holds libcni's result caches. Defaults to a
	// temporary directory, removed at the end.
	WorkDir string
	// Log (optional) receives progress lines. Defaults to none.
	Log func(format string, args ...any)
}

// network is the parsed conflist plus what the suite derives from it.
type network struct {
	list  *libcni.NetworkConfigList
	types []string
	// confs are the plugins' configs as maps, in order.
	confs []map[string]any
}

func parseNetwork(data []byte) (*network, error) {
	list, err := conflist.Parse(data)
	if err != nil {
		return nil, err
	}
	n := &network{list: list}
	for _, p := range list.Plugins {
		n.types = append(n.types, p.Network.Type)
		m := map[string]any{}
		if err := json.Unmarshal(p.Bytes, &m); err != nil {
			return nil, fmt.Errorf("parse plugin %q: %w", p.Network.Type, err)
		}
		n.confs = append(n.confs, m)
	}
	if len(n.types) == 0 {
		return nil, fmt.Errorf("conflist %q has no plugins", list.Name)
	}
	return n, nil
}

// withVersion returns the network with another cniVersion.
func (n *network) withVersion(v string) (*libcni.NetworkConfigList, error) {
	plugins := make([]map[string]any, len(n.confs))
	copy(plugins, n.confs)
	data, err := json.Marshal(map[string]any{"cniVersion": v, "name": n.list.Name, "plugins": plugins})
	if err != nil {
		return nil, fmt.Errorf("encode conflist: %w", err)
	}
	list, err := libcni.NetworkConfFromBytes(data)
	if err != nil {
		return nil, fmt.Errorf("conflist at %s: %w", v, err)
	}
	return list, nil
}

// stateDirs are the hint state dirs named by the conflist, or the default.
func (n *network) stateDirs() []string {
	set := map[string]bool{}
	for _, c := range n.confs {
		if s, ok := c["stateDir"].(string); ok && s != "" {
			set[s] = true
		}
	}
	if len(set) == 0 {
		set[hint.DefaultStateDir] = true
	}
	return sortedKeys(set)
}

// kataDanDirs are the kataDanDir keys of the conflist's plugins.
func (n *network) kataDanDirs() []string {
	set := map[string]bool{}
	for _, c := range n.confs {
		if s, ok := c["kataDanDir"].(string); ok && s != "" {
			set[s] = true
		}
	}
	return sortedKeys(set)
}

// watchDirs are the directories the conflist names as plugin state: every
// stateDir, socketDir and host-local dataDir (or host-local's default,
// /var/lib/cni/networks/<name>).
func (n *network) watchDirs() []string {
	set := map[string]bool{}
	for _, c := range n.confs {
		for _, key := range []string{"stateDir", "socketDir"} {
			if s, ok := c[key].(string); ok && filepath.IsAbs(s) {
				set[s] = true
			}
		}
		ipam, _ := c["ipam"].(map[string]any)
		if ipam == nil {
			continue
		}
		if d, ok := ipam["dataDir"].(string); ok && filepath.IsAbs(d) {
			set[d] = true
		} else if ipam["type"] == "host-local" {
			set[filepath.Join("/var/lib/cni/networks", n.list.Name)] = true
		}
	}
	return sortedKeys(set)
}

func sortedKeys(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
