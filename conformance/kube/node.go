package kube

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"

	"github.com/vmcni/vmcni/internal/hostsnap"
)

// What a cluster changes on the node outside its own directory, recorded
// before it starts and put back when it stops.
var (
	// guardedSysctls are the sysctls the kubelet, kube-proxy and the CNI
	// plugins of a pod network set.
	guardedSysctls = []string{
		"kernel/panic", "kernel/panic_on_oops", "vm/overcommit_memory", "vm/panic_on_oom",
		"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes",
		"net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding", "net/ipv4/conf/all/route_localnet",
		"net/bridge/bridge-nf-call-iptables", "net/bridge/bridge-nf-call-ip6tables",
		"net/netfilter/nf_conntrack_max",
		"net/netfilter/nf_conntrack_tcp_timeout_established", "net/netfilter/nf_conntrack_tcp_timeout_close_wait",
	}
	// guardedDirs are node directories a cluster or the DaemonSet writes:
	// their files are backed up and restored, anything new is removed.
	guardedDirs = []string{"/opt/cni", "/etc/cni"}
	// guardedPaths are created by the kubelet whatever its root dir, or
	// hold the state of the plugins pods run; removed when new.
	guardedPaths = []string{
		"/var/lib/kubelet", "/var/log/pods", "/var/log/containers", "/usr/libexec/kubernetes",
		"/var/lib/cni", "/run/vmcni", "/var/run/netns",
	}
	// stateDirs are listed file by file in the node state: what pods leave
	// there (leases, records, hint files, sockets) must be gone after DEL.
	stateDirs = []string{"/var/lib/cni/networks", "/var/lib/cni/vmcni", "/var/lib/cni/results", "/run/vmcni", "/var/run/netns"}
)

// NodeState is the node as the cluster compares it before and after: the
// host netns's links, addresses, qdiscs and routes, the files under the
// CNI directories and the plugins' state directories, nftables tables and
// iptables rules, mounts, the kubelet's cgroups and the guarded sysctls,
// one sorted line per fact.
func NodeState() ([]string, error) { return nodeState(false) }

// PodState is what pods may leave on the node, for comparing before and
// after pods come and go: NodeState without what the first pod of a
// network sets up for good (the networks' host bridges, like the reference
// bridge plugin's, with their addresses and routes; the forwarding
// sysctls; kube-proxy's and the kubelet's iptables rules; the kubelet's QoS
// cgroups; vm-bridge's masquerade lock file): links, leases, records,
// hint files, sockets, netns mounts, pod cgroups and nftables tables remain.
func PodState() ([]string, error) { return nodeState(true) }

// masqLock is vm-bridge's host-wide lock of its masquerade table, kept
// like host-local's lock files.
const masqLock = "/run/vmcni/masq.lock"

// persistentBridge reports whether a link is a network's host bridge.
func persistentBridge(name string) bool {
	return name == ClusterBridge || strings.HasPrefix(name, "vmcni")
}

func nodeState(podsOnly bool) ([]string, error) {
	opts := hostsnap.Options{Dirs: append(append([]string{}, guardedDirs...), stateDirs...)}
	if podsOnly {
		opts.SkipLink = persistentBridge
	}
	snap, err := hostsnap.Take(opts)
	if err != nil {
		return nil, err
	}
	lines := snap.Lines
	if !podsOnly {
		for _, s := range guardedSysctls {
			if v, rerr := os.ReadFile(filepath.Join("/proc/sys", s)); rerr == nil {
				lines = append(lines, fmt.Sprintf("sysctl %s=%s", s, strings.TrimSpace(string(v))))
			}
		}
		for _, p := range guardedPaths {
			if _, serr := os.Lstat(p); serr == nil {
				lines = append(lines, "path "+p)
			}
		}
		for _, save := range []string{"iptables-save", "ip6tables-save"} {
			out, serr := exec.Command(save).Output()
			if serr != nil {
				return nil, fmt.Errorf("%s: %w", save, serr)
			}
			for _, l := range strings.Split(string(out), "\n") {
				if l == "" || l[0] == '#' || l == "COMMIT" {
					continue
				}
				if l[0] == ':' { // ":CHAIN POLICY [packets:bytes]"
					l = strings.Join(strings.Fields(l)[:2], " ")
				}
				lines = append(lines, save+" "+l)
			}
		}
	}
	tables, err := nftTables()
	if err != nil {
		return nil, err
	}
	for _, t := range tables {
		lines = append(lines, "nft table "+t)
	}
	mounts, err := mountPoints("/")
	if err != nil {
		return nil, err
	}
	for _, m := range mounts {
		lines = append(lines, "mount "+m)
	}
	cgroups, err := kubeCgroups()
	if err != nil {
		return nil, err
	}
	for _, c := range cgroups {
		if !podsOnly || strings.Contains(c, "/pod") {
			lines = append(lines, "cgroup "+c)
		}
	}
	if podsOnly {
		lines = slices.DeleteFunc(lines, func(l string) bool { return l == "file "+masqLock })
	}
	sort.Strings(lines)
	return lines, nil
}

// killPods SIGKILLs every process in the kubelet's cgroups (containers
// and sandboxes outlive containerd and their shims) until none is left.
func killPods() {
	for i := 0; i < 50; i++ {
		n := 0
		_ = filepath.WalkDir("/sys/fs/cgroup/pids/kubepods", func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			data, _ := os.ReadFile(p)
			for _, pid := range strings.Fields(string(data)) {
				if id, err := strconv.Atoi(pid); err == nil && id > 1 {
					_ = syscall.Kill(id, syscall.SIGKILL)
					n++
				}
			}
			return nil
		})
		if n == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func nftTables() ([]string, error) {
	conn, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	tables, err := conn.ListTables()
	if err != nil {
		return nil, fmt.Errorf("list nftables tables: %w", err)
	}
	var names []string
	for _, t := range tables {
		names = append(names, fmt.Sprintf("%d/%s", t.Family, t.Name))
	}
	return names, nil
}

// mountPoints lists the mount points at or under dir, deepest last.
func mountPoints(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && (dir == "/" || fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			points = append(points, fields[4])
		}
	}
	sort.Strings(points)
	return points, sc.Err()
}

// kubeCgroups lists the kubelet's cgroup directories (kubepods, and the
// containers' under it) of every cgroup v1 controller.
func kubeCgroups() ([]string, error) {
	roots, err := filepath.Glob("/sys/fs/cgroup/*/kubepods*")
	if err != nil {
		return nil, err
	}
	var dirs []string
	for _, r := range roots {
		_ = filepath.WalkDir(r, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
	}
	return dirs, nil
}

// nodeGuard puts back what a cluster changed outside its own directory.
type nodeGuard struct {
	backup   string            // copies of the files under guardedDirs
	sysctls  map[string]string // path under /proc/sys → value
	paths    map[string]bool   // guardedPaths that existed
	tables   map[string]bool   // nftables tables that existed
	saves    map[string][]byte // iptables-save / ip6tables-save output
	links    map[string]bool   // host links that existed
	cgroups  map[string]bool
	dirFiles map[string]bool // files and dirs under guardedDirs that existed
}

func guardNode(backup string) (*nodeGuard, error) {
	g := &nodeGuard{backup: backup, sysctls: map[string]string{}, paths: map[string]bool{},
		tables: map[string]bool{}, saves: map[string][]byte{}, links: map[string]bool{},
		cgroups: map[string]bool{}, dirFiles: map[string]bool{}}
	for _, s := range guardedSysctls {
		if v, err := os.ReadFile(filepath.Join("/proc/sys", s)); err == nil {
			g.sysctls[s] = strings.TrimSpace(string(v))
		}
	}
	for _, p := range guardedPaths {
		if _, err := os.Lstat(p); err == nil {
			g.paths[p] = true
		}
	}
	tables, err := nftTables()
	if err != nil {
		return nil, err
	}
	for _, t := range tables {
		g.tables[t] = true
	}
	for _, save := range []string{"iptables-save", "ip6tables-save"} {
		out, serr := exec.Command(save).Output()
		if serr != nil {
			return nil, fmt.Errorf("%s: %w", save, serr)
		}
		g.saves[save] = out
	}
	links, err := netlink.LinkList()
	if err != nil {
		return nil, err
	}
	for _, l := range links {
		g.links[l.Attrs().Name] = true
	}
	cg, err := kubeCgroups()
	if err != nil {
		return nil, err
	}
	for _, c := range cg {
		g.cgroups[c] = true
	}
	for _, dir := range guardedDirs {
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			g.dirFiles[p] = true
			if d.Type().IsRegular() {
				return copyFile(p, filepath.Join(backup, p))
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("back up %q: %w", dir, err)
		}
	}
	return g, nil
}

// restore undoes the cluster's changes; call it once every process of the
// cluster is gone. It keeps going after a failure and joins the errors.
func (g *nodeGuard) restore() error {
	var errs []error
	for s, v := range g.sysctls {
		p := filepath.Join("/proc/sys", s)
		if cur, err := os.ReadFile(p); err == nil && strings.TrimSpace(string(cur)) != v {
			errs = append(errs, os.WriteFile(p, []byte(v), 0o644))
		}
	}
	// iptables: tables that existed get their saved rules back, new
	// ones go.
	for save, out := range g.saves {
		restore := strings.Replace(save, "-save", "-restore", 1)
		if len(out) > 0 {
			cmd := exec.Command(restore)
			cmd.Stdin = strings.NewReader(string(out))
			if b, err := cmd.CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w: %s", restore, err, b))
			}
		}
	}
	if conn, err := nftables.New(); err == nil {
		if tables, err := conn.ListTables(); err == nil {
			for _, t := range tables {
				if !g.tables[fmt.Sprintf("%d/%s", t.Family, t.Name)] {
					conn.DelTable(t)
				}
			}
			if err = conn.Flush(); err != nil {
				errs = append(errs, fmt.Errorf("delete nftables tables: %w", err))
			}
		}
	}
	if links, err := netlink.LinkList(); err == nil {
		for _, l := range links {
			if !g.links[l.Attrs().Name] {
				if err = netlink.LinkDel(l); err != nil && !errors.As(err, new(netlink.LinkNotFoundError)) {
					errs = append(errs, fmt.Errorf("delete link %q: %w", l.Attrs().Name, err))
				}
			}
		}
	}
	if cg, err := kubeCgroups(); err == nil {
		sort.Sort(sort.Reverse(sort.StringSlice(cg))) // children first
		for _, c := range cg {
			if !g.cgroups[c] {
				if err = os.Remove(c); err != nil && !errors.Is(err, fs.ErrNotExist) {
					errs = append(errs, fmt.Errorf("remove cgroup %q: %w", c, err))
				}
			}
		}
	}
	for _, dir := range guardedDirs {
		var added []string
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !g.dirFiles[p] {
				added = append(added, p)
				if d.IsDir() {
					return filepath.SkipDir
				}
			}
			return nil
		})
		for _, p := range added {
			errs = append(errs, os.RemoveAll(p))
		}
	}
	for p := range g.dirFiles {
		b := filepath.Join(g.backup, p)
		if fi, err := os.Stat(b); err == nil && fi.Mode().IsRegular() && !sameFile(b, p) {
			errs = append(errs, copyFile(b, p))
		}
	}
	for _, p := range guardedPaths {
		if !g.paths[p] {
			if err := os.RemoveAll(p); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	if err = os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp := dst + ".vmcni-restore"
	if err = os.WriteFile(tmp, data, fi.Mode().Perm()); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

func sameFile(a, b string) bool {
	x, err1 := os.ReadFile(a)
	y, err2 := os.ReadFile(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}
