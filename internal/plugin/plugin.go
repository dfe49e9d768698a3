// Package plugin is the engine every vmcni plugin runs on. A plugin
// supplies a Spec: its typed config (Parse with its defaults through
// Decode, a side-effect-free Validate, Admit for what only ADD needs),
// what it records per attachment (a JSON-able state type) and its steps.
// The engine owns everything else, once, for ADD, CHECK, DEL, GC and
// STATUS: argument checks, the attachment's lock, recovery of an
// interrupted ADD, the record (written before the first side effect,
// fsync'd, completed last), the fault-injection hook, rollback, the hint
// and NPWG device-info files, IPAM (allocation, release, CHECK, GC, STATUS),
// best-effort DEL that keeps the record until every step succeeded, GC's
// collection of stale records and forwarding, result printing in the
// requested version, and the mapping of errors to CNI codes (cnierr).
//
// # Writing a plugin
//
// A fifth plugin is a config type embedding NetConf, a state type and a
// Spec; its main is one line (Main). The steps follow one rule: each
// registers its undo before its side effect (Addition.Do), and the undo is
// idempotent, by name or by marker, and harmless when the step did nothing,
// so a step that fails half way (the link created, its SetUp refused) is
// undone like a finished one. vm-bridge's tcfilter mode, chained, is:
//
//	Spec.Admit     prevResult or ipam present                  (no effect)
//	a.Begin(st)    record: names of tap, group, pod MAC       undo: delete record
//	a.Do("tap")    tap in the pod netns, in the link group    undo: delete tap by name
//	a.Do("redirect-pod")  ingress qdisc + u32 redirect pod→tap undo: remove our filter
//	a.Do("redirect-tap")  ingress qdisc + u32 redirect tap→pod undo: (goes with the tap)
//	return Outcome{Result: prevResult, Hint: tap hint, PodIf: i}
//
// and the engine then writes the hint ("hint"), appends it to the result,
// completes the record and prints. DEL is Spec.Teardown over the recorded
// state (Assume derives it when there is no record); the engine adds the
// hint, device-info and IPAM release, and deletes the record only when
// every step succeeded.
//
// # Protocol
//
// Every plugin accepts CNI 0.4.0, 1.0.0 and 1.1.0 (GC and STATUS need
// 1.1.0). DEL of a configuration that ADD refuses succeeds when there is
// no record (RefusedDel). Tests inject seams (WithStepHook,
// WithoutRollback, WithStdout, and each plugin's own backend option);
// nothing in a config selects a test double.
package plugin

import (
	"github.com/containernetworking/cni/pkg/skel"
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
