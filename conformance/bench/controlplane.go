package bench

import (
	"context"
	"time"
)

// ExecIPAMScenario is vm-bridge with the host-local binary (ipamExec)
// instead of the in-process host-local: what the in-process IPAM saves.
const ExecIPAMScenario = "vm-bridge tcfilter, host-local binary"

// Scenario is one way of giving a pod its VM-ready network.
type Scenario struct {
	Name      string
	Reference bool
	nets      []network
}

// LatencyResult is the ADD and DEL latency of one scenario.
type LatencyResult struct {
	Scenario Scenario
	Add, Del Sample
	Failures int
}

// Scenarios returns the control-plane scenarios: the reference chains, and
// vm-bridge in every mode, standalone and chained after the reference bridge.
func (e *Env) Scenarios() []Scenario {
	ref := network{list: e.conflist("bench-ref", e.refBridgePlugin()), ifName: "eth0"}
	refTap := network{list: e.conflist("bench-reftap", map[string]any{"type": "tap", "multiQueue": false}), ifName: "tap0"}
	out := []Scenario{
		{Name: "ref bridge+host-local", Reference: true, nets: []network{ref}},
		{Name: "ref bridge+host-local + tap", Reference: true, nets: []network{ref, refTap}},
	}
	for _, mode := range []string{"tcfilter", "bridge", "macvtap"} {
		out = append(out, Scenario{Name: "vm-bridge " + mode, nets: []network{
			{list: e.conflist("bench-vm-"+mode, e.vmBridge(mode)), ifName: "eth0"},
		}})
	}
	execIPAM := e.vmBridge("tcfilter")
	execIPAM["ipamExec"] = true
	out = append(out, Scenario{Name: ExecIPAMScenario, nets: []network{
		{list: e.conflist("bench-vm-exec", execIPAM), ifName: "eth0"},
	}})
	for _, mode := range []string{"tcfilter", "bridge", "macvtap"} {
		out = append(out, Scenario{Name: "ref bridge → vm-bridge " + mode, nets: []network{
			{list: e.conflist("bench-ch-"+mode, e.refBridgePlugin(), e.chainedVMBridge(mode)), ifName: "eth0"},
		}})
	}
	return out
}

// settleTime is the pause after a sample's pod netns is deleted: the
// kernel destroys a netns in the background (a kworker that takes the
// rtnl lock and waits for RCU), and without the pause that work lands in
// the next sample, whichever scenario it is (measured: vm-bridge ADD
// 21.7 ms and DEL 35.9 ms right after a netns deletion, 16.6 and 25.5 ms
// 100 ms later).
const settleTime = 150 * time.Millisecond

func settle() { time.Sleep(settleTime) }

// ControlPlane measures every scenario N times, interleaved, each sample
// in a new pod netns deleted after it.
func (e *Env) ControlPlane(ctx context.Context, scenarios []Scenario) []LatencyResult {
	cni := e.cni()
	results := make([]LatencyResult, len(scenarios))
	for i := range scenarios {
		results[i].Scenario = scenarios[i]
	}
	for round := 0; round < e.N; round++ {
		for i, sc := range scenarios {
			p, err := newPod()
			if err != nil {
				results[i].Failures++
				continue
			}
			start := time.Now()
			err = e.add(ctx, cni, p, sc.nets)
			addTime := time.Since(start)
			start = time.Now()
			delErr := e.del(ctx, cni, p, sc.nets)
			delTime := time.Since(start)
			p.remove()
			settle()
			if err != nil || delErr != nil {
				e.Log("%s: %v %v", sc.Name, err, delErr)
				results[i].Failures++
				continue
			}
			results[i].Add = append(results[i].Add, addTime)
			results[i].Del = append(results[i].Del, delTime)
		}
	}
	return results
}
