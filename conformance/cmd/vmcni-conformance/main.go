// Command vmcni-conformance runs the conformance suite (package
// github.com/vmcni/vmcni/conformance) against a directory of CNI plugin
// binaries and a conflist, prints a readable report and optionally writes
// a JSON one. It exits 1 when a check fails. Needs root.
//
//	vmcni-conformance -bin /opt/cni/bin -conflist net.conflist \
//	    [-invalid bad.conf ...] [-watch DIR ...] [-ignore-link BR ...] \
//	    [-skip CHECK=REASON ...] [-parallel 8] [-capability-args-pool pool.json] \
//	    [-state-cmd "ovs-vsctl --bare --columns=name list Port" ...] [-hint-file] \
//	    [-json report.json]
//
// vm-device judges what every VM runtime reads (pseudo-interface, CNI 1.1
// fields, device-info, Kata DAN); -hint-file adds vm-hint, vmcni's own hint
// file. A check that fails on a host link the plugin keeps by design says
// which -ignore-link leaves it out.
//
// A pool file is a JSON array of capability-args objects, one per device a
// device plugin would hand out ([{"deviceID": "0000:3b:02.0"}, ...]); each
// attachment of the suite gets its own entry.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/vmcni/vmcni/conformance"
)

// list is a repeatable string flag.
type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

// options are the command line.
type options struct {
	bin, conflist, pool, ifName, jsonOut        string
	invalid, watch, ignore, ignorePrefix, skips list
	stateCmds                                   list
	parallel                                    int
	hintFile                                    bool
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "/opt/cni/bin", "plugin directories (CNI_PATH), colon-separated")
	flag.StringVar(&o.conflist, "conflist", "", "the network under test: a conflist or a single plugin config (required)")
	flag.Var(&o.invalid, "invalid", "a config the plugin must reject with code 7 (repeatable)")
	flag.Var(&o.watch, "watch", "an extra directory whose files must be the same before and after (repeatable)")
	flag.Var(&o.ignore, "ignore-link", "a host link left out of the snapshots, e.g. a shared host bridge (repeatable)")
	flag.Var(&o.ignorePrefix, "ignore-link-prefix", "leave out host links with this name prefix (repeatable)")
	flag.Var(&o.skips, "skip", "CHECK=REASON: declare a check not applicable (repeatable)")
	flag.Var(&o.stateCmds, "state-cmd", "a command (split on spaces, no shell) whose output must be the same before and after, "+
		"e.g. \"ovs-vsctl --bare --columns=name list Port\" (repeatable)")
	flag.IntVar(&o.parallel, "parallel", 8, "attachments of the concurrency check")
	flag.StringVar(&o.pool, "capability-args-pool", "", "a JSON array of per-attachment capability args (one device each)")
	flag.StringVar(&o.ifName, "ifname", "eth0", "CNI_IFNAME")
	flag.BoolVar(&o.hintFile, "hint-file", false, "also check vmcni's hint file (vm-hint; for vmcni plugins)")
	flag.StringVar(&o.jsonOut, "json", "", "also write the report as JSON to this file")
	listChecks := flag.Bool("list", false, "list the checks and exit")
	flag.Parse()

	if *listChecks {
		for _, c := range conformance.Checks {
			fmt.Printf("%-22s %s\n", c.Name, c.Verifies)
		}
		return
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "vmcni-conformance:", err)
		if errors.Is(err, errChecksFailed) {
			os.Exit(1)
		}
		os.Exit(2)
	}
}

func run(o options) error {
	cfg, err := o.config()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	report, err := conformance.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if err := report.WriteText(os.Stdout); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if o.jsonOut != "" {
		js, err := report.JSON()
		if err != nil {
			return err
		}
		if err := os.WriteFile(o.jsonOut, js, 0o644); err != nil {
			return fmt.Errorf("write JSON report: %w", err)
		}
	}
	if !report.Passed() {
		return errChecksFailed
	}
	return nil
}

// config reads the files the options name into a suite Config.
func (o options) config() (conformance.Config, error) {
	if o.conflist == "" {
		return conformance.Config{}, errors.New("-conflist is required")
	}
	data, err := os.ReadFile(o.conflist)
	if err != nil {
		return conformance.Config{}, fmt.Errorf("read conflist: %w", err)
	}
	cfg := conformance.Config{
		BinDirs: filepath.SplitList(o.bin), Conflist: data, WatchDirs: o.watch, IgnoreLinks: o.ignore,
		IgnoreLinkPrefixes: o.ignorePrefix, Parallel: o.parallel, IfName: o.ifName, Skip: map[string]string{},
		HintFile: o.hintFile,
		Log:      func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) },
	}
	if o.pool != "" {
		pool, err := os.ReadFile(o.pool)
		if err != nil {
			return cfg, fmt.Errorf("read capability args pool: %w", err)
		}
		if err := json.Unmarshal(pool, &cfg.CapabilityArgsPool); err != nil {
			return cfg, fmt.Errorf("capability args pool %q: want a JSON array of objects: %w", o.pool, err)
		}
	}
	for _, path := range o.invalid {
		bad, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("read invalid config: %w", err)
		}
		cfg.InvalidConfigs = append(cfg.InvalidConfigs, bad)
	}
	if len(o.stateCmds) > 0 {
		cfg.ExtraState = commandsState(o.stateCmds)
	}
	for _, s := range o.skips {
		name, reason, ok := strings.Cut(s, "=")
		if !ok || reason == "" {
			return cfg, fmt.Errorf("-skip %q: want CHECK=REASON", s)
		}
		cfg.Skip[name] = reason
	}
	return cfg, nil
}

// commandsState is an ExtraState that runs each command (argv split on
// spaces, no shell) and returns its output lines, prefixed with the
// command.
func commandsState(cmds []string) func() ([]string, error) {
	return func() ([]string, error) {
		var lines []string
		for _, c := range cmds {
			argv := strings.Fields(c)
			if len(argv) == 0 {
				return nil, errors.New("-state-cmd: empty command")
			}
			out, err := exec.Command(argv[0], argv[1:]...).Output()
			if err != nil {
				return nil, fmt.Errorf("-state-cmd %q: %w", c, err)
			}
			for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				lines = append(lines, c+": "+l)
			}
		}
		return lines, nil
	}
}

// errChecksFailed makes main exit 1 (a failed check) rather than 2 (usage).
var errChecksFailed = errors.New("some checks failed")
