package testutil

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestContainerdConfigParses has containerd itself read each rendered
// config ("containerd config dump" merges it into the defaults without
// starting anything) and checks the settings it took.
func TestContainerdConfigParses(t *testing.T) {
	if _, err := exec.LookPath("containerd"); err != nil {
		t.Skip("skipped: containerd not installed (apt-get install containerd)")
	}
	dir := t.TempDir()
	for name, tc := range map[string]struct {
		cfg       ContainerdConfig
		want, not []string
	}{
		"cri": {
			cfg: ContainerdConfig{Dir: filepath.Join(dir, "cri"), SandboxImage: "vmcni.test/pause:v1", CNIBinDir: "/x/bin", CNIConfDir: "/x/conf"},
			want: []string{
				`root = "` + dir + `/cri/root"`, `state = "` + dir + `/cri/state"`,
				`address = "` + dir + `/cri/containerd.sock"`, `address = "` + dir + `/cri/containerd.sock.ttrpc"`,
				`path = "` + dir + `/cri/opt"`, `Root = "` + dir + `/cri/runc"`,
				`sandbox_image = "vmcni.test/pause:v1"`, `restrict_oom_score_adj = true`,
				`netns_mounts_under_state_dir = false`, `SystemdCgroup = false`, `snapshotter = "overlayfs"`,
				`bin_dir = "/x/bin"`, `conf_dir = "/x/conf"`, `max_conf_num = 1`,
			},
			not: []string{`disabled_plugins = ["io.containerd.grpc.v1.cri"]`},
		},
		"netns under state": {
			cfg:  ContainerdConfig{Dir: filepath.Join(dir, "netns"), NetnsUnderState: true},
			want: []string{`netns_mounts_under_state_dir = true`, `bin_dir = "/opt/cni/bin"`, `conf_dir = "/etc/cni/net.d"`},
		},
		"no cri": {
			cfg:  ContainerdConfig{Dir: filepath.Join(dir, "nocri"), NoCRI: true, SandboxImage: "vmcni.test/pause:v1"},
			want: []string{`disabled_plugins = ["io.containerd.grpc.v1.cri"]`, `address = "` + dir + `/nocri/containerd.sock"`},
			not:  []string{`vmcni.test/pause:v1`},
		},
	} {
		t.Run(name, func(t *testing.T) {
			path, err := tc.cfg.Write()
			if err != nil {
				t.Fatal(err)
			}
			if path != filepath.Join(tc.cfg.Dir, "config.toml") {
				t.Errorf("Write wrote %s, want Dir/config.toml", path)
			}
			out, err := exec.Command("containerd", "--config", path, "config", "dump").CombinedOutput()
			if err != nil {
				t.Fatalf("containerd config dump: %v\n%s\nconfig:\n%s", err, out, tc.cfg.TOML())
			}
			lines := map[string]bool{}
			for _, l := range strings.Split(string(out), "\n") {
				lines[strings.TrimSpace(l)] = true
			}
			for _, w := range tc.want {
				if !lines[w] {
					t.Errorf("config dump lacks %s\nconfig:\n%s", w, tc.cfg.TOML())
				}
			}
			for _, n := range tc.not {
				if strings.Contains(string(out), n) {
					t.Errorf("config dump has %s\nconfig:\n%s", n, tc.cfg.TOML())
				}
			}
		})
	}
	if _, err := (ContainerdConfig{}).Write(); err == nil {
		t.Error("Write without Dir: no error")
	}
}
