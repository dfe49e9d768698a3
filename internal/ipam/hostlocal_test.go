package ipam_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/vmcni/vmcni/internal/ipam"
	"github.com/vmcni/vmcni/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

const network = "vmct-hl"

// hostLocal returns the in-process and binary delegates of one host-local
// range in a fresh data dir, and the range's lease directory.
func hostLocal(t *testing.T, subnet string) (in, bin ipam.Delegate, dir string) {
	t.Setenv("CNI_PATH", testutil.Binaries(t))
	data := t.TempDir()
	ipamConf := map[string]any{"type": "host-local", "dataDir": data,
		"ranges": [][]map[string]string{{{"subnet": subnet}}}, "routes": []map[string]string{{"dst": "0.0.0.0/0"}}}
	conf := map[string]any{"cniVersion": "1.1.0", "name": network, "type": "vm-bridge", "ipam": ipamConf}
	raw, err := json.Marshal(conf)
	if err != nil {
		t.Fatal(err)
	}
	in = ipam.Delegate{Type: ipam.HostLocal, Config: raw}
	bin = in
	bin.Exec = true
	return in, bin, filepath.Join(data, network)
}

func key(id string) ipam.Attachment {
	return ipam.Attachment{ContainerID: id, IfName: "eth0", Netns: "/var/run/netns/" + id}
}

// leaseFiles maps each lease file (IP) under dir to its content.
func leaseFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	entries, _ := os.ReadDir(dir)
	for _, en := range entries {
		if en.Name() == "lock" || strings.HasPrefix(en.Name(), "last_reserved_ip") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, en.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[en.Name()] = string(data)
	}
	return out
}

// TestHostLocalSharesLeasesWithTheBinary: the in-process host-local and
// the reference binary on one range take turns (round robin from the same
// last_reserved_ip), write the same lease format, give results of the same
// shape, and each releases and checks the other's leases.
func TestHostLocalSharesLeasesWithTheBinary(t *testing.T) {
	in, bin, dir := hostLocal(t, "10.77.0.0/24")
	ctx := context.Background()
	r1, err := in.Add(ctx, key("c1"))
	if err != nil {
		t.Fatal(err)
	}
	r2, err := bin.Add(ctx, key("c2"))
	if err != nil {
		t.Fatal(err)
	}
	r3, err := in.Add(ctx, key("c3"))
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range []*current.Result{r1, r2, r3} {
		want := fmt.Sprintf("10.77.0.%d/24", i+2)
		if len(r.IPs) != 1 || r.IPs[0].Address.String() != want || r.IPs[0].Gateway.String() != "10.77.0.1" ||
			len(r.Routes) != 1 || r.Routes[0].Dst.String() != "0.0.0.0/0" {
			t.Fatalf("result %d: %+v, want %s via 10.77.0.1 and the default route", i+1, r, want)
		}
	}
	want := map[string]string{"10.77.0.2": "c1\r\neth0", "10.77.0.3": "c2\r\neth0", "10.77.0.4": "c3\r\neth0"}
	if got := leaseFiles(t, dir); !maps.Equal(got, want) {
		t.Fatalf("leases %q, want %q", got, want)
	}
	if last, _ := os.ReadFile(filepath.Join(dir, "last_reserved_ip.0")); string(last) != "10.77.0.4" {
		t.Fatalf("last_reserved_ip.0 = %q", last)
	}
	withLeases := in
	withLeases.Leases = ipam.Leases(r1)
	for _, d := range []ipam.Delegate{in, withLeases, bin} {
		if err = d.Check(ctx, key("c1")); err != nil {
			t.Fatalf("CHECK (exec %v, leases %v): %v", d.Exec, d.Leases, err)
		}
	}
	if err = bin.Del(ctx, key("c1")); err != nil { // the binary releases an in-process lease
		t.Fatal(err)
	}
	if err = withLeases.Check(ctx, key("c1")); err == nil {
		t.Fatal("CHECK of a released lease passed")
	}
	if err = in.Del(ctx, key("c2")); err != nil { // and the in-process one the binary's (scan)
		t.Fatal(err)
	}
	withLeases.Leases = ipam.Leases(r3)
	if err = withLeases.Del(ctx, key("c3")); err != nil { // straight to the file
		t.Fatal(err)
	}
	if got := leaseFiles(t, dir); len(got) != 0 {
		t.Fatalf("leases left: %q", got)
	}
}

// TestHostLocalConcurrentWithBinary: 100 in-process ADDs and 100 ADDs of
// the reference binary on one /24, 16 at a time, interleaved: 200
// distinct addresses, each lease naming its owner; then the same mix of
// DELs leaves no lease.
func TestHostLocalConcurrentWithBinary(t *testing.T) {
	in, bin, dir := hostLocal(t, "10.78.0.0/24")
	const n = 200
	results := make([]*current.Result, n)
	run(t, n, func(i int) (err error) {
		d := map[bool]ipam.Delegate{true: in, false: bin}[i%2 == 0]
		results[i], err = d.Add(context.Background(), key(fmt.Sprintf("c%d", i)))
		return err
	})
	seen := map[string]int{}
	leases := leaseFiles(t, dir)
	for i, r := range results {
		ip := r.IPs[0].Address.IP.String()
		if j, dup := seen[ip]; dup {
			t.Fatalf("%s handed to c%d and c%d", ip, j, i)
		}
		seen[ip] = i
		if leases[ip] != fmt.Sprintf("c%d\r\neth0", i) {
			t.Fatalf("lease %s holds %q, want c%d", ip, leases[ip], i)
		}
	}
	run(t, n, func(i int) error {
		d := map[bool]ipam.Delegate{true: in, false: bin}[i%3 == 0]
		return d.Del(context.Background(), key(fmt.Sprintf("c%d", i)))
	})
	if got := leaseFiles(t, dir); len(got) != 0 {
		t.Fatalf("%d leases left", len(got))
	}
}

// run calls fn(0..n-1), 16 at a time, and fails t on any error.
func run(t *testing.T, n int, fn func(int) error) {
	t.Helper()
	sem := make(chan struct{}, 16)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = fn(i)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%d: %v", i, err)
		}
	}
}

// TestHostLocalDelKeepsOthersLeases: DEL given leases that now belong to
// another attachment (released and re-leased meanwhile) leaves them.
func TestHostLocalDelKeepsOthersLeases(t *testing.T) {
	in, _, dir := hostLocal(t, "10.79.0.0/24")
	ctx := context.Background()
	r, err := in.Add(ctx, key("other"))
	if err != nil {
		t.Fatal(err)
	}
	stale := in
	stale.Leases = ipam.Leases(r)
	if err = stale.Del(ctx, key("me")); err != nil {
		t.Fatal(err)
	}
	if got := leaseFiles(t, dir); len(got) != 1 {
		t.Fatalf("leases %q: another attachment's lease went", got)
	}
}

// TestHostLocalRequestedIP: an address asked for in CNI_ARGS (IP=) is
// leased, and asking for it again fails.
func TestHostLocalRequestedIP(t *testing.T) {
	in, _, _ := hostLocal(t, "10.80.0.0/24")
	ctx := context.Background()
	a := key("c1")
	a.Args = "IP=10.80.0.77"
	r, err := in.Add(ctx, a)
	if err != nil || r.IPs[0].Address.IP.String() != "10.80.0.77" {
		t.Fatalf("ADD: %+v %v", r, err)
	}
	a.ContainerID = "c2"
	if _, err = in.Add(ctx, a); err == nil || !strings.Contains(err.Error(), "not available") {
		t.Fatalf("second ADD of the address: %v", err)
	}
}

// TestHostLocalGC: GC keeps the valid attachments' leases, the lock and
// last_reserved_ip, and removes the others' and a temporary file a killed
// ADD left.
func TestHostLocalGC(t *testing.T) {
	in, _, dir := hostLocal(t, "10.81.0.0/24")
	ctx := context.Background()
	for _, id := range []string{"c1", "c2", "c3"} {
		if _, err := in.Add(ctx, key(id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, ".vmcni-lease-123"), []byte("c9\r\neth0"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := in.GC(ctx, map[types.GCAttachment]bool{{ContainerID: "c2", IfName: "eth0"}: true}); err != nil {
		t.Fatal(err)
	}
	if got := leaseFiles(t, dir); !maps.Equal(got, map[string]string{"10.81.0.3": "c2\r\neth0"}) {
		t.Fatalf("leases after GC: %q", got)
	}
	for _, f := range []string{"lock", "last_reserved_ip.0"} {
		if !testutil.FileExists(filepath.Join(dir, f)) {
			t.Fatalf("GC removed %s", f)
		}
	}
}
