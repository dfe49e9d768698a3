package plugin

import (
	"github.com/containernetworking/cni/pkg/types"

	"github.com/vmcni/vmcni/internal/cnierr"
)

// CNIArgs is the CNI "args" convention block every vmcni plugin accepts in
// its config: {"args": {"cni": {"mac": "..."}}}.
type CNIArgs struct {
	CNI struct {
		MAC string `json:"mac,omitempty"`
	} `json:"cni"`
}

// envMAC are the CNI_ARGS keys the MAC override reads.
type envMAC struct {
	types.CommonArgs
	MAC types.UnmarshallableString `json:"mac,omitempty"`
}

// ResolveMAC applies the MAC overrides every vmcni plugin honours, lowest
// first: the config's own "mac" (configured), CNI_ARGS MAC (cniArgs),
// args.cni.mac (args), runtimeConfig.mac (runtime, the "mac" capability).
// A malformed CNI_ARGS is code 4.
func ResolveMAC(configured, cniArgs string, args CNIArgs, runtime string) (string, error) {
	mac := configured
	if cniArgs != "" {
		var env envMAC
		if err := types.LoadArgs(cniArgs, &env); err != nil {
			return "", cnierr.Env("parse CNI_ARGS: %w", err)
		}
		if env.MAC != "" {
			mac = string(env.MAC)
		}
	}
	if args.CNI.MAC != "" {
		mac = args.CNI.MAC
	}
	if runtime != "" {
		mac = runtime
	}
	return mac, nil
}
