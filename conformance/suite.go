package conformance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/cni/libcni"

	"github.com/vmcni/vmcni/internal/netns"
)

// The checks, in the order Run runs them.
const (
	CheckVersion            = "version"              // VERSION answers strictly and supports 0.4.0, 1.0.0, 1.1.0
	CheckLifecycle          = "add-check-del-del"    // ADD, CHECK, DEL, DEL through libcni; host as before
	CheckResultInterfaces   = "result-interfaces"    // interfaces the ADD result names exist where their sandbox says
	CheckVMDevice           = "vm-device"            // what every VM runtime reads: pseudo-interface, CNI 1.1 fields, device, device-info, Kata DAN
	CheckVMHint             = "vm-hint"              // vmcni's hint file agrees with the result (Config.HintFile)
	CheckStdout             = "stdout-only-result"   // direct exec: ADD prints one strict result, CHECK/DEL/GC/STATUS nothing
	CheckResultVersions     = "result-versions"      // a result for every supported cniVersion, converted to the others
	CheckDelWithoutAdd      = "del-without-add"      // DEL of an unknown attachment succeeds, changes nothing
	CheckDelNetnsGone       = "del-netns-gone"       // DEL after the netns was deleted succeeds; host as before
	CheckFailedAdd          = "failed-add-hygiene"   // an ADD that fails (ifname taken) leaves no trace
	CheckTamper             = "check-detects-loss"   // CHECK fails once the netns interfaces are deleted; DEL still cleans up
	CheckKubeletArgs        = "kubernetes-cni-args"  // ADD, CHECK, DEL accept the CNI_ARGS Kubernetes runtimes send
	CheckErrMalformed       = "error-malformed-json" // code 6, strict error object, no side effect
	CheckErrVersion         = "error-unknown-version"
	CheckErrEnv             = "error-missing-env"
	CheckErrInvalidConfig   = "error-invalid-config"
	CheckGCValid            = "gc-valid-attachments" // libcni GC keeps the valid attachment, the plugin collects a stale one
	CheckGCLegacyKey        = "gc-legacy-key"        // the same with only the older cni.dev/attachments key
	CheckStatus             = "status"               // STATUS succeeds
	CheckConcurrency        = "concurrency"          // N parallel ADDs then DELs, no failure, host as before
	defaultParallel         = 8
	defaultIfName           = "eth0"
	defaultPrefix           = "vmct"
	hygieneSettle           = 3 * time.Second
	minGCVersion            = "1.1.0"
	errCodeIncompatible     = 1
	errCodeEnv              = 4
	errCodeDecode           = 6
	errCodeInvalidConfig    = 7
	versionsUnderTestString = "0.4.0, 1.0.0, 1.1.0"
)

// Checks lists every check name with what it verifies.
var Checks = []struct{ Name, Verifies string }{
	{CheckVersion, "VERSION prints exactly one {cniVersion, supportedVersions} object that includes 0.4.0, 1.0.0, 1.1.0 and the conflist's version"},
	{CheckLifecycle, "ADD, CHECK, DEL, DEL through libcni succeed; host snapshot after DEL equals the one before ADD"},
	{CheckResultInterfaces, "every interface of the ADD result exists: sandbox = netns path in the netns (same MAC), no sandbox on the host"},
	{CheckVMDevice, "for each pseudo-interface (sandbox = container ID, the Firecracker / tc-redirect-tap convention): a MAC; its device interface exists in the netns, with the pseudo-interface's mtu; CNI 1.1 socketPath is a socket or its directory exists, pciID is a PCI address, mtu is 68..65535; the NPWG device-info file, when the attachment's capability args name one, has the device; the Kata DAN file, when the conflist sets kataDanDir, has the device"},
	{CheckVMHint, "with Config.HintFile (vmcni plugins): each pseudo-interface's vmcni hint file decodes and hint.CheckResult agrees with the result"},
	{CheckStdout, "direct exec of every plugin: ADD stdout is one result of the config's cniVersion with no unknown field and nothing else; CHECK, DEL, GC and STATUS print nothing"},
	{CheckResultVersions, "for each of " + versionsUnderTestString + " all plugins support: ADD returns that version, converts to every other version and back without losing interfaces or IPs, CHECK and DEL succeed, host as before"},
	{CheckDelWithoutAdd, "DEL of an attachment that was never added succeeds; host as before"},
	{CheckDelNetnsGone, "ADD, delete the netns, DEL succeeds; host as before"},
	{CheckFailedAdd, "a second ADD into the same netns and ifname fails without leaving anything behind"},
	{CheckTamper, "ADD, delete the result's interfaces in the netns: CHECK fails, DEL succeeds; host as before"},
	{CheckKubeletArgs, "ADD, CHECK, DEL with CNI_ARGS IgnoreUnknown=1;K8S_POD_NAMESPACE;K8S_POD_NAME;K8S_POD_INFRA_CONTAINER_ID;K8S_POD_UID succeed; host as before"},
	{CheckErrMalformed, "ADD with truncated JSON fails with one error object, code 6; host as before"},
	{CheckErrVersion, "ADD with cniVersion 99.99.99 fails with code 1; host as before"},
	{CheckErrEnv, "ADD without CNI_CONTAINERID, CNI_NETNS or CNI_IFNAME fails with code 4; host as before"},
	{CheckErrInvalidConfig, "ADD of each caller-supplied invalid config fails with code 7; host as before"},
	{CheckGCValid, "GC (libcni, cni.dev/valid-attachments) keeps a valid attachment (CHECK still passes) and removes a stale one libcni does not know (netns gone); host as with only the valid attachment"},
	{CheckGCLegacyKey, "GC by direct exec with only the older cni.dev/attachments key does the same"},
	{CheckStatus, "STATUS through libcni succeeds (cniVersion >= 1.1.0)"},
	{CheckConcurrency, "N parallel ADDs, then N parallel DELs, all succeed; host as before"},
}

// versionsUnderTest are the cniVersions whose results the suite checks.
var versionsUnderTest = []string{"0.4.0", "1.0.0", "1.1.0"}

// verdict is what a check function returns.
type verdict struct {
	status  Status
	reason  string
	details []string
}

func pass(format string, args ...any) verdict {
	return verdict{status: Pass, reason: fmt.Sprintf(format, args...)}
}

func fail(format string, args ...any) verdict {
	return verdict{status: Fail, reason: fmt.Sprintf(format, args...)}
}

func skip(format string, args ...any) verdict {
	return verdict{status: Skip, reason: fmt.Sprintf(format, args...)}
}

func (v verdict) with(details ...string) verdict {
	v.details = append(v.details, details...)
	return v
}

// suite is one run.
type suite struct {
	cfg      Config
	net      *network
	cni      *libcni.CNIConfig
	snap     *snapshotter
	work     string
	versions []string
	report   *Report
	// pool holds the free entries of cfg.CapabilityArgsPool; nil without one.
	pool chan map[string]any
}

// Run runs every check against cfg's network and returns the report. The
// error is for a run that could not start (bad Config, unreadable
// conflist); failed checks are in the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if len(cfg.BinDirs) == 0 || len(cfg.Conflist) == 0 {
		return nil, errors.New("conformance: BinDirs and Conflist are required")
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("conformance: needs root (it creates network namespaces)")
	}
	if cfg.IfName == "" {
		cfg.IfName = defaultIfName
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = defaultParallel
	}
	if cfg.NamePrefix == "" {
		cfg.NamePrefix = defaultPrefix
	}
	if cfg.Log == nil {
		cfg.Log = func(string, ...any) {}
	}
	n, err := parseNetwork(cfg.Conflist)
	if err != nil {
		return nil, fmt.Errorf("conformance: %w", err)
	}
	work := cfg.WorkDir
	if work == "" {
		if work, err = os.MkdirTemp("", "vmcni-conformance"); err != nil {
			return nil, fmt.Errorf("conformance: work dir: %w", err)
		}
		defer os.RemoveAll(work)
	}
	s := &suite{
		cfg: cfg, net: n, work: work,
		cni: libcni.NewCNIConfigWithCacheDir(cfg.BinDirs, filepath.Join(work, "cache"), nil),
		snap: &snapshotter{
			dirs:   dedupe(append(n.watchDirs(), cfg.WatchDirs...)),
			ignore: map[string]bool{}, ignorePrefix: cfg.IgnoreLinkPrefixes, extra: cfg.ExtraState,
		},
		report: &Report{Network: n.list.Name, CNIVersion: n.list.CNIVersion, Plugins: n.types, Started: time.Now()},
	}
	for _, l := range cfg.IgnoreLinks {
		s.snap.ignore[l] = true
	}
	if len(cfg.CapabilityArgsPool) > 0 {
		s.pool = make(chan map[string]any, len(cfg.CapabilityArgsPool))
		for _, args := range cfg.CapabilityArgsPool {
			s.pool <- args
		}
		s.cfg.Parallel = min(s.cfg.Parallel, len(cfg.CapabilityArgsPool))
	}
	s.runChecks(ctx)
	return s.report, nil
}

func (s *suite) runChecks(ctx context.Context) {
	s.record(CheckVersion, s.checkVersion)
	s.lifecycle(ctx)
	s.record(CheckStdout, func() verdict { return s.checkStdout(ctx) })
	s.record(CheckResultVersions, func() verdict { return s.checkResultVersions(ctx) })
	s.record(CheckDelWithoutAdd, func() verdict { return s.checkDelWithoutAdd(ctx) })
	s.record(CheckDelNetnsGone, func() verdict { return s.checkDelNetnsGone(ctx) })
	s.record(CheckFailedAdd, func() verdict { return s.checkFailedAdd(ctx) })
	s.record(CheckTamper, func() verdict { return s.checkTamper(ctx) })
	s.record(CheckKubeletArgs, func() verdict { return s.checkKubeletArgs(ctx) })
	s.record(CheckErrMalformed, func() verdict { return s.checkErrMalformed(ctx) })
	s.record(CheckErrVersion, func() verdict { return s.checkErrVersion(ctx) })
	s.record(CheckErrEnv, func() verdict { return s.checkErrEnv(ctx) })
	s.record(CheckErrInvalidConfig, func() verdict { return s.checkErrInvalidConfig(ctx) })
	s.record(CheckGCValid, func() verdict { return s.checkGC(ctx, false) })
	s.record(CheckGCLegacyKey, func() verdict { return s.checkGC(ctx, true) })
	s.record(CheckStatus, func() verdict { return s.checkStatus(ctx) })
	s.record(CheckConcurrency, func() verdict { return s.checkConcurrency(ctx) })
}

// record runs fn as the named check, unless the caller declared it not
// applicable.
func (s *suite) record(name string, fn func() verdict) {
	if reason, ok := s.cfg.Skip[name]; ok {
		s.add(name, skip("declared not applicable by the caller: %s", reason), 0)
		return
	}
	s.cfg.Log("check %s", name)
	t0 := time.Now()
	v := fn()
	s.add(name, v, time.Since(t0))
}

func (s *suite) add(name string, v verdict, d time.Duration) {
	s.report.Checks = append(s.report.Checks, CheckResult{Name: name, Status: v.status, Reason: v.reason, Details: v.details, Duration: d})
}

// newAttachment creates a netns and returns an attachment in it, with its
// own capability args from the pool, and a cleanup that deletes the netns
// and returns the capability args (twice is fine).
func (s *suite) newAttachment() (attachment, func(), error) {
	capArgs, release, err := s.takeCapabilityArgs()
	if err != nil {
		return attachment{}, func() {}, err
	}
	name := uniqueName(s.cfg.NamePrefix)
	path, err := netns.CreateNamed(name)
	if err != nil {
		release()
		return attachment{}, func() {}, fmt.Errorf("create netns %q: %w", name, err)
	}
	att := attachment{ContainerID: s.cfg.NamePrefix + "-" + randomHex(8), Netns: path, IfName: s.cfg.IfName, CapArgs: capArgs}
	return att, func() { _ = netns.DeleteNamed(name); release() }, nil
}

// takeCapabilityArgs takes a free entry of the pool (nil without a pool)
// and returns the function that gives it back (twice is fine).
func (s *suite) takeCapabilityArgs() (map[string]any, func(), error) {
	if s.pool == nil {
		return nil, func() {}, nil
	}
	select {
	case args := <-s.pool:
		var once sync.Once
		return args, func() { once.Do(func() { s.pool <- args }) }, nil
	default:
		return nil, nil, fmt.Errorf("capability args pool exhausted (%d entries, all in use)", cap(s.pool))
	}
}

// uniqueName is prefix plus random hex, at most 15 bytes.
func uniqueName(prefix string) string {
	name := prefix + randomHex(8)
	if len(name) > 15 {
		name = name[:15]
	}
	return name
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// before takes the snapshot a check compares against.
func (s *suite) before() (snapshot, error) { return s.snap.take() }

// beginAttachment is most checks' start: a host snapshot, then a fresh
// attachment (netns included) and the function that removes it.
func (s *suite) beginAttachment() (snapshot, attachment, func(), error) {
	before, err := s.before()
	if err != nil {
		return snapshot{}, attachment{}, nil, err
	}
	att, cleanup, err := s.newAttachment()
	if err != nil {
		return snapshot{}, attachment{}, nil, err
	}
	return before, att, cleanup, nil
}

// sameAs waits up to hygieneSettle for the host to equal want (the kernel
// destroys a deleted netns's links asynchronously) and returns the diff
// left, nil when equal.
func (s *suite) sameAs(want snapshot) ([]string, error) {
	deadline := time.Now().Add(hygieneSettle)
	for {
		now, err := s.snap.take()
		if err != nil {
			return nil, err
		}
		d := diff(want, now)
		if len(d) == 0 || time.Now().After(deadline) {
			return d, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// hygiene turns a host comparison into a verdict: ok when equal.
func (s *suite) hygiene(want snapshot, when string) (verdict, bool) {
	d, err := s.sameAs(want)
	if err != nil {
		return fail("snapshot %s: %v", when, err), false
	}
	if len(d) > 0 {
		return fail("host changed %s (%d differences)", when, len(d)).with(append(d, keptLinkAdvice(d)...)...), false
	}
	return verdict{}, true
}

// keptLinkAdvice explains, for each host link a run added and left, how
// to leave it out when the plugin keeps it by design (a shared host
// bridge, which the reference bridge plugin never deletes either).
func keptLinkAdvice(d []string) []string {
	var out []string
	for _, line := range d {
		name, ok := strings.CutPrefix(line, "+ link ")
		if !ok {
			continue
		}
		name, _, _ = strings.Cut(name, " ")
		out = append(out, fmt.Sprintf("if the plugin keeps link %s by design (a shared host bridge), leave it out with -ignore-link %s (Config.IgnoreLinks); a leak otherwise", name, name))
	}
	return out
}

// supports reports whether every plugin supports cniVersion v (as far as
// VERSION told; before VERSION ran, or when it failed, assume yes).
func (s *suite) supports(v string) bool {
	if s.versions == nil {
		return true
	}
	for _, have := range s.versions {
		if have == v {
			return true
		}
	}
	return false
}

// atLeast reports whether the conflist's cniVersion is >= v.
func (s *suite) atLeast(v string) bool {
	return versionAtLeast(s.net.list.CNIVersion, v)
}

func joinErrs(errs []error) string {
	var parts []string
	for _, e := range errs {
		parts = append(parts, e.Error())
	}
	return strings.Join(parts, "; ")
}

func dedupe(in []string) []string {
	set := map[string]bool{}
	for _, s := range in {
		set[filepath.Clean(s)] = true
	}
	return sortedKeys(set)
}
