package testutil

import (
	"encoding/json"
	"fmt"
	"sync"

	"github.com/containernetworking/cni/pkg/skel"
)

// Subnets hands each test of a package its own IPv4 /24, so tests never
// share a range: 10.<second>.<third>.0/24 with second counting up from
// first. Safe for concurrent use.
type Subnets struct {
	mu    sync.Mutex // guards n
	first int
	n     int
}

// NewSubnets returns the sequence starting at 10.<first>.0.0/24.
func NewSubnets(first int) *Subnets { return &Subnets{first: first} }

// Next returns the next /24.
func (s *Subnets) Next() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.n
	s.n++
	return fmt.Sprintf("10.%d.%d.0/24", s.first+n/250, n%250)
}

// MergeConfig is the JSON of the union of configs, later keys winning.
func MergeConfig(configs ...map[string]any) []byte {
	out := map[string]any{}
	for _, c := range configs {
		for k, v := range c {
			out[k] = v
		}
	}
	data, err := json.Marshal(out)
	if err != nil {
		panic(err) // test configs are plain data
	}
	return data
}

// CmdArgs is a plugin's in-process arguments for one attachment: the
// config is network's (cniVersion 1.1.0) merged with configs.
func CmdArgs(network, containerID, nsPath, ifName string, configs ...map[string]any) *skel.CmdArgs {
	base := map[string]any{"cniVersion": "1.1.0", "name": network}
	return &skel.CmdArgs{ContainerID: containerID, Netns: nsPath, IfName: ifName,
		StdinData: MergeConfig(append([]map[string]any{base}, configs...)...)}
}
