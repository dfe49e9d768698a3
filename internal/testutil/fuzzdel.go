package testutil

import (
	"encoding/json"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/vmcni/vmcni/internal/cnierr"
)

// FuzzDelArgs turns a fuzzed config into DEL arguments that stay inside
// the test: the state dir is forced to stateDir, the attachment is one no
// ADD ever made (container "vmct-fuzz", an ifname and a netns path that
// do not exist), and CNI_PATH (set by the caller) holds no IPAM plugin. A
// stdin that is not a JSON object is passed as it is.
func FuzzDelArgs(stdin []byte, cniArgs, stateDir string) *skel.CmdArgs {
	conf := map[string]any{}
	if json.Unmarshal(stdin, &conf) == nil {
		conf["stateDir"] = stateDir
		stdin, _ = json.Marshal(conf)
	}
	return &skel.CmdArgs{ContainerID: "vmct-fuzz", IfName: "fuzz0", Netns: "/var/run/netns/vmct-fuzz-none",
		Args: cniArgs, StdinData: stdin}
}

// ExpectDelContract is FuzzDel's check of one DEL of an attachment that
// does not exist: it did not panic (the caller got here), and it failed
// only when IPAM is configured (the IPAM plugin, which is not installed,
// must be asked), or the config or CNI_ARGS do not decode (codes 6 and 4:
// nothing to go by).
func ExpectDelContract(t *testing.T, args *skel.CmdArgs, err error) {
	t.Helper()
	if err == nil || cnierr.Code(err) == 6 || cnierr.Code(err) == 4 {
		return
	}
	var conf struct {
		IPAM map[string]any `json:"ipam"`
	}
	if json.Unmarshal(args.StdinData, &conf) == nil && len(conf.IPAM) > 0 {
		return
	}
	t.Fatalf("DEL of an attachment that does not exist failed: %v\n%s", err, args.StdinData)
}
