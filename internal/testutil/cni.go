package testutil

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	conflistpkg "github.com/vmcni/vmcni/internal/conflist"
)

// CNI drives real plugin binaries through libcni, as container runtimes do.
type CNI struct {
	Config *libcni.CNIConfig
	List   *libcni.NetworkConfigList
}

// NewCNI parses conflist and prepares libcni with binDir as CNI_PATH and a
// private result cache.
func NewCNI(t testing.TB, binDir string, conflist []byte) *CNI {
	t.Helper()
	list, err := conflistpkg.Parse(conflist)
	if err != nil {
		t.Fatalf("parse conflist: %v\n%s", err, conflist)
	}
	return &CNI{Config: libcni.NewCNIConfigWithCacheDir([]string{binDir}, t.TempDir(), nil), List: list}
}

// Runtime returns the runtime config of an attachment.
func Runtime(containerID, netnsPath, ifName string) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: containerID, NetNS: netnsPath, IfName: ifName}
}

// Add runs ADD and returns the result as 1.1.0.
func (c *CNI) Add(rt *libcni.RuntimeConf) (*current.Result, error) {
	res, err := c.Config.AddNetworkList(context.Background(), c.List, rt)
	if err != nil {
		return nil, err
	}
	return current.NewResultFromResult(res)
}

// RawAdd runs ADD and returns the result in the config's version.
func (c *CNI) RawAdd(rt *libcni.RuntimeConf) (types.Result, error) {
	return c.Config.AddNetworkList(context.Background(), c.List, rt)
}

// Check runs CHECK.
func (c *CNI) Check(rt *libcni.RuntimeConf) error {
	return c.Config.CheckNetworkList(context.Background(), c.List, rt)
}

// Del runs DEL.
func (c *CNI) Del(rt *libcni.RuntimeConf) error {
	return c.Config.DelNetworkList(context.Background(), c.List, rt)
}

// GC runs GC keeping the given attachments.
func (c *CNI) GC(valid ...*libcni.RuntimeConf) error {
	args := &libcni.GCArgs{}
	for _, rt := range valid {
		args.ValidAttachments = append(args.ValidAttachments, types.GCAttachment{ContainerID: rt.ContainerID, IfName: rt.IfName})
	}
	return c.Config.GCNetworkList(context.Background(), c.List, args)
}

// Status runs STATUS.
func (c *CNI) Status() error {
	return c.Config.GetStatusNetworkList(context.Background(), c.List)
}

// PluginStdin is the config libcni writes on the stdin of the list's
// plugin i when it is first in the chain: the plugin's own config with the
// list's name and cniVersion (no prevResult, no runtimeConfig).
func (c *CNI) PluginStdin(t testing.TB, i int) []byte {
	t.Helper()
	var conf map[string]any
	if err := json.Unmarshal(c.List.Plugins[i].Bytes, &conf); err != nil {
		t.Fatal(err)
	}
	conf["name"], conf["cniVersion"] = c.List.Name, c.List.CNIVersion
	data, err := json.Marshal(conf)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
