package kube_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vmcni/vmcni/conformance/kube"
	"github.com/vmcni/vmcni/conformance/kube/deviceplugin"
	"github.com/vmcni/vmcni/pkg/hint"
	"github.com/vmcni/vmcni/sriov/sriovsim"
)

// sriovResource is the extended resource the test's device plugin
// advertises.
const sriovResource = "vmcni.io/sriov_vf"

// testSRIOV runs the SR-IOV path as it runs on a real node: a device
// plugin (the kubelet's gRPC API) advertises the VFs of the simulated PCI
// tree, the kubelet allocates one to a pod that requests the resource,
// Multus reads the allocation from the kubelet's pod-resources API and
// passes it to vm-sriov as deviceID. Per mode: the pod gets the VF the
// kubelet allocated (vfio: bound to vfio-pci, in the hint and Multus's
// device-info; netdev: net1 in the pod), and deleting the pod puts the
// simulated host back as it was.
func (e *env) testSRIOV(t *testing.T) {
	e = e.in(t)
	const vfs = 4
	k := sriovsim.Start(t, sriovsim.Options{VFs: vfs})
	simBefore := k.State()
	devices := make([]string, vfs)
	for i := range devices {
		devices[i] = sriovsim.VFAddr(i)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dp, err := deviceplugin.Start(ctx, deviceplugin.Options{ResourceName: sriovResource, Devices: devices,
		KubeletDir: kube.KubeletDir + "/device-plugins"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = dp.Stop() }()
	jsonpath := fmt.Sprintf("jsonpath={.status.allocatable.%s}", strings.ReplaceAll(sriovResource, ".", `\.`))
	var alloc string
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline) && alloc != fmt.Sprint(vfs); time.Sleep(500 * time.Millisecond) {
		alloc, _ = e.c.Kubectl("get", "node", kube.NodeName, "-o", jsonpath)
	}
	if alloc != fmt.Sprint(vfs) {
		t.Fatalf("node allocatable %s = %q, want %d", sriovResource, alloc, vfs)
	}
	for i, mode := range []string{"vfio", "netdev"} {
		t.Run(mode, func(t *testing.T) {
			e := e.in(t) //nolint:govet // the subtest's env on purpose
			nad := "vmct-sriov-" + mode
			conf := map[string]any{
				"cniVersion": "1.1.0", "name": nad, "type": sriovsim.PluginType, "mode": mode,
				"sysfsRoot":    k.Root, // the simulated PCI tree; on a real node: omitted ("/")
				"capabilities": map[string]bool{"deviceID": true, "CNIDeviceInfoFile": true},
				"ipam": map[string]any{"type": "host-local",
					"ranges": [][]map[string]string{{{"subnet": fmt.Sprintf("10.253.%d.0/24", i)}}}},
			}
			data, _ := json.Marshal(conf)
			e.create(map[string]any{
				"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
				"metadata": map[string]any{"name": nad, "namespace": "default",
					"annotations": map[string]string{"k8s.v1.cni.cncf.io/resourceName": sriovResource}},
				"spec": map[string]any{"config": string(data)},
			})
			name := "vmct-sriov-" + mode
			pod := toolsPod(name, nad)
			pod["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)["resources"] =
				map[string]any{"limits": map[string]string{sriovResource: "1"}}
			e.create(pod)
			e.waitReady(name, 90*time.Second)
			allocs := dp.Allocations()
			if len(allocs) == 0 || len(allocs[len(allocs)-1]) != 1 {
				t.Fatalf("device plugin allocations %v", allocs)
			}
			vf := allocs[len(allocs)-1][0]
			env, _ := e.exec(name, "sh", "-c", "echo $"+deviceplugin.EnvName(sriovResource))
			if strings.TrimSpace(env) != vf {
				t.Errorf("container's %s = %q, want the allocated %s", deviceplugin.EnvName(sriovResource), env, vf)
			}
			st := e.secondaryStatus(e.getPod(name), "default/"+nad)
			if mode == "vfio" {
				if st.DeviceInfo == nil || st.DeviceInfo.Type != "pci" || st.DeviceInfo.PCI.PCIAddress != vf {
					t.Errorf("net1 device-info %+v, want pci %s", st.DeviceInfo, vf)
				}
				h := e.hintFor(st.IPs[0])
				if h.Kind != hint.KindVFIO || h.VFIO == nil || h.VFIO.PCIAddress != vf {
					t.Errorf("hint kind %s vfio %+v, want %s", h.Kind, h.VFIO, vf)
				}
				if !strings.Contains(k.State(), vf) {
					t.Errorf("simulated host does not mention %s:\n%s", vf, k.State())
				}
			} else if links, err := e.exec(name, "ip", "-o", "link", "show", "net1"); err != nil {
				t.Errorf("no net1 in the pod: %v\n%s", err, links)
			}
			t.Logf("%s: kubelet allocated %s, Multus passed it to vm-sriov (%s)", mode, vf, st.IPs)
			e.deletePods(name)
			if mode == "netdev" {
				k.WaitNetdev(vf)
			}
			k.AssertState(t, simBefore)
		})
	}
}
