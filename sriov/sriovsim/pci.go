package sriovsim

import (
	"errors"
	"fmt"
	"os"
	"path"
	"runtime"
	"strings"
	"time"
	"unsafe"

	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// sharedAttrs are the attributes every process writes to (a PCI address
// each), which are named pipes: every drivers/<drv>/bind and unbind, and
// drivers_probe.
func sharedAttrs() []string {
	var rels []string
	for _, d := range drivers {
		rels = append(rels, "sys/bus/pci/drivers/"+d+"/bind", "sys/bus/pci/drivers/"+d+"/unbind")
	}
	return append(rels, "sys/bus/pci/drivers_probe")
}

// sharedAttr is a shared attribute's pipe, open for reading and writing, so
// that writers never block in open and reads never see end of file.
type sharedAttr struct {
	rel string
	fd  int
}

// start opens the shared attributes' pipes and watches each device's
// driver_override (inotify IN_CLOSE_WRITE), starts the poller, and starts
// the kernel goroutine, which subscribes to the link events of the host
// netns and of every netns with an id in it (see linkSocket) and creates
// the VF netdevs before it serves.
func (k *Kernel) start() {
	for _, rel := range sharedAttrs() {
		fd, err := unix.Open(k.Abs(rel), unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		k.must(err)
		k.shared = append(k.shared, &sharedAttr{rel: rel, fd: fd})
	}
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	k.must(err)
	k.inotify = fd
	for addr := range k.groups {
		rel := devDir(addr) + "/driver_override"
		wd, err := unix.InotifyAddWatch(fd, k.Abs(rel), unix.IN_CLOSE_WRITE)
		k.must(err)
		k.wds[wd] = rel
	}
	k.polling = true
	go k.poll()

	ready := make(chan error, 1)
	k.started = true
	go func() {
		defer close(k.done)
		// Never unlocked: the thread enters the host netns and dies with
		// the goroutine.
		runtime.LockOSThread()
		err := vnetns.Set(k.host)
		if err != nil {
			ready <- fmt.Errorf("enter host netns: %w", err)
			return
		}
		defer k.removeNetdevs()
		if err = k.subscribe(); err == nil {
			k.subscribed = true
			err = k.createNetdevs()
		}
		ready <- err
		if err == nil {
			k.serve()
		}
	}()
	k.must(<-ready)
}

// subscribe opens the link event socket in the calling thread's netns (the
// host's) and starts its reader, which hands the events to the kernel
// goroutine through links and closes links once stop closes the socket.
func (k *Kernel) subscribe() error {
	s, err := openLinkSocket(int(k.host), 4<<20)
	if err != nil {
		return fmt.Errorf("subscribe to link events: %w", err)
	}
	k.sock = s
	go func() {
		defer close(k.links)
		for {
			msgs, errs, err := s.receive()
			switch {
			case errors.Is(err, os.ErrClosed):
				return
			case errors.Is(err, unix.EINTR):
				continue
			case errors.Is(err, unix.ENOBUFS): // events were lost; later ones come
				k.fail("link events: %v", err)
				continue
			case err != nil:
				k.fail("link events: %v", err)
				return
			}
			for _, e := range errs {
				k.fail("link events: %v", e)
			}
			for _, m := range msgs {
				k.links <- m // stop drains links until the reader is gone
			}
		}
	}()
	return nil
}

// stop ends the kernel goroutine (which deletes the links it created) and
// the event sources.
func (k *Kernel) stop() {
	k.mu.Lock()
	k.stopped = true
	k.mu.Unlock()
	close(k.quit)
	if k.started {
		<-k.done
	}
	if k.polling {
		<-k.pollDone
	}
	if k.subscribed {
		k.sock.close()
		for range k.links {
			// drain until the reader closes the channel
		}
	}
	for _, a := range k.shared {
		_ = unix.Close(a.fd)
	}
	if k.inotify >= 0 {
		_ = unix.Close(k.inotify)
	}
	_ = k.host.Close()
}

// pollInterval bounds how long the poller takes to notice quit.
const pollInterval = 100 * time.Millisecond

// poll tells the kernel goroutine when a write is waiting, in a pipe or as
// an inotify event; the kernel goroutine reads them (drain).
func (k *Kernel) poll() {
	defer close(k.pollDone)
	fds := []unix.PollFd{{Fd: int32(k.inotify), Events: unix.POLLIN}}
	for _, a := range k.shared {
		fds = append(fds, unix.PollFd{Fd: int32(a.fd), Events: unix.POLLIN})
	}
	for {
		n, err := unix.Poll(fds, int(pollInterval/time.Millisecond))
		select {
		case <-k.quit:
			return
		default:
		}
		if err != nil && !errors.Is(err, unix.EINTR) {
			k.fail("poll the sysfs attributes: %v", err)
			return
		}
		if n <= 0 {
			continue
		}
		// Level-triggered: until the kernel goroutine drains, the next
		// poll returns at once and this send waits for it.
		select {
		case k.kick <- struct{}{}:
		case <-k.quit:
			return
		}
	}
}

// serve is the kernel goroutine's loop: it applies writes and link events
// one at a time, and answers whether it has caught up.
func (k *Kernel) serve() {
	links := k.links
	for {
		select {
		case <-k.quit:
			return
		case <-k.kick:
			k.drain()
		case u, ok := <-links:
			if !ok {
				k.fail("link event subscription ended")
				links = nil
				continue
			}
			k.linkEvent(u)
		case reply := <-k.queries:
			k.drain()
			reply <- k.caughtUp()
		}
	}
}

// sharedWrite is one value written to a shared attribute.
type sharedWrite struct{ rel, value string }

// drain applies every write made so far, until none is left: a write that
// returned before drain started is in a pipe or the inotify queue (the
// kernel queues IN_CLOSE_WRITE before close returns).
//
// Each pass reads the pipes first, then the inotify queue, and applies the
// driver_override writes before the pipes' values: a driver_override
// written before a value (driver_override, then drivers_probe) is then
// applied first. One written after a value could be reordered before it
// within a pass, but vm-sriov waits for the outcome of every bind, unbind
// and drivers_probe before its next write. The pipes' values are applied
// in the order they were written to each pipe.
func (k *Kernel) drain() {
	for {
		var values []sharedWrite
		for _, a := range k.shared {
			data, err := readAll(a.fd)
			if err != nil {
				k.fail("read %q: %v", a.rel, err)
			}
			for _, v := range splitValues(string(data)) {
				values = append(values, sharedWrite{a.rel, v})
			}
		}
		overrides, err := k.readInotify()
		if err != nil {
			k.fail("read inotify events: %v", err)
		}
		if len(values) == 0 && len(overrides) == 0 {
			return
		}
		for _, rel := range overrides {
			k.handleOverride(rel)
		}
		for _, w := range values {
			k.handle(w.rel, w.value)
		}
	}
}

// readAll reads a non-blocking descriptor until it has nothing more.
func readAll(fd int) ([]byte, error) {
	var data []byte
	buf := make([]byte, 64*1024)
	for {
		n, err := unix.Read(fd, buf)
		switch {
		case n > 0:
			data = append(data, buf[:n]...)
		case errors.Is(err, unix.EINTR):
		case errors.Is(err, unix.EAGAIN), err == nil:
			return data, nil
		default:
			return data, err
		}
	}
}

// readInotify returns the driver_override files written to since the last
// call, in order.
func (k *Kernel) readInotify() ([]string, error) {
	data, err := readAll(k.inotify)
	var rels []string
	for off := 0; off+unix.SizeofInotifyEvent <= len(data); {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&data[off]))
		off += unix.SizeofInotifyEvent + int(ev.Len)
		if rel, ok := k.wds[int(ev.Wd)]; ok {
			rels = append(rels, rel)
		}
	}
	return rels, err
}

// pciAddrLen is the length of a PCI address, dddd:bb:dd.f.
const pciAddrLen = len("0000:00:00.0")

// isPCIAddr reports whether s starts with a PCI address.
func isPCIAddr(s string) bool {
	if len(s) < pciAddrLen {
		return false
	}
	for i := range pciAddrLen {
		c := s[i]
		switch i {
		case 4, 7:
			if c != ':' {
				return false
			}
		case 10:
			if c != '.' {
				return false
			}
		case 11:
			if c < '0' || c > '7' {
				return false
			}
		default:
			if !isHex(c) {
				return false
			}
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isSeparator(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == 0
}

// splitValues splits what a shared attribute's pipe held into the values
// written: each write (one value, with or without a trailing newline) is
// atomic, being under PIPE_BUF, but the pipe concatenates them. A value
// ends at whitespace, and a PCI address (dddd:bb:dd.f, the only value
// vm-sriov writes) is a value of its own, also when another follows it
// without a separator or it follows something else.
func splitValues(s string) []string {
	var out []string
	for {
		for s != "" && isSeparator(s[0]) {
			s = s[1:]
		}
		if s == "" {
			return out
		}
		n := len(s)
		if isPCIAddr(s) {
			n = pciAddrLen
		} else {
			for i := 1; i < len(s); i++ {
				if isSeparator(s[i]) || isPCIAddr(s[i:]) {
					n = i
					break
				}
			}
		}
		out = append(out, s[:n])
		s = s[n:]
	}
}

// handleOverride records a write to a device's driver_override, which
// bind and drivers_probe read when they act.
func (k *Kernel) handleOverride(rel string) {
	data, err := os.ReadFile(k.Abs(rel))
	if err != nil {
		k.fail("read %q: %v", rel, err)
		return
	}
	k.record(rel, strings.TrimSpace(string(data)))
}

func (k *Kernel) record(rel, value string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.writes = append(k.writes, strings.TrimPrefix(rel, "sys/bus/pci/")+"="+value)
}

// handle applies one value written to a shared attribute.
func (k *Kernel) handle(rel, value string) {
	k.record(rel, value)
	drv := path.Base(path.Dir(rel))
	switch {
	case strings.HasSuffix(rel, "/unbind"):
		if got := k.Driver(value); got != drv {
			k.fail("unbind %q from %q: bound to %q (ENODEV)", value, drv, got)
			return
		}
		k.unbind(value, drv)
	case strings.HasSuffix(rel, "/bind"):
		if got := k.Driver(value); got != "" {
			k.fail("bind %q to %q: already bound to %q (EBUSY)", value, drv, got)
			return
		}
		if o := k.override(value); o != "" && o != drv {
			k.fail("bind %q to %q: driver_override is %q", value, drv, o)
			return
		}
		k.bind(value, drv)
	case rel == "sys/bus/pci/drivers_probe":
		if k.Driver(value) != "" {
			return
		}
		target := k.override(value)
		if target == "" {
			target = NetDriver // the id table match of every VF here
		}
		k.bind(value, target)
	}
}

func (k *Kernel) unbind(addr, drv string) {
	_ = os.Remove(k.Abs(devDir(addr) + "/driver"))
	switch drv {
	case NetDriver:
		if err := k.destroyNetdev(addr); err != nil {
			k.fail("remove the netdev of %q: %v", addr, err)
		}
	case VFIODriver:
		group := k.groups[addr]
		for other, g := range k.groups {
			if g == group && k.Driver(other) == VFIODriver {
				return
			}
		}
		_ = os.Remove(k.Abs("dev/vfio/" + group))
	}
}

func (k *Kernel) bind(addr, drv string) {
	if err := os.Symlink("../../drivers/"+drv, k.Abs(devDir(addr)+"/driver")); err != nil {
		k.fail("bind %q: %v", addr, err)
		return
	}
	switch drv {
	case NetDriver:
		if err := k.createNetdev(addr); err != nil {
			k.fail("the netdev of %q: %v", addr, err)
		}
	case VFIODriver:
		if err := os.WriteFile(k.Abs("dev/vfio/"+k.groups[addr]), nil, 0o600); err != nil {
			k.fail("vfio node: %v", err)
		}
	}
}
