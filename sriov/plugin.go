package sriov

import (
	"github.com/vmcni/vmcni/internal/plugin"
)

// PluginName is the binary name, recorded in hints and records.
const PluginName = "vm-sriov"

// Plugin implements vm-sriov's CNI commands.
type Plugin struct {
	plugin.Harness
}

// New returns the plugin; opts set its harness (stdout, fault injection).
func New(opts ...plugin.Option) *Plugin {
	p := &Plugin{}
	p.Apply(opts)
	return p
}

// Funcs returns the command table for plugin.Main.
func (p *Plugin) Funcs() plugin.Funcs {
	return plugin.Funcs{Add: p.Add, Check: p.Check, Del: p.Del, GC: p.GC, Status: p.Status}
}
