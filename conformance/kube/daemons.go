package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/vmcni/vmcni/internal/testutil"
	"github.com/vmcni/vmcni/sriov/sriovsim"
)

// PauseImage is the pod sandbox image, built locally (see Images).
const PauseImage = "localhost/vmcni/pause:test"

// installCNI puts Multus and the reference plugins the default network
// needs into CNIBinDir, with vm-sriov-sim (vm-sriov on the simulated PF:
// this node has no SR-IOV; the DaemonSet installs the real vm-sriov), and
// Multus's configuration into containerd's private conf dir.
func (c *Cluster) installCNI(multus, plugins string) error {
	if err := os.MkdirAll(CNIBinDir, 0o755); err != nil {
		return err
	}
	for src, name := range map[string]string{
		multus: "multus", filepath.Join(plugins, "bridge"): "bridge",
		filepath.Join(plugins, "host-local"): "host-local", filepath.Join(plugins, "loopback"): "loopback",
		filepath.Join(plugins, sriovsim.PluginType): sriovsim.PluginType,
	} {
		if err := copyFile(src, filepath.Join(CNIBinDir, name)); err != nil {
			return fmt.Errorf("install %s: %w", name, err)
		}
	}
	confDir := filepath.Join(c.Dir, "net.d")
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		return err
	}
	multusKubeconfig := filepath.Join(c.Dir, "multus.kubeconfig")
	if err := c.pki.kubeconfig(multusKubeconfig, c.APIServer()); err != nil {
		return err
	}
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       "multus-cni-network",
		"type":       "multus",
		"kubeconfig": multusKubeconfig,
		"confDir":    MultusConfDir,
		"cniDir":     filepath.Join(c.Dir, "multus"),
		"binDir":     CNIBinDir,
		"logFile":    filepath.Join(c.Dir, "multus.log"),
		"logLevel":   "verbose",
		"delegates": []any{map[string]any{
			"cniVersion": "1.0.0",
			"name":       "vmct-cluster",
			"plugins": []any{map[string]any{
				"type": "bridge", "bridge": ClusterBridge, "isGateway": true, "hairpinMode": true,
				"ipam": map[string]any{
					"type":   "host-local",
					"ranges": [][]map[string]string{{{"subnet": PodCIDR}}},
					"routes": []map[string]string{{"dst": "0.0.0.0/0"}},
				},
			}},
		}},
	}
	data, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(confDir, "00-multus.conf"), data, 0o644)
}

func (c *Cluster) startContainerd(ctx context.Context) error {
	cfg := testutil.ContainerdConfig{Dir: filepath.Join(c.Dir, "containerd"), SandboxImage: PauseImage,
		CNIBinDir: CNIBinDir, CNIConfDir: filepath.Join(c.Dir, "net.d"), NetnsUnderState: true}
	c.ContainerdSock = cfg.Socket()
	cfgPath, err := cfg.Write()
	if err != nil {
		return err
	}
	if err = c.run("containerd", nil, "containerd", "--config", cfgPath); err != nil {
		return err
	}
	return c.waitFor(ctx, "containerd", 30*time.Second, func() error {
		if !c.procs["containerd"].running() {
			return fmt.Errorf("%w: containerd exited:\n%s", errStop, c.procs["containerd"].logTail(3000))
		}
		return exec.CommandContext(ctx, "ctr", "-a", c.ContainerdSock, "version").Run()
	})
}

// ImportImage imports an image archive into containerd's k8s.io namespace
// (where the kubelet looks), as a node without a registry gets its images.
func (c *Cluster) ImportImage(archive string) error {
	out, err := exec.Command("ctr", "-a", c.ContainerdSock, "-n", "k8s.io", "images", "import", archive).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ctr images import %s: %w: %s", archive, err, out)
	}
	return nil
}

func (c *Cluster) startKubelet() error {
	cfg := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://%s
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: %s}
authorization: {mode: AlwaysAllow}
failSwapOn: false
oomScoreAdj: 0
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
podLogsDir: %s
volumePluginDir: %s
evictionHard: {memory.available: "100Mi", nodefs.available: "1%%", imagefs.available: "1%%", nodefs.inodesFree: "1%%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
maxPods: 60
`, c.ContainerdSock, c.pki.caCert, filepath.Join(c.Dir, "pod-logs"), filepath.Join(c.Dir, "volume-plugins"))
	path := filepath.Join(c.Dir, "kubelet.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return err
	}
	return c.run("kubelet", nil, filepath.Join(c.Bin, "kubelet"),
		"--config", path, "--kubeconfig", c.Kubeconfig, "--root-dir", KubeletDir,
		"--hostname-override", NodeName, "--node-ip", c.NodeIP.String(), "--pod-infra-container-image", PauseImage, "--v", "2")
}

// RestartKubelet stops the kubelet and starts it again with the same
// configuration, as a node upgrade or a crash does (pods keep running), and
// waits for the node to be Ready again.
func (c *Cluster) RestartKubelet() error {
	p := c.procs["kubelet"]
	p.stop(20 * time.Second)
	np, err := startProcess("kubelet", filepath.Join(c.Dir, "logs"), nil, p.cmd.Path, p.cmd.Args[1:]...)
	if err != nil {
		return err
	}
	c.procs["kubelet"] = np
	ctx := context.Background()
	if err = c.waitHTTP(ctx, "kubelet", "http://127.0.0.1:10248/healthz", false, 60*time.Second); err != nil {
		return err
	}
	return c.waitNodeReady(ctx)
}
