// Package plugin wires a vmcni plugin's command functions into the CNI skel
// and owns the protocol-level rules every plugin shares: the supported
// versions (0.4.0, 1.0.0, 1.1.0; GC and STATUS need 1.1.0), the mapping of
// errors to CNI codes (through cnierr, in one place), and result printing in
// the version the config asked for.
package plugin

import (
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/vmcni/vmcni/internal/cnierr"
)

// SupportedVersions are the CNI versions every vmcni plugin accepts.
var SupportedVersions = []string{"0.4.0", "1.0.0", "1.1.0"}

// VersionInfo is the VERSION answer of every vmcni plugin.
func VersionInfo() version.PluginInfo {
	return version.PluginSupports(SupportedVersions...)
}

// Funcs are a plugin's command implementations. Each returns a plain Go
// error; the wiring maps it to a CNI error code with cnierr.ToCNI.
type Funcs struct {
	Add, Check, Del, GC, Status func(*skel.CmdArgs) error
}

// Main runs the plugin for the command in CNI_COMMAND and exits.
func Main(about string, f Funcs) {
	skel.PluginMainFuncs(Wrap(f), VersionInfo(), about)
}

// Wrap adapts Funcs to skel.CNIFuncs, converting errors to CNI errors.
func Wrap(f Funcs) skel.CNIFuncs {
	return skel.CNIFuncs{
		Add:    mapped(f.Add),
		Check:  mapped(f.Check),
		Del:    mapped(f.Del),
		GC:     mapped(f.GC),
		Status: mapped(f.Status),
	}
}

func mapped(fn func(*skel.CmdArgs) error) func(*skel.CmdArgs) error {
	if fn == nil {
		return nil
	}
	return func(args *skel.CmdArgs) error {
		if err := fn(args); err != nil {
			return cnierr.ToCNI(err)
		}
		return nil
	}
}

// PrintResult writes res on stdout converted to cniVersion.
func PrintResult(res types.Result, cniVersion string) error {
	return types.PrintResult(res, cniVersion)
}
