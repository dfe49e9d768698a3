package vhostuser

import (
	"context"
	"fmt"
	"os"

	"github.com/vmcni/vmcni/internal/plugin"
)

// check is vm-vhostuser's CHECK, after the engine's (record, hint and
// result agree; IPAM CHECK): the directory has its mode and the OVS port
// exists on the bridge.
func (p *Plugin) check(ctx context.Context, c *plugin.Checking[*NetConf, state]) error {
	st, conf := c.State, c.Conf
	fi, err := os.Stat(st.Dir)
	if err != nil {
		return fmt.Errorf("socket directory: %w", err)
	}
	if fi.Mode().Perm() != conf.mode {
		return fmt.Errorf("socket directory %q has mode %o, want %o", st.Dir, fi.Mode().Perm(), conf.mode)
	}
	if st.Port == "" {
		return nil
	}
	ports, err := p.newSwitch(conf).Ports(ctx, conf.Name)
	if err != nil {
		return err
	}
	for _, port := range ports {
		if port.Name == st.Port {
			return nil
		}
	}
	return fmt.Errorf("OVS port %q is missing", st.Port)
}
