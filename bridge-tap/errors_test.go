package bridgetap_test

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/vmcni/vmcni/internal/testutil"
)

// execPlugin runs the vm-bridge binary with raw env and stdin, as a runtime
// would, and returns stdout and the exit error.
func execPlugin(t *testing.T, bin string, env []string, stdin []byte) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, "vm-bridge"))
	cmd.Env = append([]string{"CNI_PATH=" + bin}, env...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	err := cmd.Run()
	return stdout.Bytes(), err
}

// TestBadInput: every kind of bad input gets the right CNI error code on
// stdout, a non-zero exit, and no side effect.
func TestBadInput(t *testing.T) {
	e := newEnv(t)
	ns := testutil.NewNS(t)
	good := func(mut func(map[string]any)) []byte {
		c := e.vmBridge("tcfilter", nil)
		c["cniVersion"], c["name"] = "1.1.0", "vmct-bad"
		mut(c)
		data, _ := json.Marshal(c)
		return data
	}
	env := func(ifName string) []string {
		return []string{"CNI_COMMAND=ADD", "CNI_CONTAINERID=bad1", "CNI_NETNS=" + ns.Path, "CNI_IFNAME=" + ifName}
	}
	tests := []struct {
		name  string
		env   []string
		stdin []byte
		code  uint
	}{
		{"unknown mode", env("eth0"), good(func(c map[string]any) { c["mode"] = "vdpa" }), 7},
		{"bad mac", env("eth0"), good(func(c map[string]any) { c["mac"] = "zz:00:00:00:00:01" }), 7},
		{"multicast mac", env("eth0"), good(func(c map[string]any) { c["mac"] = "01:00:5e:00:00:01" }), 7},
		{"bad mtu", env("eth0"), good(func(c map[string]any) { c["mtu"] = 20 }), 7},
		{"bad queues", env("eth0"), good(func(c map[string]any) { c["queues"] = 0 }), 7},
		{"bad bridge name", env("eth0"), good(func(c map[string]any) { c["bridge"] = "a/b" }), 7},
		{"long bridge name", env("eth0"), good(func(c map[string]any) { c["bridge"] = "this-is-too-long-0" }), 7},
		{"no ipam standalone", env("eth0"), good(func(c map[string]any) { delete(c, "ipam") }), 7},
		{"relative state dir", env("eth0"), good(func(c map[string]any) { c["stateDir"] = "state" }), 7},
		{"bad log level", env("eth0"), good(func(c map[string]any) { c["logLevel"] = "loud" }), 7},
		{"ifname over 15 bytes", env("eth0123456789abc"), good(func(map[string]any) {}), 4},
		{"ifname with slash", env("et/h0"), good(func(map[string]any) {}), 4},
		{"bad json", env("eth0"), []byte(`{"cniVersion":"1.1.0",`), 6},
		{"unsupported version", env("eth0"), good(func(c map[string]any) { c["cniVersion"] = "0.3.1" }), 1},
		{"unknown version", env("eth0"), good(func(c map[string]any) { c["cniVersion"] = "9.9.9" }), 1},
		{"missing netns", []string{"CNI_COMMAND=ADD", "CNI_CONTAINERID=bad1", "CNI_IFNAME=eth0"}, good(func(map[string]any) {}), 4},
		{"netns not a netns", []string{"CNI_COMMAND=ADD", "CNI_CONTAINERID=bad1", "CNI_NETNS=/tmp", "CNI_IFNAME=eth0"}, good(func(map[string]any) {}), 4},
		{"bad CNI_ARGS", append(env("eth0"), "CNI_ARGS=MAC"), good(func(map[string]any) {}), 4},
		{"bad MAC in CNI_ARGS", append(env("eth0"), "CNI_ARGS=IgnoreUnknown=1;MAC=nope"), good(func(map[string]any) {}), 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, err := execPlugin(t, e.bin, tt.env, tt.stdin)
			if err == nil {
				t.Fatalf("plugin succeeded: %s", stdout)
			}
			var cniErr types.Error
			if jerr := json.Unmarshal(stdout, &cniErr); jerr != nil {
				t.Fatalf("stdout is not a CNI error: %q", stdout)
			}
			if cniErr.Code != tt.code || cniErr.Msg == "" {
				t.Fatalf("code %d msg %q, want code %d", cniErr.Code, cniErr.Msg, tt.code)
			}
		})
	}
	e.assertClean()
}
