package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/vmcni/vmcni/vmnet"
	"github.com/vmcni/vmcni/vmnet/launcher"
)

// Lines vmnet pod writes on stdout besides the guest's (see main's doc).
const (
	planMarker    = "VMNET-PLAN"
	bootedMarker  = "VMNET-BOOTED"
	stoppedMarker = "VMNET-STOPPED"
	// guestMarker starts every marker of the test guest (vmnet/guest).
	guestMarker = "VMCNI-"
)

// podCmd runs `vmnet pod`: plan from the pod, boot, stay up until SIGTERM
// or SIGINT. It writes the lines documented in main's doc to stdout.
func podCmd(args []string, stdout io.Writer) error {
	fset := flag.NewFlagSet("pod", flag.ContinueOnError)
	nsPath := fset.String("netns", "/proc/self/ns/net", `netns to scan for taps and macvtaps with a vmcni alias ("" skips the scan)`)
	statusFile := fset.String("network-status", "", "file holding Multus's network-status annotation (downward API), for vhost-user devices")
	wait := fset.Duration("wait", 60*time.Second, "how long to wait for a NIC and, with --network-status, for the annotation")
	prefix4 := fset.Int("prefix4", 24, "prefix length of the bare IPv4 addresses of --network-status")
	prefix6 := fset.Int("prefix6", 64, "prefix length of the bare IPv6 addresses of --network-status")
	defaultHost, _ := os.Hostname()
	hostname := fset.String("hostname", defaultHost, "guest hostname, this container's by default")
	var probes, probeTCPs multiFlag
	fset.Var(&probes, "probe", "an IP the guest pings after boot (repeatable)")
	fset.Var(&probeTCPs, "probe-tcp", "a HOST:PORT whose http://HOST:PORT/ the guest fetches after boot (repeatable)")
	probeWait := fset.Duration("probe-wait", 60*time.Second, "how long after boot the guest retries each probe")
	vm := addVMFlags(fset)
	if err := fset.Parse(args); err != nil {
		return err
	}
	if fset.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fset.Args())
	}
	if strings.ContainsAny(*hostname, " \t\n") {
		return fmt.Errorf("hostname %q has blanks", *hostname)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	src := podSources{netns: *nsPath, networkStatus: *statusFile,
		opts: vmnet.NetworkStatusOptions{PrefixV4: *prefix4, PrefixV6: *prefix6}}
	plan, err := src.wait(ctx, *wait)
	if err != nil {
		return stoppedOr(ctx, stdout, err)
	}
	summary, err := json.Marshal(struct {
		NICs []vmnet.NICSummary `json:"nics"`
	}{plan.Summary()})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s %s\n", planMarker, summary)

	opts := launcher.Options{Plan: plan, Probes: probes, ProbeTCPs: probeTCPs, ProbeWait: *probeWait}
	vm.apply(&opts)
	if *hostname != "" {
		opts.ExtraCmdline = strings.TrimSpace("vmcni.hostname=" + *hostname + " " + opts.ExtraCmdline)
	}
	opts.Console = &markerWriter{w: stdout, all: *vm.console}
	s, err := launcher.Start(ctx, opts)
	if err != nil {
		return stoppedOr(ctx, stdout, err)
	}
	fmt.Fprintf(stdout, "%s boot=%.2fs accel=%s\n", bootedMarker, s.BootTime.Seconds(), s.Accel)

	waitErr := s.Wait(ctx)
	closeErr := s.Close()
	switch {
	case ctx.Err() != nil:
		fmt.Fprintf(stdout, "%s reason=signal\n", stoppedMarker)
		return closeErr
	case waitErr != nil:
		return fmt.Errorf("QEMU exited: %w", waitErr)
	}
	fmt.Fprintf(stdout, "%s reason=poweroff\n", stoppedMarker)
	return closeErr
}

// stoppedOr reports err, unless a signal ended ctx: then the pod is being
// stopped, which is no failure.
func stoppedOr(ctx context.Context, stdout io.Writer, err error) error {
	if ctx.Err() == nil {
		return err
	}
	fmt.Fprintf(stdout, "%s reason=signal\n", stoppedMarker)
	return nil
}

// podSources are where vmnet pod finds the pod's VM devices.
type podSources struct {
	netns         string // scanned with vmnet.PlanFromNetns unless empty
	networkStatus string // read with vmnet.ParseNetworkStatus unless empty
	opts          vmnet.NetworkStatusOptions
}

// wait plans every second until plan finds everything, ctx ends or
// timeout has passed.
func (src podSources) wait(ctx context.Context, timeout time.Duration) (*vmnet.Plan, error) {
	deadline := time.Now().Add(timeout)
	for {
		p, missing, err := src.plan()
		switch {
		case err != nil:
			return nil, err
		case missing == "":
			return p, nil
		case !time.Now().Before(deadline):
			return nil, fmt.Errorf("%s (waited %s)", missing, timeout)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// plan merges the NICs of the netns (first, by device name) and of the
// network-status (in annotation order). missing says what is not there
// yet: the annotation (the kubelet refreshes a downward API file after
// Multus annotates the pod, which can be after the container starts), or
// any NIC at all.
func (src podSources) plan() (p *vmnet.Plan, missing string, err error) {
	var fromNetns, fromStatus *vmnet.Plan
	if src.netns != "" {
		if fromNetns, err = vmnet.PlanFromNetns(src.netns); err != nil {
			return nil, "", fmt.Errorf("scan netns %q: %w", src.netns, err)
		}
	}
	annotated := true
	if src.networkStatus != "" {
		if fromStatus, annotated, err = planNetworkStatus(src.networkStatus, src.opts); err != nil {
			return nil, "", err
		}
	}
	if p, err = vmnet.MergePlans(fromNetns, fromStatus); err != nil {
		return nil, "", err
	}
	switch {
	case !annotated:
		missing = fmt.Sprintf("%s holds no %s annotation", src.networkStatus, vmnet.NetworkStatusAnnotation)
	case len(p.NICs) == 0:
		missing = "no NIC found: " + src.describe()
	}
	return p, missing, nil
}

// planNetworkStatus plans from the network-status file; annotated is false
// while the file is missing or holds no annotation.
func planNetworkStatus(file string, opts vmnet.NetworkStatusOptions) (p *vmnet.Plan, annotated bool, err error) {
	data, err := os.ReadFile(file)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	statuses, err := vmnet.ParseNetworkStatus(data)
	if err == nil {
		p, err = vmnet.PlanFromNetworkStatus(statuses, opts)
	}
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", file, err)
	}
	return p, len(statuses) > 0, nil
}

func (src podSources) describe() string {
	var where []string
	if src.netns != "" {
		where = append(where, fmt.Sprintf("no tap or macvtap with a vmcni alias in netns %q", src.netns))
	}
	if src.networkStatus != "" {
		where = append(where, fmt.Sprintf("no vhost-user device-info in %s", src.networkStatus))
	}
	if len(where) == 0 {
		return "neither --netns nor --network-status given"
	}
	return strings.Join(where, " and ")
}

// markerWriter passes console lines to w: every line when all is set, else
// only the lines holding a guest marker, from the marker on.
type markerWriter struct {
	w   io.Writer
	all bool
}

func (m *markerWriter) Write(p []byte) (int, error) {
	if m.all {
		return m.w.Write(p)
	}
	for _, line := range strings.SplitAfter(string(p), "\n") {
		if i := strings.Index(line, guestMarker); i >= 0 {
			if _, err := io.WriteString(m.w, strings.TrimRight(line[i:], "\n")+"\n"); err != nil {
				return 0, err
			}
		}
	}
	return len(p), nil
}
