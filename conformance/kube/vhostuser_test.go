package kube_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmcni/vmcni/internal/testutil"
	"github.com/vmcni/vmcni/vhostuser"
)

// vhostSocketDir is the socketDir of deploy/nad/vm-vhostuser.yaml.
const vhostSocketDir = "/run/vmcni/vhost-user"

// testVhostUser: deploy/nad/vm-vhostuser.yaml applied unmodified on an
// OVS-DPDK started on the node (bridge br-dpdk, OVSDB at the NAD's default
// socket): two VM pods whose launcher boots the guest on the vhost-user
// socket Multus's network-status names (the VMM is the server, OVS
// reconnects), and the guests ping each other through OVS-DPDK. The NAD
// has no IPAM (an NFV network): the guests get static addresses.
//
// Multus v4.1.0 hands a delegate a CNIDeviceInfoFile, and copies the file
// into the network-status, only when the attachment has a deviceID
// (pkg/types/conf.go, delegateRuntimeConfig). No device plugin allocates
// vhost-user ports, so the pod names one in its network selection element
// ("deviceID"), which vm-vhostuser takes as an opaque label.
func (e *env) testVhostUser(t *testing.T) {
	e = e.in(t)
	testutil.RequiresOVSDPDK(t)
	if _, err := os.Stat(vhostSocketDir); errors.Is(err, fs.ErrNotExist) {
		// made by the kubelet (hostPath DirectoryOrCreate) or the plugin;
		// removed once the pods and their sockets are gone
		t.Cleanup(func() { _ = os.Remove(vhostSocketDir) })
	}
	ovs := testutil.StartOVS(t)
	ovs.AddBridge("br-dpdk")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("OVS interfaces:\n%s", ovs.Vsctl("--columns=name,type,options,status,link_state,statistics", "list", "Interface"))
			if log, err := os.ReadFile(filepath.Join(ovs.Dir, "vswitchd.log")); err == nil {
				t.Logf("vswitchd.log:\n%s", log)
			}
		}
	})
	exposeOVSDB(t, strings.TrimPrefix(ovs.DB, "unix:"), strings.TrimPrefix(vhostuser.DefaultOVSDB, "unix:"))
	e.c.MustKubectl(e.t, "apply", "-f", filepath.Join(e.root, "deploy", "nad", "vm-vhostuser.yaml"))
	t.Cleanup(func() {
		_, _ = e.c.Kubectl("delete", "-f", filepath.Join(e.root, "deploy", "nad", "vm-vhostuser.yaml"))
	})

	guests := map[string]string{"vmct-vhu-a": "10.255.0.2", "vmct-vhu-b": "10.255.0.3"}
	for name, ip := range guests {
		peer := guests["vmct-vhu-a"]
		if name == "vmct-vhu-a" {
			peer = guests["vmct-vhu-b"]
		}
		e.create(vhostUserVMPod(name, ip, peer))
	}
	for name := range guests {
		e.waitReady(name, 90*time.Second)
	}
	for name, ip := range guests {
		ready := e.waitLog(name, "VMCNI-GUEST-READY", 180*time.Second)
		if !strings.Contains(ready, "ip="+ip+"/24") {
			t.Errorf("%s: %s", name, ready)
		}
	}
	for name := range guests {
		t.Logf("%s: %s", name, e.waitLog(name, "VMCNI-PROBE-OK", 180*time.Second))
	}
	ports := ovs.Vsctl("list-ports", "br-dpdk")
	if n := len(strings.Fields(ports)); n != 2 {
		t.Errorf("br-dpdk ports %q, want the two attachments'", ports)
	}
	e.deletePods("vmct-vhu-a", "vmct-vhu-b")
	if ports := ovs.Vsctl("list-ports", "br-dpdk"); ports != "" {
		t.Errorf("ports left on br-dpdk after DEL: %q", ports)
	}
}

// vhostUserVMPod is a VM pod on the vm-vhostuser NAD: the socket
// directory is mounted from the node at the same path, and Multus's
// network-status, with the device-info naming the socket, reaches the
// launcher through the downward API.
func vhostUserVMPod(name, ip, peer string) map[string]any {
	p := vmPod(name, `[{"name":"vm-vhostuser-ovs","interface":"net1","deviceID":"vhost-net1"}]`)
	spec := p["spec"].(map[string]any)
	ctr := spec["containers"].([]any)[0].(map[string]any)
	ctr["args"] = []string{"pod", "--hostname", name, "--netns", "", "--network-status", "/etc/podinfo/network-status",
		"--wait", "170s", "--cmdline", "vmcni.ip=" + ip + "/24", "--probe", peer, "--probe-wait", "150s", "--boot-timeout", "120s"}
	ctr["volumeMounts"] = []any{
		map[string]any{"name": "vhost-user", "mountPath": vhostSocketDir},
		map[string]any{"name": "podinfo", "mountPath": "/etc/podinfo"},
	}
	spec["volumes"] = []any{
		map[string]any{"name": "vhost-user", "hostPath": map[string]any{"path": vhostSocketDir, "type": "DirectoryOrCreate"}},
		map[string]any{"name": "podinfo", "downwardAPI": map[string]any{"items": []any{map[string]any{
			"path":     "network-status",
			"fieldRef": map[string]any{"fieldPath": "metadata.annotations['k8s.v1.cni.cncf.io/network-status']"},
		}}}},
	}
	return p
}

// exposeOVSDB makes the private OVSDB socket reachable at the path the
// NAD names (a symlink, removed at cleanup with the directory if the test
// created it).
func exposeOVSDB(t *testing.T, sock, at string) {
	t.Helper()
	dir := filepath.Dir(at)
	if _, err := os.Lstat(at); err == nil {
		t.Skipf("skipped: %s exists (an OVS of the node's own)", at)
	}
	created := false
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		created = true
	}
	if err := os.Symlink(sock, at); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = os.Remove(at)
		if created {
			_ = os.Remove(dir)
		}
	})
}
