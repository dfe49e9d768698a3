package ipam

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/plugins/ipam/host-local/backend/allocator"
	"github.com/containernetworking/plugins/plugins/ipam/host-local/backend/disk"
	"golang.org/x/sys/unix"

	"github.com/vmcni/vmcni/internal/cnierr"
)

// HostLocal is the IPAM type run in-process (unless Delegate.Exec).
const HostLocal = "host-local"

// defaultDataDir is host-local's own default.
const defaultDataDir = "/var/lib/cni/networks"

// hostLocal is the reference host-local plugin run in-process, with its
// own packages: the config (allocator.LoadIPAMConfig: ranges, CNI_ARGS
// and runtimeConfig IPs), the allocator (round robin from
// last_reserved_ip), and the lease directory and its lock (disk.Store). So
// the leases on disk are exactly host-local's, and the host-local binary,
// other plugins that exec it and vmcni share a range under one flock.
//
// Three things differ, none visible to host-local:
//   - a lease file appears with its owner already in it (written to an
//     unnamed O_TMPFILE, then linked into place, exclusive like host-local's
//     O_EXCL create): a kill at any point never leaves the empty lease that
//     neither host-local's DEL nor its GC can release;
//   - ADD does not read every lease looking for one the attachment already
//     holds (host-local refuses a duplicate): the engine calls Add only for
//     an attachment holding none, so ADD costs the same with 500 leases as
//     with none;
//   - DEL and CHECK given the attachment's leases (Delegate.Leases, which
//     the record keeps) read just those files; without them they scan the
//     directory as host-local does.
//
// GC, which the host-local binary does not implement, removes the leases
// of attachments not valid (cni.dev/valid-attachments, or the older
// cni.dev/attachments, as the engine reads them).
type hostLocal struct {
	conf  *allocator.IPAMConfig
	dir   string // <dataDir>/<network>
	store *disk.Store
}

func openHostLocal(config []byte, cniArgs string) (*hostLocal, error) {
	conf, _, err := allocator.LoadIPAMConfig(config, cniArgs)
	if err != nil {
		return nil, cnierr.Config("host-local: %w", err)
	}
	dataDir := conf.DataDir
	if dataDir == "" {
		dataDir = defaultDataDir
	}
	st, err := disk.New(conf.Name, dataDir)
	if err != nil {
		return nil, err
	}
	return &hostLocal{conf: conf, dir: filepath.Join(dataDir, conf.Name), store: st}, nil
}

func (h *hostLocal) close() { _ = h.store.Close() }

// owner is what a lease file holds: host-local's format.
func owner(a Attachment) string { return strings.TrimSpace(a.ContainerID) + disk.LineBreak + a.IfName }

// ownedBy reports whether lease content data belongs to a (host-local's
// match, with its pre-ifname format).
func ownedBy(data []byte, a Attachment) bool {
	s := strings.TrimSpace(string(data))
	return s == owner(a) || s == strings.TrimSpace(a.ContainerID)
}

func (h *hostLocal) add(a Attachment) (*current.Result, error) {
	res := &current.Result{CNIVersion: current.ImplementedSpecVersion, Routes: h.conf.Routes}
	if h.conf.ResolvConf != "" {
		dns, err := parseResolvConf(h.conf.ResolvConf)
		if err != nil {
			return nil, err
		}
		res.DNS = *dns
	}
	requested := map[string]net.IP{}
	for _, ip := range h.conf.IPArgs {
		requested[ip.String()] = ip
	}
	ls := &leaseStore{Store: h.store, dir: h.dir}
	var allocs []*allocator.IPAllocator
	fail := func(err error) (*current.Result, error) {
		for _, al := range allocs {
			_ = al.Release(a.ContainerID, a.IfName)
		}
		return nil, err
	}
	for idx := range h.conf.Ranges {
		al := allocator.NewIPAllocator(&h.conf.Ranges[idx], ls, idx)
		var want net.IP
		for k, ip := range requested {
			if h.conf.Ranges[idx].Contains(ip) {
				want = ip
				delete(requested, k)
				break
			}
		}
		ipc, err := al.Get(a.ContainerID, a.IfName, want)
		if err != nil {
			return fail(fmt.Errorf("failed to allocate for range %d: %w", idx, err))
		}
		allocs = append(allocs, al)
		res.IPs = append(res.IPs, ipc)
	}
	if len(requested) != 0 {
		var ips []string
		for k := range requested {
			ips = append(ips, k)
		}
		return fail(fmt.Errorf("failed to allocate all requested IPs: %s", strings.Join(ips, " ")))
	}
	return res, nil
}

// release frees a's leases: the files of leases when known (each only if
// a still owns it), else every file a owns (host-local's scan).
func (h *hostLocal) release(a Attachment, leases []string) error {
	if err := h.store.Lock(); err != nil {
		return err
	}
	defer func() { _ = h.store.Unlock() }()
	if leases == nil {
		return h.store.ReleaseByID(a.ContainerID, a.IfName)
	}
	var errs []error
	for _, ip := range leases {
		path := disk.GetEscapedPath(h.dir, ip)
		data, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err == nil && ownedBy(data, a) {
			err = removeMissingOK(path)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// check fails unless a holds its leases (when known) or any lease.
func (h *hostLocal) check(a Attachment, leases []string) error {
	if leases == nil {
		if !h.store.FindByID(a.ContainerID, a.IfName) {
			return fmt.Errorf("host-local: Failed to find address added by container %v", a.ContainerID)
		}
		return nil
	}
	for _, ip := range leases {
		if data, err := os.ReadFile(disk.GetEscapedPath(h.dir, ip)); err != nil || !ownedBy(data, a) {
			return fmt.Errorf("host-local: address %s is no longer leased to container %v", ip, a.ContainerID)
		}
	}
	return nil
}

// gc removes the leases of attachments not in valid.
func (h *hostLocal) gc(valid map[types.GCAttachment]bool) error {
	owners := map[string]bool{}
	for v := range valid {
		owners[owner(Attachment{ContainerID: v.ContainerID, IfName: v.IfName})] = true
		owners[strings.TrimSpace(v.ContainerID)] = true // host-local's pre-ifname leases
	}
	if err := h.store.Lock(); err != nil {
		return err
	}
	defer func() { _ = h.store.Unlock() }()
	entries, err := os.ReadDir(h.dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, en := range entries {
		path := filepath.Join(h.dir, en.Name())
		if strings.HasPrefix(en.Name(), tmpPrefix) { // of a Reserve a kill interrupted
			errs = append(errs, removeMissingOK(path))
			continue
		}
		if en.IsDir() || net.ParseIP(en.Name()) == nil && net.ParseIP(strings.ReplaceAll(en.Name(), "_", ":")) == nil {
			continue // the lock, last_reserved_ip.*
		}
		data, err := os.ReadFile(path)
		if err != nil || owners[strings.TrimSpace(string(data))] {
			continue
		}
		errs = append(errs, removeMissingOK(path))
	}
	return errors.Join(errs...)
}

func removeMissingOK(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// leaseStore is host-local's disk.Store with Reserve and GetByID replaced
// (see hostLocal).
type leaseStore struct {
	*disk.Store
	dir string
}

// Reserve creates ip's lease file holding id and ifname, atomically: the
// content goes into a file with no name (O_TMPFILE; on a file system
// without it, a dot-file host-local ignores), which is then linked to the
// lease's name, failing (false) when the name exists. Then, as host-local
// does, it records ip as the range's last reserved address. Call with the
// lock held.
func (s *leaseStore) Reserve(id, ifname string, ip net.IP, rangeID string) (bool, error) {
	content := owner(Attachment{ContainerID: id, IfName: ifname})
	lease := disk.GetEscapedPath(s.dir, ip.String())
	err := linkNew(s.dir, lease, content)
	if errors.Is(err, unix.EEXIST) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("lease %s: %w", ip, err)
	}
	last := disk.GetEscapedPath(s.dir, "last_reserved_ip."+rangeID)
	if err = os.WriteFile(last, []byte(ip.String()), 0o600); err != nil {
		return false, err
	}
	return true, nil
}

// linkNew creates path holding content, or fails with EEXIST, without a
// moment where path exists empty.
func linkNew(dir, path, content string) error {
	f, err := os.OpenFile(dir, unix.O_TMPFILE|os.O_WRONLY, 0o600)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EISDIR) {
		return linkNewNamed(dir, path, content)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err = f.WriteString(content); err != nil {
		return err
	}
	return unix.Linkat(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", f.Fd()), unix.AT_FDCWD, path, unix.AT_SYMLINK_FOLLOW)
}

// linkNewNamed is linkNew through a named temporary file (a kill can leave
// it: GC removes it).
func linkNewNamed(dir, path, content string) error {
	f, err := os.CreateTemp(dir, tmpPrefix+"*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, err = f.WriteString(content)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Link(f.Name(), path)
}

// tmpPrefix names linkNewNamed's temporary files.
const tmpPrefix = ".vmcni-lease-"

// GetByID answers the allocator's look for a lease the attachment already
// holds: none, by the engine's contract (hostLocal).
func (s *leaseStore) GetByID(string, string) []net.IP { return nil }

// parseResolvConf reads the DNS settings of a resolv.conf file, as
// host-local does (nameserver, domain, search, options).
func parseResolvConf(path string) (*types.DNS, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var dns types.DNS
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || strings.HasPrefix(fields[0], "#") || strings.HasPrefix(fields[0], ";") {
			continue
		}
		switch fields[0] {
		case "nameserver":
			dns.Nameservers = append(dns.Nameservers, fields[1])
		case "domain":
			dns.Domain = fields[1]
		case "search":
			dns.Search = append(dns.Search, fields[1:]...)
		case "options":
			dns.Options = append(dns.Options, fields[1:]...)
		}
	}
	return &dns, sc.Err()
}
