package bridgetap

import (
	"context"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/vmcni/vmcni/internal/ipam"
	"github.com/vmcni/vmcni/internal/plugin"
)

// Del implements CNI DEL. It is idempotent: without a record (no ADD, or a
// second DEL) it removes whatever links the names of this attachment still
// point at; a vanished netns took its links with it. DEL of a configuration
// ADD refuses succeeds when there is no record (plugin.RefusedDel).
func (p *Plugin) Del(args *skel.CmdArgs) error {
	conf, err := ParseConfig(args.StdinData, args.Args)
	if err != nil {
		return err
	}
	if err = conf.Validate(); err != nil {
		return plugin.RefusedDel(conf.StateDir, args.ContainerID, args.IfName, err)
	}
	if err = plugin.ValidateArgs(args.ContainerID, args.IfName); err != nil {
		return err
	}
	at, err := plugin.OpenAttachment(PluginName, "DEL", conf.Config, conf.StateDir, args)
	if err != nil {
		return err
	}
	log, st := at.Log, at.Store
	defer at.Close(true)

	rec, err := st.Get(args.ContainerID, args.IfName)
	if err != nil {
		log.Warn("unreadable record, deleting by name", "err", err)
	}
	var s *state
	if rec != nil {
		if s, err = stateOf(rec); err != nil {
			log.Warn("unreadable record state, deleting by name", "err", err)
		}
	}
	if s == nil {
		s = &state{
			Mode: conf.Mode, Chained: !conf.standaloneConfig(),
			Names: namesFor(args.ContainerID, args.IfName, conf.Mode, conf.standaloneConfig()),
			Group: groupFor(args.IfName),
		}
		if conf.Prev != nil {
			// Without a record the original MAC is unknown; prevResult has it.
			for _, iface := range conf.Prev.Interfaces {
				if iface.Name == args.IfName && iface.Sandbox != "" {
					s.PodMAC = iface.Mac
				}
			}
		}
	}
	if s.DeviceInfoFile == "" {
		s.DeviceInfoFile = conf.RuntimeConfig.DeviceInfoFile
	}
	t := &teardown{
		conf: conf, st: s, log: log, store: st,
		key: ipam.Attachment{ContainerID: args.ContainerID, Netns: args.Netns, IfName: args.IfName, Args: args.Args},
	}
	err = t.run(context.Background())
	if err == nil {
		log.Info("DEL done")
	}
	return err
}
