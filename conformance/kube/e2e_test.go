package kube_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmcni/vmcni/conformance/kube"
	"github.com/vmcni/vmcni/internal/testutil"
	"github.com/vmcni/vmcni/pkg/hint"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// TestKubernetes runs vmcni the way users do: a real node (kubelet,
// containerd, Multus), the DaemonSet and NetworkAttachmentDefinitions of
// deploy/ applied unmodified, pods and VM pods on them. One cluster for
// every subtest, in order; the node is compared with its state before the
// cluster started when it stops.
func TestKubernetes(t *testing.T) {
	testutil.RequiresRoot(t)
	root := testutil.ModuleRoot(t)
	guestDir := os.Getenv("VMCNI_GUEST_DIR")
	if guestDir == "" {
		guestDir = "/var/cache/vmcni/guest"
	}
	if !testutil.FileExists(filepath.Join(guestDir, "vmlinux")) {
		t.Skipf("skipped: no test guest in %s (make guest)", guestDir)
	}
	imgStart := time.Now()
	images, err := kube.BuildImages(root, t.TempDir(), guestDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("images built in %s", time.Since(imgStart).Round(time.Millisecond))
	c := kube.Start(t, kube.Options{Images: images.All()})
	e := &env{t: t, c: c, root: root}

	t.Run("DaemonSet", e.testDaemonSet)
	if t.Failed() {
		return
	}
	c.MustKubectl(t, "apply", "-f", filepath.Join(root, "deploy", "nad", "vm-bridge.yaml"))
	baseline := e.podState()
	t.Run("PodsOnEveryMode", e.testPodsOnEveryMode)
	t.Run("PodStartTime", e.testPodStartTime)
	t.Run("VMPods", e.testVMPods)
	t.Run("KubeletRestart", e.testKubeletRestart)
	t.Run("SRIOV", e.testSRIOV)
	t.Run("VhostUser", e.testVhostUser)
	t.Run("BadConfig", e.testBadConfig)
	e.assertPodState(baseline)
}

type env struct {
	t    *testing.T
	c    *kube.Cluster
	root string
}

// in returns the env for subtest t.
func (e *env) in(t *testing.T) *env { return &env{t: t, c: e.c, root: e.root} }

func (e *env) testDaemonSet(t *testing.T) {
	c := e.c
	start := time.Now()
	c.MustKubectl(t, "apply", "-f", filepath.Join(e.root, "deploy", "daemonset.yaml"))
	c.MustKubectl(t, "rollout", "status", "daemonset/vmcni", "-n", "kube-system", "--timeout=120s")
	t.Logf("DaemonSet rolled out in %s", time.Since(start).Round(time.Millisecond))
	for _, p := range []string{"vm-bridge", "vm-sriov", "vm-vhostuser", "vm-vpp"} {
		fi, err := os.Stat(filepath.Join(kube.CNIBinDir, p))
		if err != nil || fi.Mode()&0o111 == 0 {
			t.Errorf("%s not installed in %s: %v", p, kube.CNIBinDir, err)
		}
	}
	var cm struct {
		Data map[string]string `json:"data"`
	}
	if err := c.GetJSON(&cm, "configmap", "vmcni-conflists", "-n", "kube-system"); err != nil {
		t.Fatal(err)
	}
	for name, want := range cm.Data {
		got, err := os.ReadFile(filepath.Join(kube.MultusConfDir, name))
		if err != nil || string(got) != want {
			t.Errorf("%s in %s: %v (content equal: %v)", name, kube.MultusConfDir, err, string(got) == want)
		}
	}
}

// pod is the part of a Pod the tests read.
type pod struct {
	Metadata struct {
		Name        string            `json:"name"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
	Status struct {
		Phase  string `json:"phase"`
		PodIP  string `json:"podIP"`
		HostIP string `json:"hostIP"`
	} `json:"status"`
}

// networkStatus is one entry of Multus's network-status annotation.
type networkStatus struct {
	Name       string   `json:"name"`
	Interface  string   `json:"interface"`
	IPs        []string `json:"ips"`
	Mac        string   `json:"mac"`
	Default    bool     `json:"default"`
	DeviceInfo *struct {
		Type string `json:"type"`
		PCI  struct {
			PCIAddress string `json:"pci-address"`
		} `json:"pci"`
		VhostUser struct {
			Mode string `json:"mode"`
			Path string `json:"path"`
		} `json:"vhost-user"`
	} `json:"device-info"`
}

// toolsPod returns a busybox pod that sleeps, on the networks named.
func toolsPod(name, networks string) map[string]any {
	md := map[string]any{"name": name, "namespace": "default", "labels": map[string]string{"vmct": "1"}}
	if networks != "" {
		md["annotations"] = map[string]string{"k8s.v1.cni.cncf.io/networks": networks}
	}
	return map[string]any{
		"apiVersion": "v1", "kind": "Pod", "metadata": md,
		"spec": map[string]any{
			"terminationGracePeriodSeconds": 1,
			"containers": []any{map[string]any{
				"name": "tools", "image": kube.ToolsImage, "imagePullPolicy": "Never",
				"command": []string{"/bin/sleep", "3600"},
			}},
		},
	}
}

func (e *env) create(obj map[string]any) {
	e.t.Helper()
	data, err := json.Marshal(obj)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.c.KubectlIn(strings.NewReader(string(data)), "create", "-f", "-"); err != nil {
		e.t.Fatal(err)
	}
	kind := strings.ToLower(obj["kind"].(string))
	name := obj["metadata"].(map[string]any)["name"].(string)
	e.t.Cleanup(func() { // after a failure: the next subtest starts clean
		_, _ = e.c.Kubectl("delete", kind, name, "--ignore-not-found", "--wait=true", "--timeout=120s")
	})
}

func (e *env) waitReady(name string, timeout time.Duration) {
	e.t.Helper()
	if _, err := e.c.Kubectl("wait", "--for=condition=Ready", "pod/"+name, fmt.Sprintf("--timeout=%ds", int(timeout.Seconds()))); err != nil {
		events, _ := e.c.Kubectl("get", "events", "--field-selector", "involvedObject.name="+name)
		logs, _ := e.c.Kubectl("logs", name, "--all-containers")
		previous, _ := e.c.Kubectl("logs", name, "--all-containers", "--previous")
		e.t.Fatalf("pod %s not Ready: %v\nevents:\n%s\nlog:\n%s\nprevious log:\n%s", name, err, events, logs, previous)
	}
}

func (e *env) getPod(name string) pod {
	e.t.Helper()
	var p pod
	if err := e.c.GetJSON(&p, "pod", name); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// secondary returns the pod's network-status entry for interface ifname,
// which must have an IP.
func (e *env) secondary(p pod, ifname string) networkStatus {
	e.t.Helper()
	st := e.secondaryStatus(p, ifname)
	if len(st.IPs) == 0 {
		e.t.Fatalf("pod %s: %s has no IP: %+v", p.Metadata.Name, ifname, st)
	}
	return st
}

// secondaryStatus returns the pod's network-status entry for ifname (or
// for the network of that name: a VFIO device has no interface in the pod,
// Multus names the entry after the result's PCI pseudo-interface).
func (e *env) secondaryStatus(p pod, ifname string) networkStatus {
	e.t.Helper()
	var st []networkStatus
	if err := json.Unmarshal([]byte(p.Metadata.Annotations["k8s.v1.cni.cncf.io/network-status"]), &st); err != nil {
		e.t.Fatalf("pod %s network-status: %v", p.Metadata.Name, err)
	}
	for _, s := range st {
		if s.Interface == ifname || s.Name == ifname {
			return s
		}
	}
	e.t.Fatalf("pod %s: no %s in network-status %v", p.Metadata.Name, ifname, st)
	return networkStatus{}
}

// hintFor finds the hint file vm-bridge wrote for the attachment whose
// guest has ip.
func (e *env) hintFor(ip string) *hint.Hint {
	e.t.Helper()
	files, _ := filepath.Glob(filepath.Join(hint.DefaultStateDir, "*", "net1", "hint.json"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		h, err := hint.Decode(data)
		if err != nil {
			continue
		}
		for _, a := range h.Guest.IPs {
			if strings.HasPrefix(a.Address, ip+"/") {
				return h
			}
		}
	}
	e.t.Fatalf("no hint file for guest IP %s under %s (%d files)", ip, hint.DefaultStateDir, len(files))
	return nil
}

func (e *env) exec(name string, args ...string) (string, error) {
	return e.c.Kubectl(append([]string{"exec", name, "--"}, args...)...)
}

// httpGet fetches http://addr/ from inside a tools pod. busybox's nc, not
// its wget: Debian's static busybox 1.35 wget crashes (SIGSEGV) here.
func (e *env) httpGet(pod, addr string) (string, error) {
	host, port, _ := strings.Cut(addr, ":")
	return e.exec(pod, "sh", "-c", `printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 10 "$0" "$1"`, host, port)
}

func (e *env) deletePods(names ...string) {
	e.t.Helper()
	args := append([]string{"delete", "pod", "--wait=true", "--timeout=120s"}, names...)
	if _, err := e.c.Kubectl(args...); err != nil {
		e.t.Fatal(err)
	}
}

// testPodsOnEveryMode starts a pod on each vm-bridge NAD of deploy/nad
// and checks net1, the VM device and the hint file; a pod on the NAD with
// no spec.config gets the DaemonSet's conflist.
func (e *env) testPodsOnEveryMode(t *testing.T) {
	e = e.in(t)
	cases := []struct {
		nad, mode, device string
	}{
		{"vm-bridge-tcfilter", "tcfilter", "tap_net1"},
		{"vm-bridge-bridge", "bridge", "tap_net1"},
		{"vm-bridge-macvtap", "macvtap", "mvt_net1"},
		{"vmcni-tap", "tcfilter", "tap_net1"},
	}
	for _, tc := range cases {
		name := "vmct-" + tc.nad
		e.create(toolsPod(name, tc.nad))
	}
	for _, tc := range cases {
		name := "vmct-" + tc.nad
		e.waitReady(name, 90*time.Second)
		p := e.getPod(name)
		net1 := e.secondary(p, "net1")
		if len(net1.IPs) == 0 {
			t.Fatalf("%s: net1 has no IP: %+v", name, net1)
		}
		links, err := e.exec(name, "ip", "-o", "link")
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"net1", tc.device} {
			if !strings.Contains(links, " "+want+"@") && !strings.Contains(links, " "+want+":") {
				t.Errorf("%s: no %s in the pod netns:\n%s", name, want, links)
			}
		}
		h := e.hintFor(net1.IPs[0])
		if h.Plugin != "vm-bridge" || h.Network != tc.nad || h.IfName != "net1" {
			t.Errorf("%s: hint %s/%s/%s", name, h.Plugin, h.Network, h.IfName)
		}
		if tc.mode == "macvtap" {
			if h.Kind != hint.KindMacvtap || h.Macvtap == nil || h.Macvtap.Name != tc.device {
				t.Errorf("%s: hint kind %s, want macvtap %s", name, h.Kind, tc.device)
			}
		} else if h.Kind != hint.KindTap || h.Tap == nil || h.Tap.Name != tc.device || h.Tap.Wiring != tc.mode {
			t.Errorf("%s: hint kind %s, want tap %s (%s)", name, h.Kind, tc.device, tc.mode)
		}
		t.Logf("%s: net1 %s, %s %s, guest MAC %s", name, net1.IPs[0], h.Kind, tc.device, h.Guest.MAC)
	}
	names := make([]string, len(cases))
	for i, tc := range cases {
		names[i] = "vmct-" + tc.nad
	}
	e.deletePods(names...)
}

// testBadConfig: a NAD whose vm-bridge config is invalid leaves the pod in
// ContainerCreating with vm-bridge's CNI error in its events, and nothing
// on the node.
func (e *env) testBadConfig(t *testing.T) {
	e = e.in(t)
	nad := map[string]any{
		"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
		"metadata": map[string]any{"name": "vmct-bad", "namespace": "default"},
		"spec":     map[string]any{"config": `{"cniVersion":"1.1.0","name":"vmct-bad","type":"vm-bridge","mode":"teleport","bridge":"vmct-bad0","ipam":{"type":"host-local","subnet":"10.240.9.0/24"}}`},
	}
	e.create(nad)
	e.create(toolsPod("vmct-bad", "vmct-bad"))
	var events string
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		events, _ = e.c.Kubectl("get", "events", "--field-selector", "involvedObject.name=vmct-bad,reason=FailedCreatePodSandBox", "-o", "jsonpath={.items[*].message}")
		if strings.Contains(events, "teleport") {
			break
		}
		time.Sleep(time.Second)
	}
	if !strings.Contains(events, `"teleport"`) {
		t.Errorf("no vm-bridge error naming the bad mode in the pod's events: %q", events)
	}
	t.Logf("event: %.400s", events)
	if p := e.getPod("vmct-bad"); p.Status.Phase != "Pending" {
		t.Errorf("pod phase %s, want Pending (ContainerCreating)", p.Status.Phase)
	}
	e.deletePods("vmct-bad")
	e.c.MustKubectl(e.t, "delete", "network-attachment-definitions", "vmct-bad")
}

// podState is what pods may leave on the node: links, addresses, routes,
// qdiscs, leases, vmcni records and hint files, netns.
func (e *env) podState() []string {
	e.t.Helper()
	s, err := kube.PodState()
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// assertPodState fails unless the node returns to before within a minute
// (the kubelet unmounts volumes and removes cgroups of deleted pods in its
// housekeeping, a few seconds later).
func (e *env) assertPodState(before []string) {
	e.t.Helper()
	var d []string
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		if d = kube.DiffLines(before, e.podState()); len(d) == 0 {
			return
		}
	}
	e.t.Errorf("the pods left the node changed:\n%s", strings.Join(d, "\n"))
}

// vmPod returns a privileged pod whose container runs vmnet's reference
// launcher (`vmnet pod`) in the pod's netns, as KubeVirt's virt-launcher
// does: it boots the test guest on the tap or macvtap the NAD's hint
// names; net1 belongs to the VM. probes are IPs the guest pings and whose
// :8080 it fetches once up.
func vmPod(name, network string, probes ...string) map[string]any {
	args := []string{"pod", "--hostname", name}
	for _, ip := range probes {
		args = append(args, "--probe", ip, "--probe-tcp", ip+":8080")
	}
	return map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{
			"name": name, "namespace": "default", "labels": map[string]string{"vmct": "1"},
			"annotations": map[string]string{"k8s.v1.cni.cncf.io/networks": network},
		},
		"spec": map[string]any{
			"terminationGracePeriodSeconds": 5,
			"containers": []any{map[string]any{
				"name": "vm", "image": kube.LauncherImage, "imagePullPolicy": "Never",
				"args": args, "securityContext": map[string]any{"privileged": true},
			}},
		},
	}
}

// waitLog waits for a line of the pod's log containing marker and
// returns it.
func (e *env) waitLog(name, marker string, timeout time.Duration) string {
	e.t.Helper()
	var logs string
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(time.Second) {
		logs, _ = e.c.Kubectl("logs", name)
		for _, l := range strings.Split(logs, "\n") {
			if strings.Contains(l, marker) {
				return l
			}
		}
	}
	describe, _ := e.c.Kubectl("describe", "pod", name)
	e.t.Fatalf("pod %s: no %q in its log after %s:\n%s\n%s", name, marker, timeout, logs, describe)
	return ""
}

// testVMPods: per vm-bridge mode, two VM pods on the same NAD reach each
// other guest to guest (ping and HTTP), and a client pod on the cluster
// network reaches a guest (ping and HTTP).
func (e *env) testVMPods(t *testing.T) {
	e = e.in(t)
	e.create(toolsPod("vmct-client", ""))
	e.waitReady("vmct-client", 60*time.Second)
	for _, nad := range []string{"vm-bridge-tcfilter", "vm-bridge-bridge", "vm-bridge-macvtap"} {
		t.Run(nad, func(t *testing.T) {
			e := e.in(t) //nolint:govet // the subtest's env on purpose
			a, b := "vmct-vm-a", "vmct-vm-b"
			e.create(vmPod(a, nad))
			e.waitReady(a, 90*time.Second)
			ipA := e.secondary(e.getPod(a), "net1").IPs[0]
			ready := e.waitLog(a, "VMCNI-GUEST-READY", 120*time.Second)
			if !strings.Contains(ready, "ip="+ipA+"/") {
				t.Errorf("guest A is not on net1's address %s: %s", ipA, ready)
			}
			e.create(vmPod(b, nad, ipA))
			e.waitReady(b, 90*time.Second)
			e.waitLog(b, "VMCNI-GUEST-READY", 120*time.Second)
			for _, m := range []string{"VMCNI-PROBE-OK " + ipA, "VMCNI-PROBETCP-OK " + ipA + ":8080"} {
				t.Logf("guest B: %s", e.waitLog(b, m, 120*time.Second))
			}
			if out, err := e.exec("vmct-client", "ping", "-c", "3", "-W", "3", ipA); err != nil {
				t.Errorf("client pod → guest A ping: %v\n%s", err, out)
			}
			out, err := e.httpGet("vmct-client", ipA+":8080")
			if err != nil || !strings.Contains(out, "vmcni-guest-ok") || !strings.Contains(out, a) {
				t.Errorf("client pod → guest A HTTP: %v\n%s", err, out)
			}
			e.deletePods(a, b)
		})
	}
	e.deletePods("vmct-client")
}

// testKubeletRestart: pods and guests survive a kubelet restart, and DEL
// after it cleans up (checked with every other pod at the end).
func (e *env) testKubeletRestart(t *testing.T) {
	e = e.in(t)
	e.create(toolsPod("vmct-client", ""))
	e.create(vmPod("vmct-vm-r", "vm-bridge-tcfilter"))
	e.waitReady("vmct-client", 60*time.Second)
	e.waitReady("vmct-vm-r", 90*time.Second)
	e.waitLog("vmct-vm-r", "VMCNI-GUEST-READY", 120*time.Second)
	ip := e.secondary(e.getPod("vmct-vm-r"), "net1").IPs[0]
	start := time.Now()
	if err := e.c.RestartKubelet(); err != nil {
		t.Fatal(err)
	}
	t.Logf("kubelet restarted, node Ready in %s", time.Since(start).Round(time.Millisecond))
	e.waitReady("vmct-vm-r", 60*time.Second)
	restarts, _ := e.c.Kubectl("get", "pod", "vmct-vm-r", "-o", "jsonpath={.status.containerStatuses[0].restartCount}")
	if restarts != "0" {
		t.Errorf("the VM pod's container restarted %s times", restarts)
	}
	// kubectl exec goes through the kubelet, which needs a moment to
	// find its pods again.
	var out string
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
		if out, err = e.exec("vmct-client", "ping", "-c", "3", "-W", "3", ip); err == nil {
			break
		}
	}
	if err != nil {
		t.Errorf("client pod → guest after the kubelet restart: %v\n%s", err, out)
	}
	e.deletePods("vmct-vm-r", "vmct-client")
}

// testPodStartTime measures pod start (create to Ready, through kubectl)
// with the default network only and with a vm-bridge NAD, interleaved.
func (e *env) testPodStartTime(t *testing.T) {
	e = e.in(t)
	const n = 5
	var plain, withNAD []time.Duration
	for i := range n {
		for _, network := range []string{"", "vm-bridge-tcfilter"} {
			name := fmt.Sprintf("vmct-start-%d", i)
			if network != "" {
				name += "-nad"
			}
			start := time.Now()
			e.create(toolsPod(name, network))
			e.waitReady(name, 60*time.Second)
			d := time.Since(start)
			if network == "" {
				plain = append(plain, d)
			} else {
				withNAD = append(withNAD, d)
			}
			e.deletePods(name)
		}
	}
	t.Logf("pod start, create to Ready (n=%d, median): default network only %s, with a vm-bridge NAD %s",
		n, median(plain).Round(time.Millisecond), median(withNAD).Round(time.Millisecond))
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
