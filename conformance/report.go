package conformance

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// Status is the outcome of one check.
type Status string

// Check outcomes.
const (
	Pass Status = "pass"
	Fail Status = "fail"
	// Skip means the check does not apply to this network (for example the
	// VM hint checks on a plugin that reports no VM device, or GC below
	// cniVersion 1.1.0), or the caller declared it not applicable.
	Skip Status = "skip"
)

// CheckResult is the outcome of one check.
type CheckResult struct {
	// Name is the check's identifier (see Checks).
	Name string `json:"name"`
	// Status is pass, fail or skip.
	Status Status `json:"status"`
	// Reason says why the check failed or was skipped, or what passed.
	Reason string `json:"reason,omitempty"`
	// Details holds extra lines: host diffs, offending stdout, per-version
	// outcomes.
	Details []string `json:"details,omitempty"`
	// Duration is how long the check took.
	Duration time.Duration `json:"durationNs"`
}

// Report is the outcome of one run of the suite.
type Report struct {
	// Network is the conflist's name, CNIVersion its cniVersion.
	Network    string `json:"network"`
	CNIVersion string `json:"cniVersion"`
	// Plugins are the conflist's plugin types, in order.
	Plugins []string `json:"plugins"`
	// Versions are the cniVersions every plugin of the list supports.
	Versions []string `json:"supportedVersions,omitempty"`
	// Started is when the run began.
	Started time.Time `json:"started"`
	// Checks are the outcomes, in the order they ran.
	Checks []CheckResult `json:"checks"`
}

// Passed reports whether no check failed.
func (r *Report) Passed() bool { return len(r.Failed()) == 0 }

// Failed returns the failed checks.
func (r *Report) Failed() []CheckResult {
	var out []CheckResult
	for _, c := range r.Checks {
		if c.Status == Fail {
			out = append(out, c)
		}
	}
	return out
}

// Check returns the result of the named check, if it ran.
func (r *Report) Check(name string) (CheckResult, bool) {
	for _, c := range r.Checks {
		if c.Name == name {
			return c, true
		}
	}
	return CheckResult{}, false
}

// JSON returns the report as indented JSON.
func (r *Report) JSON() ([]byte, error) {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode report: %w", err)
	}
	return append(data, '\n'), nil
}

// WriteText writes a readable report: one line per check, reasons and
// details indented below, and a summary.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "CNI conformance: network %q, cniVersion %s, plugins %s\n", r.Network, r.CNIVersion, strings.Join(r.Plugins, " -> "))
	if len(r.Versions) > 0 {
		fmt.Fprintf(&b, "supported versions (all plugins): %s\n", strings.Join(r.Versions, ", "))
	}
	b.WriteString("\n")
	counts := map[Status]int{}
	for _, c := range r.Checks {
		counts[c.Status]++
		fmt.Fprintf(&b, "%-4s  %-28s %s\n", strings.ToUpper(string(c.Status)), c.Name, c.Duration.Round(time.Millisecond))
		if c.Reason != "" {
			fmt.Fprintf(&b, "      %s\n", c.Reason)
		}
		for _, d := range c.Details {
			fmt.Fprintf(&b, "        %s\n", d)
		}
	}
	fmt.Fprintf(&b, "\n%d passed, %d failed, %d skipped\n", counts[Pass], counts[Fail], counts[Skip])
	_, err := io.WriteString(w, b.String())
	return err
}

// Text returns WriteText's output as a string.
func (r *Report) Text() string {
	var b strings.Builder
	_ = r.WriteText(&b)
	return b.String()
}
