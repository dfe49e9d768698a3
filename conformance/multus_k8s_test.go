package conformance_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vmcni/vmcni/internal/testutil"
	"github.com/vmcni/vmcni/pkg/hint"
	"github.com/vmcni/vmcni/sriov/sriovsim"
)

// kubeletDir is the kubelet's root; Multus reads device allocations from
// the device-plugin checkpoint under it when the pod-resources socket is
// absent.
const kubeletDir = "/var/lib/kubelet"

// writeKubeletCheckpoint writes the kubelet's device-plugin checkpoint
// allocating devs of resource to container "vm" of pod podUID. It skips the
// test on a host with a kubelet directory, and removes what it created.
func writeKubeletCheckpoint(t *testing.T, podUID, resource string, devs ...string) {
	t.Helper()
	if _, err := os.Stat(kubeletDir); err == nil {
		t.Skipf("%s exists (a kubelet's host): not writing its device-plugin checkpoint", kubeletDir)
	} else if !os.IsNotExist(err) {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(kubeletDir) })
	dir := filepath.Join(kubeletDir, "device-plugins")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	data := mustJSON(map[string]any{
		"Data": map[string]any{
			"PodDeviceEntries": []map[string]any{{
				"PodUID": podUID, "ContainerName": "vm", "ResourceName": resource,
				"DeviceIDs": map[string][]string{"0": devs},
			}},
			"RegisteredDevices": map[string][]string{resource: devs},
		},
		"Checksum": 0,
	})
	if err := os.WriteFile(filepath.Join(dir, "kubelet_internal_checkpoint"), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestMultusKubernetesDeviceID: the SR-IOV path of a Kubernetes pod through
// the real Multus thin plugin with a kubeconfig, against a fake API server
// (no Kubernetes here). The pod's networks annotation names a
// NetworkAttachmentDefinition (a vm-sriov vfio conf) whose resourceName
// annotation names a device-plugin resource; Multus finds the pod's VF in
// the kubelet's device-plugin checkpoint, hands it to vm-sriov on net1 as
// deviceID with the CNIDeviceInfoFile path it derives, reads the NPWG
// device-info back and writes it into the pod's network-status annotation.
// The default network (eth0) is the conf's vm-bridge delegate. DEL leaves
// the host, the simulated host and the device-info directory as they were.
func TestMultusKubernetesDeviceID(t *testing.T) {
	e := newEnv(t)
	const (
		ns, podName, podUID = "vmct-ns", "vmct-pod", "6f1c2d3e-4a5b-4c6d-8e7f-0a1b2c3d4e5f"
		nadName, resource   = "vmct-sriov", "intel.com/vmct_vfio"
		cid                 = "multusk8s"
	)
	vf := sriovsim.VFAddr(2)
	writeKubeletCheckpoint(t, podUID, resource, vf)
	k := sriovsim.Start(t, sriovsim.Options{VFs: 3})
	if _, err := os.Stat(multusDevInfoDir); os.IsNotExist(err) {
		t.Cleanup(func() { _ = os.RemoveAll(filepath.Dir(filepath.Dir(multusDevInfoDir))) })
	}
	nadConf := mustJSON(map[string]any{
		"cniVersion": "1.0.0", "name": nadName, "type": sriovsim.PluginType, "mode": "vfio", "sysfsRoot": k.Root,
		"stateDir": e.stateDir, "bindTimeout": "3s",
		"capabilities": map[string]bool{"deviceID": true, "CNIDeviceInfoFile": true},
	})
	api := startFakeKube(t, ns, podName, podUID, map[string]string{"k8s.v1.cni.cncf.io/networks": nadName},
		nadName, map[string]string{"k8s.v1.cni.cncf.io/resourceName": resource}, nadConf)

	binDir, data := multusNetwork(t, e, nil, delegate("vmct-mvm", e.vmBridge("tcfilter")))
	data = withMultusKubeconfig(t, data, api.Kubeconfig(t))
	cni := testutil.NewCNI(t, binDir, data)
	dirs := []string{e.stateDir, e.ipamDir, multusDevInfoDir}
	before, simBefore := testutil.TakeSnapshot(t, dirs, e.bridge), k.State()
	netns := testutil.NewNS(t)
	rt := testutil.Runtime(cid, netns.Path, "eth0")
	rt.Args = [][2]string{
		{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", ns}, {"K8S_POD_NAME", podName},
		{"K8S_POD_INFRA_CONTAINER_ID", cid}, {"K8S_POD_UID", podUID},
	}
	if _, err := cni.Add(rt); err != nil {
		t.Fatalf("ADD through Multus: %v (API requests %q)", err, api.Requests())
	}
	if d := k.Driver(vf); d != sriovsim.VFIODriver {
		t.Fatalf("VF %s is bound to %q, want %s", vf, d, sriovsim.VFIODriver)
	}
	h, err := hint.Read(e.stateDir, cid, "net1")
	if err != nil || h.Kind != hint.KindVFIO || h.VFIO.PCIAddress != vf {
		t.Fatalf("vm-sriov hint on net1: %+v %v", h, err)
	}
	// Multus names the file after the delegate, "<namespace>/<NAD>", with
	// "/" replaced by "-".
	info := filepath.Join(multusDevInfoDir, ns+"-"+nadName+"-"+cid+"_net1")
	raw, err := os.ReadFile(info)
	if err != nil {
		t.Fatalf("NPWG device-info file at the path Multus gave: %v", err)
	}
	var di hint.DeviceInfo
	if err := json.Unmarshal(raw, &di); err != nil || di.Type != "pci" || di.PCI == nil || di.PCI.PCIAddress != vf {
		t.Fatalf("device-info %s: %s (%v)", info, raw, err)
	}
	assertNetworkStatus(t, api, ns+"/"+nadName, vf)
	if err := cni.Check(rt); err != nil {
		t.Fatalf("CHECK through Multus: %v", err)
	}
	if err := cni.Del(rt); err != nil {
		t.Fatalf("DEL through Multus: %v", err)
	}
	testutil.AssertSameHost(t, before, dirs, e.bridge)
	k.AssertState(t, simBefore)

	if u := api.Unexpected(); len(u) > 0 {
		t.Errorf("Multus made requests the fake API server does not serve: %q", u)
	}
	// Events go out asynchronously and may or may not leave before Multus
	// exits; the rest is the exact sequence.
	podPath := "/api/v1/namespaces/" + ns + "/pods/" + podName
	want := []string{
		"GET " + podPath, // ADD: the pod (UID check, networks annotation)
		"GET /apis/k8s.cni.cncf.io/v1/namespaces/" + ns + "/network-attachment-definitions/" + nadName,
		// ADD: the network-status annotation (Multus re-reads the pod, then
		// client-go's conflict-retry loop reads it and updates its status).
		"GET " + podPath, "GET " + podPath, "PUT " + podPath + "/status",
		"GET " + podPath, // DEL: the pod
	}
	got := slices.DeleteFunc(api.Requests(), func(r string) bool { return strings.HasSuffix(r, "/events") })
	if !slices.Equal(got, want) {
		t.Errorf("API requests (without events):\n got %q\nwant %q", got, want)
	}
	t.Logf("API requests: %q", api.Requests())
}

// withMultusKubeconfig sets kubeconfig in the Multus conf of conflist.
func withMultusKubeconfig(t *testing.T, conflist []byte, kubeconfig string) []byte {
	t.Helper()
	var list map[string]any
	if err := json.Unmarshal(conflist, &list); err != nil {
		t.Fatal(err)
	}
	plugins := list["plugins"].([]any)
	plugins[0].(map[string]any)["kubeconfig"] = kubeconfig
	return mustJSON(list)
}

// assertNetworkStatus checks the network-status annotation of the fake
// API's last pod status update: the default network (eth0) and network
// name with the PCI device-info of vf.
func assertNetworkStatus(t *testing.T, api *fakeKube, network, vf string) {
	t.Helper()
	updates, err := api.StatusAnnotations()
	if err != nil || len(updates) == 0 {
		t.Fatalf("pod status updates: %d (%v)", len(updates), err)
	}
	raw := updates[len(updates)-1]["k8s.v1.cni.cncf.io/network-status"]
	var statuses []struct {
		Name       string           `json:"name"`
		Interface  string           `json:"interface"`
		Default    bool             `json:"default"`
		DeviceInfo *hint.DeviceInfo `json:"device-info"`
	}
	if err := json.Unmarshal([]byte(raw), &statuses); err != nil {
		t.Fatalf("network-status annotation %q: %v", raw, err)
	}
	var dflt, dev bool
	for _, s := range statuses {
		switch {
		case s.Default && s.Interface == "eth0":
			dflt = true
		case s.Name == network && s.DeviceInfo != nil && s.DeviceInfo.Type == "pci" &&
			s.DeviceInfo.PCI != nil && s.DeviceInfo.PCI.PCIAddress == vf:
			dev = true
		}
	}
	if !dflt || !dev {
		t.Fatalf("network-status annotation lacks the default eth0 (%v) or %s with device-info %s (%v):\n%s",
			dflt, network, vf, dev, raw)
	}
	t.Logf("network-status annotation: %s", raw)
}
