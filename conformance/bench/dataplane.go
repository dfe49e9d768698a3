package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync/atomic"
	"time"

	current "github.com/containernetworking/cni/pkg/types/100"
	"golang.org/x/sys/unix"

	"github.com/vmcni/vmcni/pkg/hint"
	"github.com/vmcni/vmcni/pkg/netns"
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

// DataPlane measures frames/s for the bare veth and each vm-bridge mode.
func (e *Env) DataPlane(ctx context.Context, d time.Duration) ([]DataPlaneResult, error) {
	wirings := []string{"bare veth", "tcfilter", "bridge", "macvtap"}
	var out []DataPlaneResult
	for _, w := range wirings {
		r, err := e.dataPlaneOne(ctx, w, d)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", w, err)
		}
		out = append(out, r)
	}
	for i := range out {
		out[i].InRatio = out[i].InFPS / out[0].InFPS
		out[i].OutRatio = out[i].OutFPS / out[0].OutFPS
	}
	return out, nil
}

func (e *Env) dataPlaneOne(ctx context.Context, wiring string, d time.Duration) (DataPlaneResult, error) {
	r := DataPlaneResult{Wiring: wiring}
	cni := e.cni()
	nets := []network{{list: e.conflist("bench-dp-bare", e.refBridgePlugin()), ifName: "eth0"}}
	if wiring != "bare veth" {
		nets[0].list = e.conflist("bench-dp-"+wiring, e.vmBridge(wiring))
	}
	p, err := newPod()
	if err != nil {
		return r, err
	}
	defer p.remove()
	raw, err := cni.AddNetworkList(ctx, nets[0].list, p.runtime("eth0"))
	if err != nil {
		return r, err
	}
	defer func() { _ = e.del(ctx, cni, p, nets) }()
	res, err := current.NewResultFromResult(raw)
	if err != nil {
		return r, err
	}
	hostVeth := res.Interfaces[1].Name
	guest, vm, err := e.vmSide(res, p, wiring)
	if err != nil {
		return r, err
	}
	defer vm.close()
	host, err := packetSocket("", hostVeth)
	if err != nil {
		return r, err
	}
	defer host.close()

	in := frame(guest, net.HardwareAddr{0x02, 0, 0, 0, 0, 0x98})
	out := frame(net.HardwareAddr{0x02, 0, 0, 0, 0, 0x99}, guest)
	r.InFPS = blast(host, vm, in, d)
	r.OutFPS = blast(vm, host, out, d)
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
