package conformance

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
)

// checkGC adds a valid attachment A (known to libcni's cache) and a stale
// one B that libcni does not know (added through another cache, as by a
// runtime that lost its state) whose netns is then deleted, and runs GC
// keeping A: through libcni (cni.dev/valid-attachments, and libcni's own
// DEL of cached stale attachments, which B is not), or by direct exec with
// only the older cni.dev/attachments key. B must be gone, A intact.
func (s *suite) checkGC(ctx context.Context, legacy bool) verdict {
	if !s.atLeast(minGCVersion) {
		return skip("GC needs cniVersion %s, the conflist has %s", minGCVersion, s.net.list.CNIVersion)
	}
	before, err := s.before()
	if err != nil {
		return fail("%v", err)
	}
	a, cleanA, err := s.newAttachment()
	if err != nil {
		return fail("%v", err)
	}
	defer cleanA()
	b, cleanB, err := s.newAttachment()
	if err != nil {
		return fail("%v", err)
	}
	defer cleanB()
	if _, err = s.cni.AddNetworkList(ctx, s.net.list, a.runtime()); err != nil {
		_ = s.cni.DelNetworkList(ctx, s.net.list, a.runtime())
		return fail("ADD of the valid attachment: %v", err)
	}
	defer func() { _ = s.cni.DelNetworkList(ctx, s.net.list, a.runtime()) }()
	withA, err := s.before()
	if err != nil {
		return fail("%v", err)
	}
	lost := libcni.NewCNIConfigWithCacheDir(s.cfg.BinDirs, filepath.Join(s.work, "lost-cache-"+randomHex(4)), nil)
	if _, err := lost.AddNetworkList(ctx, s.net.list, b.runtime()); err != nil {
		_ = lost.DelNetworkList(ctx, s.net.list, b.runtime())
		return fail("ADD of the stale attachment: %v", err)
	}
	cleanB()
	valid := []types.GCAttachment{{ContainerID: a.ContainerID, IfName: a.IfName}}
	how := "libcni GCNetworkList (cni.dev/valid-attachments)"
	if legacy {
		how = "direct GC with only cni.dev/attachments"
		if err := s.gcLegacy(ctx, valid); err != nil {
			_ = lost.DelNetworkList(ctx, s.net.list, b.runtime())
			return fail("GC: %v", err)
		}
	} else if err := s.cni.GCNetworkList(ctx, s.net.list, &libcni.GCArgs{ValidAttachments: valid}); err != nil {
		_ = lost.DelNetworkList(ctx, s.net.list, b.runtime())
		return fail("GC: %v", err)
	}
	v, ok := s.hygiene(withA, "after GC: the stale attachment was not collected")
	if !ok {
		_ = lost.DelNetworkList(ctx, s.net.list, b.runtime())
	}
	if err := s.cni.CheckNetworkList(ctx, s.net.list, a.runtime()); err != nil {
		return fail("CHECK of the valid attachment after GC: %v", err)
	}
	if err := s.cni.DelNetworkList(ctx, s.net.list, a.runtime()); err != nil {
		return fail("DEL of the valid attachment after GC: %v", err)
	}
	cleanA()
	if !ok {
		return v
	}
	if v, ok := s.hygiene(before, "after DEL of the valid attachment"); !ok {
		return v
	}
	return pass("%s collected the stale attachment and kept the valid one (CHECK passed)", how)
}

// gcLegacy sends GC to every plugin with the older key only.
func (s *suite) gcLegacy(ctx context.Context, valid []types.GCAttachment) error {
	list := s.net.list
	for _, p := range list.Plugins {
		conf, err := libcni.InjectConf(p, map[string]any{
			"name": list.Name, "cniVersion": list.CNIVersion, "cni.dev/attachments": valid,
		})
		if err != nil {
			return fmt.Errorf("build GC config of %q: %w", p.Network.Type, err)
		}
		c := call{Plugin: p.Network.Type, Command: "GC", Stdin: conf.Bytes}
		o, err := s.exec(ctx, c)
		if err != nil {
			return err
		}
		if _, err := checkOutcome(c, list.CNIVersion, o); err != nil {
			return err
		}
	}
	return nil
}
