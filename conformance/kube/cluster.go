package kube

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/vmcni/vmcni/internal/testutil"
)

// Fixed facts of the test cluster.
const (
	// NodeName is the one node's name.
	NodeName = "vmct-node"
	// PodCIDR is the default (cluster) network's subnet: the reference
	// bridge plugin with host-local, on bridge ClusterBridge.
	PodCIDR = "10.244.0.0/24"
	// ClusterBridge is the default network's host bridge.
	ClusterBridge = "vmctcni0"
	// ServiceCIDR is the Services' range.
	ServiceCIDR = "10.96.0.0/16"
	// KubeletDir is the kubelet's root directory. It is the standard one
	// because Multus dials the pod-resources socket there and device
	// plugins register there whatever the root directory.
	KubeletDir = "/var/lib/kubelet"
	// CNIBinDir is where the node's CNI plugins live (containerd, Multus
	// and the vmcni DaemonSet all use it).
	CNIBinDir = "/opt/cni/bin"
	// MultusConfDir is where Multus resolves a NetworkAttachmentDefinition
	// without spec.config, by name (the vmcni DaemonSet installs there).
	MultusConfDir = "/etc/cni/multus/net.d"
)

// Options configure a cluster.
type Options struct {
	// Images are image archives imported into containerd's k8s.io
	// namespace before the kubelet starts.
	Images []string
}

// Cluster is a running single-node cluster.
type Cluster struct {
	t        testing.TB
	Dir      string // everything the cluster keeps lives here
	NodeIP   net.IP
	pki      *pki
	guard    *nodeGuard
	baseline []string

	// Kubeconfig authenticates as cluster admin.
	Kubeconfig string
	// ContainerdSock is the private containerd's socket.
	ContainerdSock string
	// Bin holds the Kubernetes binaries.
	Bin string
	// Timings of the start, for reports.
	BuildTime, StartTime time.Duration

	apiPort, etcdPort int
	procs             map[string]*process
	order             []string // start order; stopped in reverse
}

// Start builds what is missing (cached), starts etcd, the control plane,
// containerd, the kubelet and kube-proxy, installs Multus with the
// default network, and waits for the node to be Ready and the default
// service account to exist. Cleanup stops everything and restores the
// node; it fails t if the node then differs from before Start.
func Start(t testing.TB, o Options) *Cluster {
	t.Helper()
	testutil.RequiresRoot(t)
	for _, b := range []string{"etcd", "containerd", "containerd-shim-runc-v2", "runc", "ctr", "iptables-save", "iptables-restore"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("skipped: %s not installed (make deps installs it)", b)
		}
	}
	if _, err := os.Stat(filepath.Join(KubeletDir, "pods")); err == nil {
		t.Skipf("skipped: %s/pods exists: another kubelet owns this node", KubeletDir)
	}
	ctx := context.Background()
	t0 := time.Now()
	bin, err := Build(ctx, t.Logf)
	if err != nil {
		t.Fatalf("build Kubernetes: %v", err)
	}
	multus := testutil.Multus(t)
	plugins := testutil.Binaries(t)
	buildTime := time.Since(t0)

	dir, err := os.MkdirTemp("", "vmct-kube-")
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{t: t, Dir: dir, Bin: bin, BuildTime: buildTime, procs: map[string]*process{}}
	if c.baseline, err = NodeState(); err != nil {
		t.Fatal(err)
	}
	if c.guard, err = guardNode(filepath.Join(dir, "node-backup")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.stop)
	start := time.Now()
	if err = c.start(ctx, o, multus, plugins); err != nil {
		c.dumpLogs()
		t.Fatalf("start cluster: %v", err)
	}
	c.StartTime = time.Since(start)
	t.Logf("cluster up in %s (build/cache %s)", c.StartTime.Round(time.Millisecond), buildTime.Round(time.Millisecond))
	return c
}

func (c *Cluster) start(ctx context.Context, o Options, multus, plugins string) error {
	var err error
	if c.NodeIP, err = nodeIP(); err != nil {
		return err
	}
	_, svcNet, _ := net.ParseCIDR(ServiceCIDR)
	firstSvc := append(net.IP{}, svcNet.IP.To4()...)
	firstSvc[3]++
	if c.pki, err = newPKI(filepath.Join(c.Dir, "pki"), []net.IP{net.ParseIP("127.0.0.1"), c.NodeIP, firstSvc}); err != nil {
		return err
	}
	if c.etcdPort, err = freePort(); err != nil {
		return err
	}
	peerPort, err := freePort()
	if err != nil {
		return err
	}
	if c.apiPort, err = freePort(); err != nil {
		return err
	}
	c.Kubeconfig = filepath.Join(c.Dir, "admin.kubeconfig")
	if err = c.pki.kubeconfig(c.Kubeconfig, c.APIServer()); err != nil {
		return err
	}
	logs := filepath.Join(c.Dir, "logs")
	if err = os.MkdirAll(logs, 0o755); err != nil {
		return err
	}

	// etcd
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", c.etcdPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	if err = c.run("etcd", nil, "etcd", "--name", "vmct", "--data-dir", filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "vmct="+peerURL, "--listen-metrics-urls", "", "--log-level", "warn"); err != nil {
		return err
	}
	if err = c.waitHTTP(ctx, "etcd", etcdURL+"/health", false, 30*time.Second); err != nil {
		return err
	}

	// control plane
	p := c.pki
	if err = c.run("kube-apiserver", nil, filepath.Join(c.Bin, "kube-apiserver"),
		"--etcd-servers", etcdURL, "--bind-address", "0.0.0.0", "--advertise-address", c.NodeIP.String(),
		"--secure-port", fmt.Sprint(c.apiPort),
		"--tls-cert-file", p.serverCert, "--tls-private-key-file", p.serverKey, "--client-ca-file", p.caCert,
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file", p.serviceAccount, "--service-account-signing-key-file", p.serviceAccount,
		"--service-cluster-ip-range", ServiceCIDR, "--authorization-mode", "Node,RBAC", "--allow-privileged=true",
		"--kubelet-client-certificate", p.adminCert, "--kubelet-client-key", p.adminKey,
		"--kubelet-preferred-address-types", "InternalIP", "--enable-priority-and-fairness=false",
		"--cert-dir", filepath.Join(c.Dir, "apiserver-certs")); err != nil {
		return err
	}
	if err = c.waitHTTP(ctx, "kube-apiserver", c.APIServer()+"/readyz", true, 90*time.Second); err != nil {
		return err
	}
	if err = c.run("kube-controller-manager", nil, filepath.Join(c.Bin, "kube-controller-manager"),
		"--kubeconfig", c.Kubeconfig, "--leader-elect=false", "--secure-port=0",
		"--service-account-private-key-file", p.serviceAccount, "--root-ca-file", p.caCert,
		"--use-service-account-credentials=false", "--controllers", "*,-nodeipam,-cloud-node-lifecycle"); err != nil {
		return err
	}
	if err = c.run("kube-scheduler", nil, filepath.Join(c.Bin, "kube-scheduler"),
		"--kubeconfig", c.Kubeconfig, "--leader-elect=false", "--secure-port=0"); err != nil {
		return err
	}

	// the node: CNI, containerd, images, kubelet, kube-proxy
	if err = c.installCNI(multus, plugins); err != nil {
		return err
	}
	if err = c.startContainerd(ctx); err != nil {
		return err
	}
	for _, img := range o.Images {
		if err = c.ImportImage(img); err != nil {
			return err
		}
	}
	if err = c.startKubelet(); err != nil {
		return err
	}
	healthz, err := freePort()
	if err != nil {
		return err
	}
	metrics, err := freePort()
	if err != nil {
		return err
	}
	if err = c.run("kube-proxy", nil, filepath.Join(c.Bin, "kube-proxy"),
		"--kubeconfig", c.Kubeconfig, "--hostname-override", NodeName, "--cluster-cidr", PodCIDR,
		"--proxy-mode", "iptables", "--conntrack-max-per-core=0",
		"--conntrack-tcp-timeout-established=0", "--conntrack-tcp-timeout-close-wait=0",
		"--oom-score-adj=0", "--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", metrics),
		"--healthz-bind-address", fmt.Sprintf("127.0.0.1:%d", healthz)); err != nil {
		return err
	}
	if err = c.waitNodeReady(ctx); err != nil {
		return err
	}
	crd, err := nadCRD()
	if err != nil {
		return err
	}
	if _, err := c.KubectlIn(strings.NewReader(crd), "apply", "-f", "-"); err != nil {
		return fmt.Errorf("install the NetworkAttachmentDefinition CRD: %w", err)
	}
	if _, err := c.Kubectl("wait", "--for=condition=Established", "crd/network-attachment-definitions.k8s.cni.cncf.io", "--timeout=60s"); err != nil {
		return err
	}
	return c.waitFor(ctx, "default service account", 60*time.Second, func() error {
		_, err := c.Kubectl("get", "serviceaccount", "default", "-n", "default")
		return err
	})
}

// waitNodeReady waits for the node to register and report Ready.
func (c *Cluster) waitNodeReady(ctx context.Context) error {
	return c.waitFor(ctx, "node Ready", 90*time.Second, func() error {
		if p := c.procs["kubelet"]; !p.running() {
			return fmt.Errorf("%w: kubelet exited:\n%s", errStop, p.logTail(3000))
		}
		out, err := c.Kubectl("get", "node", NodeName, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		if err != nil {
			return err
		}
		if out != "True" {
			return fmt.Errorf("node Ready=%q", out)
		}
		return nil
	})
}

// APIServer returns the API server's URL.
func (c *Cluster) APIServer() string { return fmt.Sprintf("https://127.0.0.1:%d", c.apiPort) }

func (c *Cluster) run(name string, env []string, bin string, args ...string) error {
	p, err := startProcess(name, filepath.Join(c.Dir, "logs"), env, bin, args...)
	if err != nil {
		return err
	}
	c.procs[name] = p
	c.order = append(c.order, name)
	return nil
}

func (c *Cluster) waitHTTP(ctx context.Context, name, url string, tlsAuth bool, timeout time.Duration) error {
	client := &http.Client{Timeout: 3 * time.Second}
	if tlsAuth {
		ca, err := os.ReadFile(c.pki.caCert)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(ca)
		cert, err := tls.LoadX509KeyPair(c.pki.adminCert, c.pki.adminKey)
		if err != nil {
			return err
		}
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}}
	}
	return c.waitFor(ctx, name, timeout, func() error {
		if p := c.procs[name]; p != nil && !p.running() {
			return fmt.Errorf("%w: %s exited:\n%s", errStop, name, p.logTail(3000))
		}
		resp, err := client.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", url, resp.Status)
		}
		return nil
	})
}

var errStop = errors.New("giving up")

// waitFor polls f until it succeeds, returns an error wrapping errStop,
// or timeout passes.
func (c *Cluster) waitFor(ctx context.Context, what string, timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if errors.Is(err, errStop) || time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Kubectl runs kubectl as cluster admin and returns its standard output.
func (c *Cluster) Kubectl(args ...string) (string, error) {
	return c.KubectlIn(nil, args...)
}

// KubectlIn runs kubectl with stdin.
func (c *Cluster) KubectlIn(stdin *strings.Reader, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(c.Bin, "kubectl"), append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// MustKubectl is Kubectl that fails t on error.
func (c *Cluster) MustKubectl(t testing.TB, args ...string) string {
	t.Helper()
	out, err := c.Kubectl(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// GetJSON runs kubectl get -o json and decodes into v.
func (c *Cluster) GetJSON(v any, args ...string) error {
	out, err := c.Kubectl(append(append([]string{"get"}, args...), "-o", "json")...)
	if err != nil {
		return err
	}
	return json.Unmarshal([]byte(out), v)
}

func nodeIP() (net.IP, error) {
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, err
	}
	for _, r := range routes {
		if r.Dst == nil || r.Dst.IP.IsUnspecified() {
			l, err := netlink.LinkByIndex(r.LinkIndex)
			if err != nil {
				continue
			}
			addrs, _ := netlink.AddrList(l, netlink.FAMILY_V4)
			for _, a := range addrs {
				if a.IP.IsGlobalUnicast() {
					return a.IP, nil
				}
			}
		}
	}
	return nil, errors.New("no IPv4 address on the default route's link: the node needs one")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// dumpLogs puts the tail of every daemon's log in the test log.
func (c *Cluster) dumpLogs() {
	for _, name := range c.order {
		c.t.Logf("--- %s log (tail) ---\n%s", name, c.procs[name].logTail(4000))
	}
	if b, err := os.ReadFile(filepath.Join(c.Dir, "multus.log")); err == nil {
		c.t.Logf("--- multus log (tail) ---\n%s", tail(b, 4000))
	}
}

// stop deletes every pod (so CNI DEL runs), stops the daemons in reverse
// order, kills what containerd left running, unmounts, removes kube-proxy's
// rules, restores the node and compares it with the state before Start.
func (c *Cluster) stop() {
	t := c.t
	if t.Failed() {
		c.dumpLogs()
	}
	if p := c.procs["kubelet"]; p != nil && p.running() {
		if _, err := c.Kubectl("delete", "pods", "--all", "--all-namespaces", "--wait=true", "--timeout=90s"); err != nil {
			t.Errorf("delete pods at teardown: %v", err)
		}
		if _, err := c.Kubectl("delete", "daemonsets", "--all", "--all-namespaces", "--wait=true", "--timeout=60s"); err != nil {
			t.Logf("delete daemonsets at teardown: %v", err)
		}
	}
	for i := len(c.order) - 1; i >= 0; i-- {
		c.procs[c.order[i]].stop(20 * time.Second)
	}
	for i := 0; i < 5 && killMatching(c.Dir) > 0; i++ { // shims
		time.Sleep(300 * time.Millisecond)
	}
	killPods()
	if c.Bin != "" {
		_ = exec.Command(filepath.Join(c.Bin, "kube-proxy"), "--cleanup").Run()
	}
	for _, d := range []string{c.Dir, KubeletDir} {
		points, _ := mountPoints(d)
		for i := len(points) - 1; i >= 0; i-- {
			_ = syscall.Unmount(points[i], syscall.MNT_DETACH)
		}
	}
	if left := processesUnder(c.Dir); len(left) > 0 {
		t.Errorf("processes left running:\n%s", strings.Join(left, "\n"))
	}
	if err := c.guard.restore(); err != nil {
		t.Errorf("restore node: %v", err)
	}
	if err := os.RemoveAll(c.Dir); err != nil {
		t.Errorf("remove %s: %v", c.Dir, err)
	}
	after, err := NodeState()
	if err != nil {
		t.Errorf("node state: %v", err)
		return
	}
	if diff := DiffLines(c.baseline, after); len(diff) > 0 {
		t.Errorf("the node differs from before the cluster started:\n%s", strings.Join(diff, "\n"))
	}
}

// DiffLines returns lines gone ("- ") and new ("+ ").
func DiffLines(before, after []string) []string {
	was, now := map[string]bool{}, map[string]bool{}
	for _, l := range before {
		was[l] = true
	}
	for _, l := range after {
		now[l] = true
	}
	var out []string
	for _, l := range before {
		if !now[l] {
			out = append(out, "- "+l)
		}
	}
	for _, l := range after {
		if !was[l] {
			out = append(out, "+ "+l)
		}
	}
	return out
}
