package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/vmcni/vmcni/internal/link"
)

// ScaleResult is one concurrency level: N ADDs at once, then N DELs.
type ScaleResult struct {
	Concurrency       int
	AddWall, DelWall  time.Duration
	Add, Del          Sample
	AddFails, DelFail int
	// HostLocalExecs ADDs of the host-local binary ran on the same range
	// at the same time (other plugins sharing it); HostLocalFails failed.
	HostLocalExecs, HostLocalFails int
	// Duplicates counts addresses handed out twice among all the ADDs.
	Duplicates int
}

// Scale runs, for each level, that many concurrent ADDs of vm-bridge
// (tcfilter, standalone, one host bridge) and as many ADDs of the
// host-local binary on the same range (as another plugin sharing it
// would), then as many concurrent DELs of each, and counts addresses
// handed out twice.
func (e *Env) Scale(ctx context.Context, levels []int) []ScaleResult {
	cni := e.cni()
	vmb := e.vmBridge("tcfilter")
	nets := []network{{list: e.conflist("bench-scale", vmb), ifName: "eth0"}}
	hostLocalStdin := mustJSON(map[string]any{"cniVersion": "1.1.0", "name": "bench-scale", "ipam": vmb["ipam"]})
	hostLocal := func(cmd string, i int) ([]byte, error) {
		out, _, err := e.execPlugin(ctx, filepath.Join(e.BinDir, "host-local"), []string{"CNI_COMMAND=" + cmd,
			fmt.Sprintf("CNI_CONTAINERID=bench-hl-%d", i), "CNI_NETNS=/var/run/netns/none", "CNI_IFNAME=eth0",
			"CNI_PATH=" + e.BinDir}, hostLocalStdin)
		return out, err
	}
	var out []ScaleResult
	for _, n := range levels {
		r := ScaleResult{Concurrency: n}
		pods := make([]*pod, 0, n)
		for i := 0; i < n; i++ {
			p, err := newPod()
			if err == nil {
				pods = append(pods, p)
			}
		}
		run := func(fn func(*pod) error) (time.Duration, Sample, int) {
			var mu sync.Mutex // guards samples and fails
			var samples Sample
			fails := 0
			var wg sync.WaitGroup
			start := time.Now()
			for _, p := range pods {
				wg.Add(1)
				go func() {
					defer wg.Done()
					t0 := time.Now()
					err := fn(p)
					d := time.Since(t0)
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						fails++
						e.Log("scale %d: %v", n, err)
						return
					}
					samples = append(samples, d)
				}()
			}
			wg.Wait()
			return time.Since(start), samples, fails
		}
		var mu sync.Mutex
		var ips []string
		// record keeps one ADD's addresses (vm-bridge's result lists the
		// pod's address again on the VM pseudo-interface: once per ADD).
		record := func(res types.Result) {
			if cur, err := current.NewResultFromResult(res); err == nil {
				mu.Lock()
				defer mu.Unlock()
				own := map[string]bool{}
				for _, ip := range cur.IPs {
					if a := ip.Address.IP.String(); !own[a] {
						own[a] = true
						ips = append(ips, a)
					}
				}
			}
		}
		var hl sync.WaitGroup
		r.HostLocalExecs = n
		for i := range n {
			hl.Add(1)
			go func() {
				defer hl.Done()
				out, err := hostLocal("ADD", i)
				var res current.Result
				if err == nil {
					err = json.Unmarshal(out, &res)
				}
				if err != nil {
					mu.Lock()
					r.HostLocalFails++
					mu.Unlock()
					e.Log("scale %d: host-local: %v", n, err)
					return
				}
				record(&res)
			}()
		}
		r.AddWall, r.Add, r.AddFails = run(func(p *pod) error {
			res, err := cni.AddNetworkList(ctx, nets[0].list, p.runtime(nets[0].ifName))
			if err == nil {
				record(res)
			}
			return err
		})
		hl.Wait()
		seen := map[string]bool{}
		for _, ip := range ips {
			if seen[ip] {
				r.Duplicates++
			}
			seen[ip] = true
		}
		r.DelWall, r.Del, r.DelFail = run(func(p *pod) error { return e.del(ctx, cni, p, nets) })
		for i := range n {
			if _, err := hostLocal("DEL", i); err != nil {
				e.Log("scale %d: host-local DEL: %v", n, err)
			}
		}
		r.AddFails += n - len(pods)
		for _, p := range pods {
			p.remove()
		}
		out = append(out, r)
	}
	return out
}

// GrowthResult is ADD latency with Present attachments already on the
// host bridge: vm-bridge's, and the reference bridge plugin's on the same
// (loaded) bridge, to tell vm-bridge's own growth from the kernel's.
type GrowthResult struct {
	Present int
	Add     Sample
	RefAdd  Sample
	// StaticAdd is vm-bridge with the static IPAM plugin (no lease scan):
	// what is left is vm-bridge's and the kernel's.
	StaticAdd Sample
	// KernelVeth is the kernel alone: one veth made in-process (no exec,
	// no IPAM), its host end joining the loaded bridge and its peer in a
	// fresh netns, as vm-bridge's first link request does.
	KernelVeth Sample
}

// Growth measures ADD p50 (samples ADD+DEL pairs) with 0, 100, 500...
// attachments already present.
func (e *Env) Growth(ctx context.Context, present []int, samples int) []GrowthResult {
	cni := e.cni()
	nets := []network{{list: e.conflist("bench-growth", e.vmBridge("tcfilter")), ifName: "eth0"}}
	ref := e.refBridgePlugin()
	ref["bridge"] = vmcniBridge
	ref["isGateway"] = false // the bridge already carries vm-bridge's gateway
	ref["ipam"] = e.hostLocal("10.240.0.0/16")
	// same network name and IPAM as vm-bridge's: host-local scans every
	// lease of the network on each ADD, and both must pay for the same ones
	refNets := []network{{list: e.conflist("bench-growth", ref), ifName: "eth0"}}
	static := e.vmBridge("tcfilter")
	static["ipam"] = map[string]any{"type": "static", "addresses": []map[string]string{{"address": "10.243.0.2/16"}}}
	staticNets := []network{{list: e.conflist("bench-growth-static", static), ifName: "eth0"}}
	var background []*pod
	defer func() {
		for _, p := range background {
			_ = e.del(ctx, cni, p, nets)
			p.remove()
		}
	}()
	var out []GrowthResult
	for _, want := range present {
		for len(background) < want {
			p, err := newPod()
			if err != nil {
				break
			}
			if err := e.add(ctx, cni, p, nets); err != nil {
				p.remove()
				e.Log("growth: %v", err)
				break
			}
			background = append(background, p)
		}
		r := GrowthResult{Present: len(background)}
		for i := 0; i < samples; i++ {
			if d, ok := e.timedAdd(ctx, cni, nets); ok {
				r.Add = append(r.Add, d)
			}
			if d, ok := e.timedAdd(ctx, cni, refNets); ok {
				r.RefAdd = append(r.RefAdd, d)
			}
			if d, ok := e.timedAdd(ctx, cni, staticNets); ok {
				r.StaticAdd = append(r.StaticAdd, d)
			}
			if d, err := e.timedVeth(ctx); err != nil {
				e.Log("growth: %v", err)
			} else {
				r.KernelVeth = append(r.KernelVeth, d)
			}
		}
		out = append(out, r)
	}
	return out
}

// timedVeth times the kernel's part of vm-bridge's first link request
// (vethIntoBridge) in a fresh pod netns.
func (e *Env) timedVeth(ctx context.Context) (time.Duration, error) {
	p, err := newPod()
	if err != nil {
		return 0, err
	}
	defer func() { p.remove(); settle() }()
	host, took, err := vethIntoBridge(ctx, p)
	if err != nil {
		return 0, err
	}
	return took, link.DeleteByName(host)
}

// timedAdd times one ADD of nets in a fresh pod, then deletes it.
func (e *Env) timedAdd(ctx context.Context, cni *libcni.CNIConfig, nets []network) (time.Duration, bool) {
	p, err := newPod()
	if err != nil {
		return 0, false
	}
	defer func() { p.remove(); settle() }()
	t0 := time.Now()
	err = e.add(ctx, cni, p, nets)
	d := time.Since(t0)
	_ = e.del(ctx, cni, p, nets)
	if err != nil {
		e.Log("growth: %v", err)
	}
	return d, err == nil
}
