// Package ipam delegates address management to any CNI IPAM plugin
// (host-local, static, dhcp, whereabouts...) found in CNI_PATH, and runs
// host-local in-process (see hostLocal: same leases, same lock, no second
// process exec) unless Delegate.Exec asks for the binary.
//
// Unlike invoke.Delegate*, every call names the attachment explicitly
// (Attachment), so GC can release the addresses of an attachment other than
// the one in the current CNI_* environment. The IPAM plugin receives the
// calling plugin's full config, as the CNI spec requires.
package ipam

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	refipam "github.com/containernetworking/plugins/pkg/ipam"

	"github.com/vmcni/vmcni/internal/cnierr"
)

// Attachment names the attachment an IPAM call is for.
type Attachment struct {
	ContainerID string
	Netns       string
	IfName      string
	// Args is CNI_ARGS.
	Args string
}

// Delegate calls one IPAM plugin type with one network config.
type Delegate struct {
	// Type is the IPAM plugin's binary name (ipam.type).
	Type string
	// Config is the full network config passed on stdin.
	Config []byte
	// Exec runs the host-local binary instead of the in-process host-local
	// (the config key ipamExec).
	Exec bool
	// Leases (optional) are the addresses an in-process host-local ADD
	// leased to the attachment (Leases of its result, which the record
	// keeps): DEL and CHECK then read only those lease files.
	Leases []string
}

// InProcess reports whether d runs host-local in-process.
func (d Delegate) InProcess() bool { return d.Type == HostLocal && !d.Exec }

// Leases are the addresses of an in-process ADD's result, for
// Delegate.Leases.
func Leases(res *current.Result) []string {
	out := []string{}
	for _, ip := range res.IPs {
		out = append(out, ip.Address.IP.String())
	}
	return out
}

// inProcess runs fn on the in-process host-local.
func (d Delegate) inProcess(a Attachment, fn func(*hostLocal) error) error {
	h, err := openHostLocal(d.Config, a.Args)
	if err != nil {
		return err
	}
	defer h.close()
	return fn(h)
}

func (d Delegate) exec(ctx context.Context, command string, a Attachment) (types.Result, error) {
	if d.Type == "" {
		return nil, cnierr.Config("ipam.type is required")
	}
	if filepath.Base(d.Type) != d.Type {
		return nil, cnierr.Config("ipam.type %q must be a plugin name, not a path", d.Type)
	}
	paths := filepath.SplitList(os.Getenv("CNI_PATH"))
	pluginPath, err := invoke.FindInPath(d.Type, paths)
	if err != nil {
		return nil, cnierr.Config("find IPAM plugin %q: %w", d.Type, err)
	}
	args := &invoke.Args{
		Command:       command,
		ContainerID:   a.ContainerID,
		NetNS:         a.Netns,
		IfName:        a.IfName,
		PluginArgsStr: a.Args,
		Path:          os.Getenv("CNI_PATH"),
	}
	if command == "ADD" {
		return invoke.ExecPluginWithResult(ctx, pluginPath, d.Config, args, nil)
	}
	return nil, invoke.ExecPluginWithoutResult(ctx, pluginPath, d.Config, args, nil)
}

// Add allocates addresses and returns them as a current (1.1.0) result.
// In-process host-local does not look for a lease the attachment already
// holds (the binary refuses a duplicate): release an earlier ADD's first.
func (d Delegate) Add(ctx context.Context, a Attachment) (*current.Result, error) {
	if d.InProcess() {
		var res *current.Result
		err := d.inProcess(a, func(h *hostLocal) (err error) { res, err = h.add(a); return err })
		if err != nil {
			return nil, fmt.Errorf("IPAM %q ADD: %w", d.Type, err)
		}
		return res, nil
	}
	res, err := d.exec(ctx, "ADD", a)
	if err != nil {
		return nil, fmt.Errorf("IPAM %q ADD: %w", d.Type, err)
	}
	cur, err := current.NewResultFromResult(res)
	if err != nil {
		return nil, fmt.Errorf("IPAM %q result: %w", d.Type, err)
	}
	if len(cur.IPs) == 0 {
		return nil, fmt.Errorf("IPAM %q returned no IP addresses", d.Type)
	}
	return cur, nil
}

// Del releases the attachment's addresses.
func (d Delegate) Del(ctx context.Context, a Attachment) error {
	if d.InProcess() {
		if err := d.inProcess(a, func(h *hostLocal) error { return h.release(a, d.Leases) }); err != nil {
			return fmt.Errorf("IPAM %q DEL: %w", d.Type, err)
		}
		return nil
	}
	if _, err := d.exec(ctx, "DEL", a); err != nil {
		return fmt.Errorf("IPAM %q DEL: %w", d.Type, err)
	}
	return nil
}

// Check asks the IPAM plugin to verify the attachment's addresses.
func (d Delegate) Check(ctx context.Context, a Attachment) error {
	if d.InProcess() {
		if err := d.inProcess(a, func(h *hostLocal) error { return h.check(a, d.Leases) }); err != nil {
			return fmt.Errorf("IPAM %q CHECK: %w", d.Type, err)
		}
		return nil
	}
	if _, err := d.exec(ctx, "CHECK", a); err != nil {
		return fmt.Errorf("IPAM %q CHECK: %w", d.Type, err)
	}
	return nil
}

// GC forwards GC (Config carries the valid attachments; valid is the
// caller's reading of them, which the in-process host-local uses).
func (d Delegate) GC(ctx context.Context, valid map[types.GCAttachment]bool) error {
	if d.InProcess() {
		if err := d.inProcess(Attachment{}, func(h *hostLocal) error { return h.gc(valid) }); err != nil {
			return fmt.Errorf("IPAM %q GC: %w", d.Type, err)
		}
		return nil
	}
	if _, err := d.exec(ctx, "GC", Attachment{}); err != nil {
		return fmt.Errorf("IPAM %q GC: %w", d.Type, err)
	}
	return nil
}

// Status forwards STATUS.
func (d Delegate) Status(ctx context.Context) error {
	if d.InProcess() {
		return d.inProcess(Attachment{}, func(*hostLocal) error { return nil }) // the config and data dir
	}
	if _, err := d.exec(ctx, "STATUS", Attachment{}); err != nil {
		return fmt.Errorf("IPAM %q STATUS: %w", d.Type, err)
	}
	return nil
}

// ConfigureIface assigns res's addresses and routes to the interface ifName
// of the calling thread's netns (addresses whose "interface" index points at
// an entry named ifName, or all when none is set) and brings it up.
func ConfigureIface(ifName string, res *current.Result) error {
	if err := refipam.ConfigureIface(ifName, res); err != nil {
		return fmt.Errorf("configure %q: %w", ifName, err)
	}
	return nil
}
