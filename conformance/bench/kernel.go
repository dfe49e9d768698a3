package bench

import (
	"context"
	"time"

	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/netns"
)

// KernelDeleteResult is the kernel's part of a DEL, measured in-process
// (no exec, no IPAM): deleting one attachment's links in one batch (its
// link group), laid out as a vm-bridge mode leaves them.
type KernelDeleteResult struct {
	Layout string
	Delete Sample
}

// kernelLayouts are the pod netns layouts measured: tcfilter's (the pod
// veth, whose host end is a port of the host bridge, and a tap) and
// bridge mode's (the same two as ports of a bridge in the pod netns).
var kernelLayouts = []string{"tcfilter", "bridge"}

// KernelDelete measures deleting each layout's link group samples times,
// interleaved, each in a fresh pod netns.
func (e *Env) KernelDelete(ctx context.Context, samples int) []KernelDeleteResult {
	out := make([]KernelDeleteResult, len(kernelLayouts))
	for i, layout := range kernelLayouts {
		out[i].Layout = layout
	}
	for s := 0; s < samples; s++ {
		for i, layout := range kernelLayouts {
			if d, err := e.timedGroupDelete(ctx, layout); err != nil {
				e.Log("kernel delete %s: %v", layout, err)
			} else {
				out[i].Delete = append(out[i].Delete, d)
			}
		}
	}
	return out
}

// kernelGroup is the link group of the measured attachment.
const kernelGroup = 0x40b0b0b0

func (e *Env) timedGroupDelete(ctx context.Context, layout string) (time.Duration, error) {
	p, err := newPod()
	if err != nil {
		return 0, err
	}
	defer func() { p.remove(); settle() }()
	host, _, err := vethIntoBridge(ctx, p)
	defer func() { _ = link.DeleteByName(host) }()
	if err != nil {
		return 0, err
	}
	if err = netns.Do(p.ns, func() error { return buildLayout(ctx, layout) }); err != nil {
		return 0, err
	}
	var d time.Duration
	err = netns.Do(p.ns, func() error {
		t0 := time.Now()
		delErr := link.DeleteGroup(kernelGroup)
		d = time.Since(t0)
		return delErr
	})
	return d, err
}

// vethIntoBridge creates the pod interface eth0 in p's netns with one
// request, as vm-bridge's first link request does: a veth whose host end
// (named after the netns, returned) joins the bench bridge. took is that
// request alone.
func vethIntoBridge(ctx context.Context, p *pod) (host string, took time.Duration, err error) {
	host = "vmctv" + p.name[len("vmctb"):] // 15 bytes, like the netns name
	br, _, err := link.EnsureBridge(ctx, vmcniBridge, 1500)
	if err != nil {
		return host, 0, err
	}
	podNS, err := netns.Open(p.ns)
	if err != nil {
		return host, 0, err
	}
	defer podNS.Close()
	t0 := time.Now()
	_, err = link.CreateVeth(ctx, link.Veth{
		HostName: host, PeerName: "eth0", PeerNetnsFd: int(podNS.Fd()), MTU: 1500, MasterIndex: br.Attrs().Index,
	})
	return host, time.Since(t0), err
}

// buildLayout puts the pod interface eth0 and a new tap in kernelGroup,
// wired as layout, in the calling thread's netns.
func buildLayout(ctx context.Context, layout string) error {
	pod, err := link.ByName("eth0")
	if err == nil {
		err = link.Apply(pod, link.Settings{Group: kernelGroup})
	}
	if err != nil {
		return err
	}
	tap, err := link.CreateTap(ctx, link.Tap{Name: "tap0", MTU: 1500, VnetHdr: true, LinkGroup: kernelGroup})
	if err != nil {
		return err
	}
	if layout != "bridge" {
		return link.RedirectIngress(pod, tap)
	}
	br, err := link.CreateBridge(ctx, "br0", 1500)
	if err == nil {
		err = link.Apply(br, link.Settings{Group: kernelGroup})
	}
	if err == nil {
		err = link.SetMaster(tap, br)
	}
	if err == nil {
		err = link.SetMaster(pod, br)
	}
	return err
}
