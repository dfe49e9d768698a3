package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"

	"github.com/containernetworking/cni/libcni"

	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/netns"
)

// Env is where a benchmark run happens: the plugin binaries and a private
// work directory for state, IPAM leases and caches.
type Env struct {
	// BinDir holds vmcni's plugins and the reference plugins.
	BinDir string
	// WorkDir is private to the run.
	WorkDir string
	// N is the number of samples per control-plane scenario.
	N int
	// Log receives progress lines.
	Log func(format string, args ...any)
}

// Bridges used by the run; removed by Cleanup.
const (
	vmcniBridge = "vmcbench0"
	refBridge   = "vmcbenchr0"
)

// Cleanup removes the bridges the run created.
func (e *Env) Cleanup() {
	_ = link.DeleteByName(vmcniBridge)
	_ = link.DeleteByName(refBridge)
}

func (e *Env) cni() *libcni.CNIConfig {
	return libcni.NewCNIConfigWithCacheDir([]string{e.BinDir}, filepath.Join(e.WorkDir, "cache"), nil)
}

// network is one conflist attached under one ifname.
type network struct {
	list   *libcni.NetworkConfigList
	ifName string
}

func (e *Env) conflist(name string, plugins ...map[string]any) *libcni.NetworkConfigList {
	data, _ := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": name, "plugins": plugins})
	list, err := libcni.NetworkConfFromBytes(data)
	if err != nil {
		panic(fmt.Sprintf("bench conflist %s: %v", name, err))
	}
	return list
}

func (e *Env) hostLocal(subnet string) map[string]any {
	return map[string]any{
		"type": "host-local", "dataDir": filepath.Join(e.WorkDir, "ipam"),
		"ranges": [][]map[string]string{{{"subnet": subnet}}}, "routes": []map[string]string{{"dst": "0.0.0.0/0"}},
	}
}

func (e *Env) vmBridge(mode string) map[string]any {
	return map[string]any{
		"type": "vm-bridge", "mode": mode, "bridge": vmcniBridge, "isGateway": true,
		"stateDir": filepath.Join(e.WorkDir, "state"), "ipam": e.hostLocal("10.240.0.0/16"),
	}
}

func (e *Env) chainedVMBridge(mode string) map[string]any {
	return map[string]any{"type": "vm-bridge", "mode": mode, "stateDir": filepath.Join(e.WorkDir, "state")}
}

func (e *Env) refBridgePlugin() map[string]any {
	return map[string]any{"type": "bridge", "bridge": refBridge, "isGateway": true, "ipam": e.hostLocal("10.241.0.0/16")}
}

// pod is one network namespace with its attachments.
type pod struct {
	id   string
	ns   string
	name string
}

func newPod() (*pod, error) {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	id := "bench-" + hex.EncodeToString(b)
	name := "vmctb" + hex.EncodeToString(b[:5])
	path, err := netns.CreateNamed(name)
	if err != nil {
		return nil, err
	}
	return &pod{id: id, ns: path, name: name}, nil
}

func (p *pod) remove() { _ = netns.DeleteNamed(p.name) }

func (p *pod) runtime(ifName string) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: p.id, NetNS: p.ns, IfName: ifName}
}

func (e *Env) add(ctx context.Context, cni *libcni.CNIConfig, p *pod, nets []network) error {
	for _, n := range nets {
		if _, err := cni.AddNetworkList(ctx, n.list, p.runtime(n.ifName)); err != nil {
			return fmt.Errorf("ADD %s: %w", n.list.Name, err)
		}
	}
	return nil
}

func (e *Env) del(ctx context.Context, cni *libcni.CNIConfig, p *pod, nets []network) error {
	for i := len(nets) - 1; i >= 0; i-- {
		if err := cni.DelNetworkList(ctx, nets[i].list, p.runtime(nets[i].ifName)); err != nil {
			return fmt.Errorf("DEL %s: %w", nets[i].list.Name, err)
		}
	}
	return nil
}

func mustJSON(v any) []byte {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return data
}
