package launcher

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmcni/vmcni/pkg/hint"
	"github.com/vmcni/vmcni/vmnet"
)

// vhostUserPlan is a one-NIC plan that needs no descriptor.
func vhostUserPlan(t *testing.T) *vmnet.Plan {
	t.Helper()
	p, err := vmnet.PlanFromNetworkStatus([]vmnet.NetworkStatus{{
		Name: "nfv", Interface: "sock", IPs: []string{"10.0.0.5"}, MAC: "02:00:00:00:00:05", Gateway: []string{"10.0.0.1"},
		DeviceInfo: &hint.DeviceInfo{Type: "vhost-user", VhostUser: &hint.DeviceInfoVhostUser{Mode: "server", Path: "/run/s/sock"}},
	}}, vmnet.NetworkStatusOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestProbeCmdline: the gateway, Probes, ProbeTCP and ProbeTCPs become the
// guest's comma-separated lists, in that order; ProbeWait is rounded up to
// whole seconds.
func TestProbeCmdline(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		want    []string
		markers []string
	}{
		{"none", Options{}, nil, nil},
		{"gateway only", Options{ProbeGateway: true}, []string{"vmcni.probe=10.0.0.1"}, []string{"VMCNI-PROBE-"}},
		{"all", Options{
			ProbeGateway: true, Probes: []string{"10.0.0.9", "fd00::9"},
			ProbeTCP: "10.0.0.1:80", ProbeTCPs: []string{"[fd00::9]:8080"}, ProbeWait: 1500 * time.Millisecond,
		}, []string{"vmcni.probe=10.0.0.1,10.0.0.9,fd00::9", "vmcni.probetcp=10.0.0.1:80,[fd00::9]:8080", "vmcni.probe_wait=2"},
			[]string{"VMCNI-PROBE-", "VMCNI-PROBETCP-"}},
		{"tcp only", Options{ProbeTCPs: []string{"10.0.0.1:80"}}, []string{"vmcni.probetcp=10.0.0.1:80"}, []string{"VMCNI-PROBETCP-"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.opts
			o.Plan, o.Kernel, o.Initrd = vhostUserPlan(t), "vmlinux", "initrd"
			o.setDefaults()
			if err := o.validate(); err != nil {
				t.Fatal(err)
			}
			s := &Session{opts: o, Plan: o.Plan}
			args, err := s.qemuArgs(make([][]int, 1), "tcg")
			if err != nil {
				t.Fatal(err)
			}
			i := slices.Index(args, "-append")
			var got []string
			for _, p := range strings.Fields(args[i+1]) {
				if strings.HasPrefix(p, "vmcni.probe") {
					got = append(got, p)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("probe parameters %q, want %q", got, tt.want)
			}
			if m := s.ProbeMarkers(); !slices.Equal(m, tt.markers) {
				t.Errorf("markers %q, want %q", m, tt.markers)
			}
		})
	}
}

// TestOptionsValidate rejects what would break the guest command line.
func TestOptionsValidate(t *testing.T) {
	plan := &vmnet.Plan{}
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no plan, no conflist", Options{}, "neither a plan nor a conflist"},
		{"probe not an IP", Options{Plan: plan, Probes: []string{"gw"}}, `probe "gw" is not an IP`},
		{"probe list in one", Options{Plan: plan, Probes: []string{"10.0.0.1,10.0.0.2"}}, "is not an IP"},
		{"tcp probe without port", Options{Plan: plan, ProbeTCPs: []string{"10.0.0.1"}}, "is not host:port"},
		{"tcp probe empty port", Options{Plan: plan, ProbeTCP: "10.0.0.1:"}, "is not host:port"},
		{"tcp probe with a comma", Options{Plan: plan, ProbeTCPs: []string{"a,b:80"}}, "is not host:port"},
		{"negative wait", Options{Plan: plan, ProbeWait: -time.Second}, "negative probe wait"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want one containing %q", err, tt.want)
			}
		})
	}
	if err := (&Options{Conflist: []byte("{}"), ProbeTCP: "[fd00::1]:80"}).validate(); err != nil {
		t.Fatalf("valid options: %v", err)
	}
}

// TestOpenCharDev opens /dev/null (1:3) through its path, through a private
// node when the path is missing, and through /dev when the temporary
// directory is unusable.
func TestOpenCharDev(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: mknod needs root")
	}
	check := func(fds []int, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if len(fds) != 2 {
			t.Fatalf("%d descriptors, want 2", len(fds))
		}
		for _, fd := range fds {
			var st unix.Stat_t
			if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != 1 || unix.Minor(st.Rdev) != 3 {
				t.Fatalf("fd %d is not /dev/null: %+v %v", fd, st, err)
			}
			if flags, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); flags&unix.FD_CLOEXEC == 0 {
				t.Fatalf("fd %d is not close-on-exec", fd)
			}
			unix.Close(fd)
		}
	}
	check(openCharDev("/dev/null", 1, 3, 2))
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	check(openCharDev(filepath.Join(tmp, "missing"), 1, 3, 2))
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Fatalf("private node left behind in %s: %v", tmp, left)
	}
	t.Setenv("TMPDIR", filepath.Join(tmp, "gone"))
	check(openCharDev("", 1, 3, 2))
	if _, err := openCharDev("", 1, 3, 0); err != nil {
		t.Fatalf("zero opens: %v", err)
	}
}
