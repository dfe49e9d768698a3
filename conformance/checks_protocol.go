package conformance

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/vmcni/vmcni/internal/netns"
)

func versionAtLeast(have, want string) bool {
	ok, err := version.GreaterThanOrEqualTo(have, want)
	return err == nil && ok
}

// checkVersion runs VERSION on every plugin and records the versions they
// all support.
func (s *suite) checkVersion() verdict {
	var common map[string]int
	var problems, details []string
	for _, typ := range uniqueTypes(s.net.types) {
		c := call{Plugin: typ, Command: "VERSION", Stdin: fmt.Appendf(nil, `{"cniVersion":%q}`, s.net.list.CNIVersion)}
		o, err := s.exec(context.Background(), c)
		if err != nil {
			return fail("%v", err)
		}
		if _, err := checkOutcome(c, "", o); err != nil {
			problems = append(problems, err.Error())
			continue
		}
		var info struct {
			CNIVersion        string   `json:"cniVersion"`
			SupportedVersions []string `json:"supportedVersions"`
		}
		if err := strictDecode(o.Stdout, &info); err != nil {
			problems = append(problems, fmt.Sprintf("%s VERSION: stdout %q: %v", typ, truncate(string(o.Stdout), 120), err))
			continue
		}
		details = append(details, fmt.Sprintf("%s: %v", typ, info.SupportedVersions))
		if common == nil {
			common = map[string]int{}
		}
		have := map[string]bool{}
		for _, v := range info.SupportedVersions {
			if !have[v] {
				have[v] = true
				common[v]++
			}
		}
		for _, want := range append(append([]string{}, versionsUnderTest...), s.net.list.CNIVersion) {
			if !have[want] {
				problems = append(problems, fmt.Sprintf("%s does not support cniVersion %s", typ, want))
			}
		}
	}
	n := len(uniqueTypes(s.net.types))
	s.versions = []string{}
	for v, k := range common {
		if k == n {
			s.versions = append(s.versions, v)
		}
	}
	sort.Slice(s.versions, func(i, j int) bool { return versionLess(s.versions[i], s.versions[j]) })
	s.report.Versions = s.versions
	if len(problems) > 0 {
		return fail("%s", problems[0]).with(append(problems[1:], details...)...)
	}
	return pass("every plugin answers VERSION and supports %s", versionsUnderTestString).with(details...)
}

func versionLess(a, b string) bool {
	return !versionAtLeast(a, b)
}

func uniqueTypes(types []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, t := range types {
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
}

// lifecycle runs ADD, CHECK, DEL, DEL through libcni and records the
// lifecycle, result-interfaces, vm-device and vm-hint checks.
func (s *suite) lifecycle(ctx context.Context) {
	if reason, ok := s.cfg.Skip[CheckLifecycle]; ok {
		s.add(CheckLifecycle, skip("declared not applicable by the caller: %s", reason), 0)
		return
	}
	var res *current.Result
	var att attachment
	var ifaces, dev, vm verdict
	s.record(CheckLifecycle, func() verdict {
		before, err := s.before()
		if err != nil {
			return fail("%v", err)
		}
		a, cleanup, err := s.newAttachment()
		if err != nil {
			return fail("%v", err)
		}
		defer cleanup()
		att = a
		rt := att.runtime()
		r, err := s.cni.AddNetworkList(ctx, s.net.list, rt)
		if err != nil {
			_ = s.cni.DelNetworkList(ctx, s.net.list, rt)
			return fail("ADD: %v", err)
		}
		if res, err = current.NewResultFromResult(r); err != nil {
			_ = s.cni.DelNetworkList(ctx, s.net.list, rt)
			return fail("convert ADD result: %v", err)
		}
		// The interface and hint checks need the attachment in place.
		ifaces = s.resultInterfaces(res, att)
		dev = s.vmDevice(res, att)
		vm = s.vmHint(res, att)
		if err := s.cni.CheckNetworkList(ctx, s.net.list, rt); err != nil && s.atLeast("0.4.0") {
			_ = s.cni.DelNetworkList(ctx, s.net.list, rt)
			return fail("CHECK: %v", err)
		}
		if err := s.cni.DelNetworkList(ctx, s.net.list, rt); err != nil {
			return fail("DEL: %v", err)
		}
		if err := s.cni.DelNetworkList(ctx, s.net.list, rt); err != nil {
			return fail("second DEL: %v", err)
		}
		cleanup()
		if v, ok := s.hygiene(before, "after ADD, CHECK, DEL, DEL"); !ok {
			return v
		}
		return pass("ADD, CHECK, DEL, DEL succeeded; host as before")
	})
	for _, c := range []struct {
		name string
		v    verdict
	}{{CheckResultInterfaces, ifaces}, {CheckVMDevice, dev}, {CheckVMHint, vm}} {
		if reason, ok := s.cfg.Skip[c.name]; ok {
			s.add(c.name, skip("declared not applicable by the caller: %s", reason), 0)
			continue
		}
		if c.v.status == "" {
			c.v = fail("not run: ADD failed")
		}
		s.add(c.name, c.v, 0)
	}
}

// checkStdout runs ADD, CHECK, DEL, DEL (and GC, STATUS from 1.1.0) by
// direct exec and checks every plugin's stdout strictly.
func (s *suite) checkStdout(ctx context.Context) verdict {
	before, att, cleanup, err := s.beginAttachment()
	if err != nil {
		return fail("%v", err)
	}
	defer cleanup()
	list := s.net.list
	res, err := s.chain(ctx, list, "ADD", att, nil)
	if err != nil {
		_, _ = s.chain(ctx, list, "DEL", att, nil)
		return fail("ADD: %v", err)
	}
	var problems []string
	if s.atLeast("0.4.0") {
		if _, err := s.chain(ctx, list, "CHECK", att, res); err != nil {
			problems = append(problems, "CHECK: "+err.Error())
		}
	}
	if _, err := s.chain(ctx, list, "DEL", att, res); err != nil {
		problems = append(problems, "DEL: "+err.Error())
	}
	if _, err := s.chain(ctx, list, "DEL", att, nil); err != nil {
		problems = append(problems, "second DEL (no prevResult): "+err.Error())
	}
	if s.atLeast(minGCVersion) {
		for _, p := range list.Plugins {
			for _, cmd := range []string{"STATUS", "GC"} {
				inject := map[string]any{"name": list.Name, "cniVersion": list.CNIVersion}
				if cmd == "GC" {
					inject["cni.dev/valid-attachments"] = []types.GCAttachment{}
				}
				conf, err := libcni.InjectConf(p, inject)
				if err != nil {
					return fail("build %s config: %v", cmd, err)
				}
				c := call{Plugin: p.Network.Type, Command: cmd, Stdin: conf.Bytes}
				o, err := s.exec(ctx, c)
				if err != nil {
					return fail("%v", err)
				}
				if _, err := checkOutcome(c, list.CNIVersion, o); err != nil {
					problems = append(problems, err.Error())
				}
			}
		}
	}
	cleanup()
	if len(problems) > 0 {
		return fail("%s", problems[0]).with(problems[1:]...)
	}
	if v, ok := s.hygiene(before, "after direct-exec ADD, CHECK, DEL, DEL"); !ok {
		return v
	}
	return pass("every plugin printed exactly one strict %s result on ADD and nothing on success otherwise", list.CNIVersion)
}

// checkResultVersions adds once per cniVersion under test and converts each
// result to every other version.
func (s *suite) checkResultVersions(ctx context.Context) verdict {
	before, err := s.before()
	if err != nil {
		return fail("%v", err)
	}
	var details, problems []string
	tested := 0
	for _, v := range versionsUnderTest {
		if !s.supports(v) {
			details = append(details, v+": not supported by every plugin, not tested")
			continue
		}
		tested++
		if err := s.oneVersion(ctx, v); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", v, err))
			continue
		}
		details = append(details, v+": ADD result strict, converts to "+versionsUnderTestString+" and back, CHECK, DEL ok")
	}
	if len(problems) > 0 {
		return fail("%s", problems[0]).with(append(problems[1:], details...)...)
	}
	if tested == 0 {
		return skip("the plugins share none of %s", versionsUnderTestString).with(details...)
	}
	if v, ok := s.hygiene(before, "after the per-version ADD/DEL"); !ok {
		return v.with(details...)
	}
	return pass("%d version(s) tested; host as before", tested).with(details...)
}

func (s *suite) oneVersion(ctx context.Context, v string) error {
	list, err := s.net.withVersion(v)
	if err != nil {
		return err
	}
	att, cleanup, err := s.newAttachment()
	if err != nil {
		return err
	}
	defer cleanup()
	res, err := s.chain(ctx, list, "ADD", att, nil)
	if err != nil {
		_, _ = s.chain(ctx, list, "DEL", att, nil)
		return fmt.Errorf("ADD: %w", err)
	}
	convErr := convertAll(res)
	if versionAtLeast(v, "0.4.0") {
		if _, err := s.chain(ctx, list, "CHECK", att, res); err != nil {
			_, _ = s.chain(ctx, list, "DEL", att, res)
			return fmt.Errorf("CHECK: %w", err)
		}
	}
	if _, err := s.chain(ctx, list, "DEL", att, res); err != nil {
		return fmt.Errorf("DEL: %w", err)
	}
	return convErr
}

// convertAll converts res to every version under test and back to the
// newest, and checks nothing was lost.
func convertAll(res types.Result) error {
	base, err := current.NewResultFromResult(res)
	if err != nil {
		return fmt.Errorf("convert %s result to %s: %w", res.Version(), current.ImplementedSpecVersion, err)
	}
	for _, to := range versionsUnderTest {
		conv, err := res.GetAsVersion(to)
		if err != nil {
			return fmt.Errorf("convert %s result to %s: %w", res.Version(), to, err)
		}
		if conv.Version() != to {
			return fmt.Errorf("converted to %s, result says %s", to, conv.Version())
		}
		back, err := current.NewResultFromResult(conv)
		if err != nil {
			return fmt.Errorf("convert %s back to %s: %w", to, current.ImplementedSpecVersion, err)
		}
		if len(back.Interfaces) != len(base.Interfaces) || len(back.IPs) != len(base.IPs) || len(back.Routes) != len(base.Routes) {
			return fmt.Errorf("%s -> %s -> %s: %d/%d/%d interfaces/IPs/routes, was %d/%d/%d", res.Version(), to,
				current.ImplementedSpecVersion, len(back.Interfaces), len(back.IPs), len(back.Routes),
				len(base.Interfaces), len(base.IPs), len(base.Routes))
		}
	}
	return nil
}

func (s *suite) checkDelWithoutAdd(ctx context.Context) verdict {
	before, att, cleanup, err := s.beginAttachment()
	if err != nil {
		return fail("%v", err)
	}
	defer cleanup()
	if err := s.cni.DelNetworkList(ctx, s.net.list, att.runtime()); err != nil {
		return fail("DEL without ADD: %v", err)
	}
	cleanup()
	if v, ok := s.hygiene(before, "after DEL without ADD"); !ok {
		return v
	}
	return pass("DEL of an attachment never added succeeded; host as before")
}

func (s *suite) checkDelNetnsGone(ctx context.Context) verdict {
	before, att, cleanup, err := s.beginAttachment()
	if err != nil {
		return fail("%v", err)
	}
	defer cleanup()
	rt := att.runtime()
	if _, err := s.cni.AddNetworkList(ctx, s.net.list, rt); err != nil {
		_ = s.cni.DelNetworkList(ctx, s.net.list, rt)
		return fail("ADD: %v", err)
	}
	cleanup()
	if netns.Exists(att.Netns) {
		return fail("netns %q still exists after deletion", att.Netns)
	}
	if err := s.cni.DelNetworkList(ctx, s.net.list, rt); err != nil {
		return fail("DEL after the netns is gone: %v", err)
	}
	if v, ok := s.hygiene(before, "after DEL with the netns gone"); !ok {
		return v
	}
	return pass("DEL with the netns gone succeeded; host as before")
}

// checkFailedAdd makes a second ADD collide with the first one's interface.
func (s *suite) checkFailedAdd(ctx context.Context) verdict {
	before, att, cleanup, err := s.beginAttachment()
	if err != nil {
		return fail("%v", err)
	}
	defer cleanup()
	rt := att.runtime()
	if _, err = s.cni.AddNetworkList(ctx, s.net.list, rt); err != nil {
		_ = s.cni.DelNetworkList(ctx, s.net.list, rt)
		return fail("first ADD: %v", err)
	}
	withFirst, err := s.before()
	if err != nil {
		return fail("%v", err)
	}
	second := att
	second.ContainerID = s.cfg.NamePrefix + "-" + randomHex(8)
	capArgs, release, err := s.takeCapabilityArgs()
	if err != nil {
		_ = s.cni.DelNetworkList(ctx, s.net.list, rt)
		return fail("second attachment: %v", err)
	}
	defer release()
	second.CapArgs = capArgs // its own device: the collision is the ifname
	var v verdict
	if _, err := s.cni.AddNetworkList(ctx, s.net.list, second.runtime()); err == nil {
		_ = s.cni.DelNetworkList(ctx, s.net.list, second.runtime())
		v = skip("a second ADD into the same netns and ifname succeeded (the plugin makes no %s in the netns): no conflict to provoke", att.IfName)
	} else if hv, ok := s.hygiene(withFirst, "after the failed second ADD"); !ok {
		v = hv.with("failed ADD: " + err.Error())
	} else {
		v = pass("the second ADD failed (%s) and left nothing behind", truncate(err.Error(), 100))
	}
	if err := s.cni.DelNetworkList(ctx, s.net.list, rt); err != nil {
		return fail("DEL of the first attachment: %v", err)
	}
	cleanup()
	if hv, ok := s.hygiene(before, "after DEL of the first attachment"); !ok && v.status != Fail {
		return hv
	}
	return v
}

func (s *suite) checkStatus(ctx context.Context) verdict {
	if !s.atLeast(minGCVersion) {
		return skip("STATUS needs cniVersion %s, the conflist has %s", minGCVersion, s.net.list.CNIVersion)
	}
	if err := s.cni.GetStatusNetworkList(ctx, s.net.list); err != nil {
		return fail("STATUS: %v", err)
	}
	return pass("STATUS succeeded for every plugin")
}

func (s *suite) checkConcurrency(ctx context.Context) verdict {
	before, err := s.before()
	if err != nil {
		return fail("%v", err)
	}
	n := s.cfg.Parallel
	atts := make([]attachment, 0, n)
	var cleanups []func()
	defer func() {
		for _, c := range cleanups {
			c()
		}
	}()
	for i := 0; i < n; i++ {
		att, cleanup, err := s.newAttachment()
		if err != nil {
			return fail("%v", err)
		}
		atts = append(atts, att)
		cleanups = append(cleanups, cleanup)
	}
	run := func(op func(context.Context, *libcni.NetworkConfigList, *libcni.RuntimeConf) error) []error {
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i, att := range atts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = op(ctx, s.net.list, att.runtime())
			}()
		}
		wg.Wait()
		var out []error
		for i, err := range errs {
			if err != nil {
				out = append(out, fmt.Errorf("%s: %w", atts[i].ContainerID, err))
			}
		}
		return out
	}
	addErrs := run(func(ctx context.Context, l *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
		_, err := s.cni.AddNetworkList(ctx, l, rt)
		return err
	})
	delErrs := run(s.cni.DelNetworkList)
	if len(addErrs) > 0 {
		return fail("%d of %d parallel ADDs failed: %s", len(addErrs), n, truncate(joinErrs(addErrs), 300))
	}
	if len(delErrs) > 0 {
		return fail("%d of %d parallel DELs failed: %s", len(delErrs), n, truncate(joinErrs(delErrs), 300))
	}
	for _, c := range cleanups {
		c()
	}
	if v, ok := s.hygiene(before, fmt.Sprintf("after %d parallel ADDs and DELs", n)); !ok {
		return v
	}
	return pass("%d parallel ADDs and DELs succeeded; host as before", n)
}
