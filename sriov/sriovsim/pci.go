package sriovsim

import (
	"fmt"
	"os"
	"path"
	"runtime"
	"strings"
	"unsafe"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// start watches the writable attributes (inotify IN_CLOSE_WRITE), and
// starts the kernel goroutine, which subscribes to the host netns's link
// events and creates the VF netdevs before it serves.
func (k *Kernel) start() {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	k.must(err)
	k.inotify = os.NewFile(uintptr(fd), "inotify")
	watch := func(rel string) {
		wd, err := unix.InotifyAddWatch(fd, k.Abs(rel), unix.IN_CLOSE_WRITE)
		k.must(err)
		k.wds[wd] = rel
	}
	for _, d := range drivers {
		watch("sys/bus/pci/drivers/" + d + "/bind")
		watch("sys/bus/pci/drivers/" + d + "/unbind")
	}
	watch("sys/bus/pci/drivers_probe")
	watch(syncFile)
	for addr := range k.groups {
		watch(devDir(addr) + "/driver_override")
	}
	go k.readInotify()

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

// subscribe starts the link event subscription in the calling thread's
// netns (the host's).
func (k *Kernel) subscribe() error {
	err := netlink.LinkSubscribeWithOptions(k.links, k.linksDone, netlink.LinkSubscribeOptions{
		ReceiveBufferSize: 4 << 20,
		ErrorCallback:     func(err error) { k.fail("link events: %v", err) },
	})
	if err != nil {
		return fmt.Errorf("subscribe to link events: %w", err)
	}
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
	if k.subscribed {
		close(k.linksDone)
		for range k.links {
			// drain until the subscription closes the channel
		}
	}
	if k.inotify != nil {
		_ = k.inotify.Close()
	}
	_ = k.host.Close()
}

// readInotify forwards the completed writes to the kernel goroutine.
func (k *Kernel) readInotify() {
	buf := make([]byte, 64*1024)
	for {
		n, err := k.inotify.Read(buf)
		if err != nil {
			return // closed
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			off += unix.SizeofInotifyEvent + int(ev.Len)
			rel, ok := k.wds[int(ev.Wd)]
			if !ok {
				continue
			}
			select {
			case k.events <- rel:
			case <-k.quit:
				return
			}
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
		case rel := <-k.events:
			k.handle(rel)
		case u, ok := <-links:
			if !ok {
				k.fail("link event subscription ended")
				links = nil
				continue
			}
			k.linkEvent(u)
		case reply := <-k.queries:
			reply <- k.caughtUp()
		}
	}
}

// handle applies one completed write.
func (k *Kernel) handle(rel string) {
	data, err := os.ReadFile(k.Abs(rel))
	if err != nil {
		k.fail("read %q: %v", rel, err)
		return
	}
	value := strings.TrimSpace(string(data))
	if rel == syncFile {
		k.mu.Lock()
		k.syncSeq++
		k.mu.Unlock()
		return
	}
	k.mu.Lock()
	k.writes = append(k.writes, strings.TrimPrefix(rel, "sys/bus/pci/")+"="+value)
	k.mu.Unlock()
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
