package testutil

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ContainerdConfig describes a private containerd 1.6 that shares nothing
// with the host's: its root, state, opt directory, gRPC and ttrpc sockets
// and runc root all live under Dir. TOML renders its config.toml; every
// test and harness that runs a private containerd renders it here.
//
// With the CRI plugin (the default) the config sets restrict_oom_score_adj
// (so it runs inside a container or a test with a raised oom_score_adj),
// an overlayfs snapshotter, the runc v2 runtime with cgroupfs
// (SystemdCgroup = false) and a streaming server on 127.0.0.1 with a random
// port; CRI loads one CNI network (max_conf_num = 1).
type ContainerdConfig struct {
	// Dir (required) holds everything the daemon writes: root/, state/,
	// opt/, runc/, containerd.sock and containerd.sock.ttrpc. Keep it short:
	// the socket path must fit a sockaddr_un (107 bytes).
	Dir string
	// SandboxImage (optional) is CRI's sandbox ("pause") image, a fully
	// qualified ref; defaults to containerd's own (registry.k8s.io/pause).
	SandboxImage string
	// CNIBinDir (optional) is where CRI looks for CNI plugins; defaults to
	// containerd's /opt/cni/bin.
	CNIBinDir string
	// CNIConfDir (optional) is where CRI reads CNI configurations; defaults
	// to containerd's /etc/cni/net.d.
	CNIConfDir string
	// NetnsUnderState (optional) makes CRI mount pod network namespaces
	// under Dir/state instead of /var/run/netns; defaults to false.
	NetnsUnderState bool
	// NoCRI (optional) disables the CRI plugin (an images-only containerd
	// for ctr), and with it every CRI setting above; defaults to false.
	NoCRI bool
}

// Socket returns the daemon's gRPC socket, Dir/containerd.sock: the
// address for "ctr -a", crictl's runtime endpoint and the kubelet's.
func (c ContainerdConfig) Socket() string { return filepath.Join(c.Dir, "containerd.sock") }

// State returns the daemon's state directory, Dir/state (task bundles and,
// with NetnsUnderState, pod network namespaces).
func (c ContainerdConfig) State() string { return filepath.Join(c.Dir, "state") }

// Path returns where Write puts the config, Dir/config.toml.
func (c ContainerdConfig) Path() string { return filepath.Join(c.Dir, "config.toml") }

// TOML renders the config.toml (version 2) of the described daemon.
func (c ContainerdConfig) TOML() string {
	var b strings.Builder
	fmt.Fprintf(&b, "version = 2\nroot = %q\nstate = %q\n", filepath.Join(c.Dir, "root"), c.State())
	if c.NoCRI {
		b.WriteString("disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n")
	}
	fmt.Fprintf(&b, `
[grpc]
  address = %q

[ttrpc]
  address = %q

[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, c.Socket(), c.Socket()+".ttrpc", filepath.Join(c.Dir, "opt"))
	if c.NoCRI {
		return b.String()
	}
	b.WriteString("\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  restrict_oom_score_adj = true\n")
	if c.SandboxImage != "" {
		fmt.Fprintf(&b, "  sandbox_image = %q\n", c.SandboxImage)
	}
	if c.NetnsUnderState {
		b.WriteString("  netns_mounts_under_state_dir = true\n")
	}
	fmt.Fprintf(&b, `  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = %q
  [plugins."io.containerd.grpc.v1.cri".cni]
`, filepath.Join(c.Dir, "runc"))
	if c.CNIBinDir != "" {
		fmt.Fprintf(&b, "    bin_dir = %q\n", c.CNIBinDir)
	}
	if c.CNIConfDir != "" {
		fmt.Fprintf(&b, "    conf_dir = %q\n", c.CNIConfDir)
	}
	b.WriteString("    max_conf_num = 1\n")
	return b.String()
}

// Write creates Dir (0755) and writes TOML to Path, for
// "containerd --config <Path>"; it returns Path.
func (c ContainerdConfig) Write() (string, error) {
	if c.Dir == "" {
		return "", fmt.Errorf("containerd config: Dir is required")
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return "", fmt.Errorf("containerd config: %w", err)
	}
	if err := os.WriteFile(c.Path(), []byte(c.TOML()), 0o644); err != nil {
		return "", fmt.Errorf("containerd config: %w", err)
	}
	return c.Path(), nil
}
