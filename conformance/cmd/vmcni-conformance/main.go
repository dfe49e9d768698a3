// Command vmcni-conformance runs the conformance suite (package
// github.com/vmcni/vmcni/conformance) against a directory of CNI plugin
// binaries and a conflist, prints a readable report and optionally writes
// a JSON one. It exits 1 when a check fails. Needs root.
//
//	vmcni-conformance -bin /opt/cni/bin -conflist net.conflist \
//	    [-invalid bad.conf ...] [-watch DIR ...] [-ignore-link BR ...] \
//	    [-skip CHECK=REASON ...] [-parallel 8] [-capability-args-pool pool.json] \
//	    [-json report.json]
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

func main() {
	var invalid, watch, ignore, ignorePrefix, skips list
	bin := flag.String("bin", "/opt/cni/bin", "plugin directories (CNI_PATH), colon-separated")
	conflist := flag.String("conflist", "", "the network under test: a conflist or a single plugin config (required)")
	flag.Var(&invalid, "invalid", "a config the plugin must reject with code 7 (repeatable)")
	flag.Var(&watch, "watch", "an extra directory whose files must be the same before and after (repeatable)")
	flag.Var(&ignore, "ignore-link", "a host link left out of the snapshots, e.g. a shared host bridge (repeatable)")
	flag.Var(&ignorePrefix, "ignore-link-prefix", "leave out host links with this name prefix (repeatable)")
	flag.Var(&skips, "skip", "CHECK=REASON: declare a check not applicable (repeatable)")
	parallel := flag.Int("parallel", 8, "attachments of the concurrency check")
	pool := flag.String("capability-args-pool", "", "a JSON array of per-attachment capability args (one device each)")
	ifName := flag.String("ifname", "eth0", "CNI_IFNAME")
	jsonOut := flag.String("json", "", "also write the report as JSON to this file")
	listChecks := flag.Bool("list", false, "list the checks and exit")
	flag.Parse()

	if *listChecks {
		for _, c := range conformance.Checks {
			fmt.Printf("%-22s %s\n", c.Name, c.Verifies)
		}
		return
	}
	if err := run(*bin, *conflist, *pool, invalid, watch, ignore, ignorePrefix, skips, *parallel, *ifName, *jsonOut); err != nil {
		fmt.Fprintln(os.Stderr, "vmcni-conformance:", err)
		if errors.Is(err, errChecksFailed) {
			os.Exit(1)
		}
		os.Exit(2)
	}
}

func run(bin, conflist, pool string, invalid, watch, ignore, ignorePrefix, skips list, parallel int, ifName, jsonOut string) error {
	if conflist == "" {
		return fmt.Errorf("-conflist is required")
	}
	data, err := os.ReadFile(conflist)
	if err != nil {
		return fmt.Errorf("read conflist: %w", err)
	}
	cfg := conformance.Config{
		BinDirs: filepath.SplitList(bin), Conflist: data, WatchDirs: watch, IgnoreLinks: ignore,
		IgnoreLinkPrefixes: ignorePrefix, Parallel: parallel, IfName: ifName, Skip: map[string]string{},
		Log: func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) },
	}
	if pool != "" {
		data, rerr := os.ReadFile(pool)
		if rerr != nil {
			return fmt.Errorf("read capability args pool: %w", rerr)
		}
		if jerr := json.Unmarshal(data, &cfg.CapabilityArgsPool); jerr != nil {
			return fmt.Errorf("capability args pool %q: want a JSON array of objects: %w", pool, jerr)
		}
	}
	for _, path := range invalid {
		bad, rerr := os.ReadFile(path)
		if rerr != nil {
			return fmt.Errorf("read invalid config: %w", rerr)
		}
		cfg.InvalidConfigs = append(cfg.InvalidConfigs, bad)
	}
	for _, s := range skips {
		name, reason, ok := strings.Cut(s, "=")
		if !ok || reason == "" {
			return fmt.Errorf("-skip %q: want CHECK=REASON", s)
		}
		cfg.Skip[name] = reason
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
	if jsonOut != "" {
		js, err := report.JSON()
		if err != nil {
			return err
		}
		if err := os.WriteFile(jsonOut, js, 0o644); err != nil {
			return fmt.Errorf("write JSON report: %w", err)
		}
	}
	if !report.Passed() {
		return errChecksFailed
	}
	return nil
}

// errChecksFailed makes main exit 1 (a failed check) rather than 2 (usage).
var errChecksFailed = errors.New("some checks failed")
