// Package conflist parses network configuration the way runtimes accept
// it: a conflist ({"plugins": [...]}) or a single plugin config, which
// becomes a one-plugin list. (libcni.NetworkConfFromBytes silently returns
// an empty list for a single plugin config, and its converters for the old
// format are deprecated.)
package conflist

import (
	"encoding/json"
	"fmt"

	"github.com/containernetworking/cni/libcni"
)

// Parse returns the list described by data.
func Parse(data []byte) (*libcni.NetworkConfigList, error) {
	var probe struct {
		Plugins json.RawMessage `json:"plugins"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("parse network config: %w", err)
	}
	if probe.Plugins != nil {
		list, err := libcni.NetworkConfFromBytes(data)
		if err != nil {
			return nil, fmt.Errorf("parse conflist: %w", err)
		}
		return list, nil
	}
	plugin, err := libcni.NetworkPluginConfFromBytes(data)
	if err != nil {
		return nil, fmt.Errorf("parse plugin config: %w", err)
	}
	if plugin.Network.Name == "" {
		return nil, fmt.Errorf("parse plugin config: no name")
	}
	return &libcni.NetworkConfigList{
		Name:       plugin.Network.Name,
		CNIVersion: plugin.Network.CNIVersion,
		Plugins:    []*libcni.PluginConfig{plugin},
		Bytes:      data,
	}, nil
}
