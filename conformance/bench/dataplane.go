package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sort"
	"sync/atomic"
	"time"

	current "github.com/containernetworking/cni/pkg/types/100"
	"golang.org/x/sys/unix"

	"github.com/vmcni/vmcni/internal/netns"
	"github.com/vmcni/vmcni/pkg/hint"
	"github.com/vmcni/vmcni/vmnet/launcher"
)

// benchEtherType marks the benchmark's frames (IEEE local experimental).
const benchEtherType = 0x88b5

// vnetHdrLen is the virtio-net header a VNET_HDR tap/macvtap fd carries.
const vnetHdrLen = 10

// DataPlaneResult is the frame rate of one wiring in both directions.
type DataPlaneResult struct {
	Wiring            string
	InFPS, OutFPS     float64 // toward the VM-facing device, and back
	InRatio, OutRatio float64 // against the bare veth
}

// endpoint is a way to move raw frames: an fd and whether frames carry a
// virtio-net header.
type endpoint struct {
	fd      int
	vnetHdr bool
	close   func()
}

// DataPlane measures frames/s for the bare veth and each vm-bridge mode:
// all four wirings are set up first, then measured in rounds (each round
// visits every wiring, both directions), and the median of the rounds is
// reported, so load drift on a shared machine hits all wirings alike.
func (e *Env) DataPlane(ctx context.Context, d time.Duration, rounds int) ([]DataPlaneResult, error) {
	wirings := []string{"bare veth", "tcfilter", "bridge", "macvtap"}
	rigs := make([]*rig, 0, len(wirings))
	defer func() {
		for _, r := range rigs {
			r.close()
		}
	}()
	for _, w := range wirings {
		r, err := e.newRig(ctx, w)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", w, err)
		}
		rigs = append(rigs, r)
	}
	in := make([][]float64, len(rigs))
	out := make([][]float64, len(rigs))
	for round := 0; round < rounds; round++ {
		for i, r := range rigs {
			in[i] = append(in[i], blast(r.host, r.vm, r.toVM, d))
			out[i] = append(out[i], blast(r.vm, r.host, r.fromVM, d))
		}
	}
	res := make([]DataPlaneResult, len(rigs))
	for i, r := range rigs {
		res[i] = DataPlaneResult{Wiring: r.wiring, InFPS: median(in[i]), OutFPS: median(out[i])}
	}
	for i := range res {
		res[i].InRatio = res[i].InFPS / res[0].InFPS
		res[i].OutRatio = res[i].OutFPS / res[0].OutFPS
	}
	return res, nil
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// rig is one wiring ready to measure: the host-side packet socket, the
// VMM-side endpoint and the frames to send each way.
type rig struct {
	wiring       string
	host, vm     *endpoint
	toVM, fromVM []byte
	close        func()
}

func (e *Env) newRig(ctx context.Context, wiring string) (*rig, error) {
	cni := e.cni()
	nets := []network{{list: e.conflist("bench-dp-bare", e.refBridgePlugin()), ifName: "eth0"}}
	if wiring != "bare veth" {
		nets[0].list = e.conflist("bench-dp-"+wiring, e.vmBridge(wiring))
	}
	p, err := newPod()
	if err != nil {
		return nil, err
	}
	r := &rig{wiring: wiring}
	var closers []func()
	r.close = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	closers = append(closers, p.remove)
	raw, err := cni.AddNetworkList(ctx, nets[0].list, p.runtime("eth0"))
	if err != nil {
		r.close()
		return nil, err
	}
	closers = append(closers, func() { _ = e.del(ctx, cni, p, nets) })
	res, err := current.NewResultFromResult(raw)
	if err != nil {
		r.close()
		return nil, err
	}
	guest, vm, err := e.vmSide(res, p, wiring)
	if err != nil {
		r.close()
		return nil, err
	}
	closers = append(closers, vm.close)
	host, err := packetSocket("", res.Interfaces[1].Name)
	if err != nil {
		r.close()
		return nil, err
	}
	closers = append(closers, host.close)
	r.host, r.vm = host, vm
	r.toVM = frame(guest, net.HardwareAddr{0x02, 0, 0, 0, 0, 0x98})
	// From the VM, address the host bridge itself: unknown unicast would be
	// flooded to every other pod on the bridge and bill this wiring for it.
	bridgeMAC, err := net.ParseMAC(res.Interfaces[0].Mac)
	if err != nil {
		r.close()
		return nil, err
	}
	r.fromVM = frame(bridgeMAC, guest)
	return r, nil
}

// vmSide opens what a VMM would: the tap or macvtap fd, or (bare veth) a
// packet socket on the pod interface. It returns the guest MAC too.
func (e *Env) vmSide(res *current.Result, p *pod, wiring string) (net.HardwareAddr, *endpoint, error) {
	if wiring == "bare veth" {
		mac, err := net.ParseMAC(res.Interfaces[2].Mac)
		if err != nil {
			return nil, nil, err
		}
		ep, err := packetSocket(p.ns, "eth0")
		return mac, ep, err
	}
	h, err := hint.Read(e.stateDir(), p.id, "eth0")
	if err != nil {
		return nil, nil, err
	}
	mac, _ := net.ParseMAC(h.Guest.MAC)
	var files []*os.File
	switch h.Kind {
	case hint.KindTap:
		files, err = launcher.OpenTap(p.ns, h.Tap.Name, 1, h.Tap.VnetHdr)
	case hint.KindMacvtap:
		files, err = launcher.OpenMacvtap(h.Macvtap.Major, h.Macvtap.Minor, 1)
	default:
		err = fmt.Errorf("unexpected kind %q", h.Kind)
	}
	if err != nil {
		return nil, nil, err
	}
	f := files[0]
	return mac, &endpoint{fd: int(f.Fd()), vnetHdr: true, close: func() { _ = f.Close() }}, nil
}

func (e *Env) stateDir() string { return e.WorkDir + "/state" }

// packetSocket opens an AF_PACKET socket bound to ifName in the netns at
// nsPath ("" = the current one).
func packetSocket(nsPath, ifName string) (*endpoint, error) {
	var fd int
	open := func() error {
		ifi, err := net.InterfaceByName(ifName)
		if err != nil {
			return err
		}
		proto := htons(unix.ETH_P_ALL)
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(proto))
		if err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index})
	}
	var err error
	if nsPath == "" {
		err = open()
	} else {
		err = netns.Do(nsPath, open)
	}
	if err != nil {
		return nil, err
	}
	return &endpoint{fd: fd, close: func() { _ = unix.Close(fd) }}, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// frame builds a 64-byte Ethernet frame with the benchmark's EtherType.
func frame(dst, src net.HardwareAddr) []byte {
	f := make([]byte, 64)
	copy(f[0:6], dst)
	copy(f[6:12], src)
	binary.BigEndian.PutUint16(f[12:14], benchEtherType)
	return f
}

// blast writes frames to from for d while counting the benchmark frames
// that arrive at to; it returns frames/s received.
func blast(from, to *endpoint, payload []byte, d time.Duration) float64 {
	var received atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		_ = unix.SetNonblock(to.fd, true) // drain each wakeup until EAGAIN
		buf := make([]byte, 2048)
		fds := []unix.PollFd{{Fd: int32(to.fd), Events: unix.POLLIN}}
		for {
			select {
			case <-stop:
				return
			default:
			}
			if n, _ := unix.Poll(fds, 50); n <= 0 {
				continue
			}
			for {
				n, err := unix.Read(to.fd, buf)
				if err != nil {
					break
				}
				off := 0
				if to.vnetHdr {
					off = vnetHdrLen
				}
				if n >= off+14 && binary.BigEndian.Uint16(buf[off+12:off+14]) == benchEtherType {
					received.Add(1)
				}
			}
		}
	}()
	out := payload
	if from.vnetHdr {
		out = append(make([]byte, vnetHdrLen), payload...)
	}
	runtime.LockOSThread()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		for i := 0; i < 64; i++ {
			if _, err := unix.Write(from.fd, out); err != nil && !errors.Is(err, unix.ENOBUFS) && !errors.Is(err, unix.EAGAIN) {
				break
			}
		}
	}
	runtime.UnlockOSThread()
	time.Sleep(100 * time.Millisecond) // let queued frames land
	close(stop)
	<-done
	return float64(received.Load()) / d.Seconds()
}
