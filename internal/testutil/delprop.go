package testutil

import (
	"encoding/json"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/vmcni/vmcni/internal/testutil/keyprop"
)

// DelProperty checks that DEL never fails for an attachment that does not
// exist, whatever its key and config: n DELs, each with a random key (a
// valid one, shaped to collide, or one ADD refuses: too long, bad
// characters, empty) and a random config built from base and fields (each
// field left out or set to one of its candidates, values ADD accepts and
// values it refuses alike; stateDir is forced to a directory of the test).
// Every DEL must succeed, and the state directory must be empty at the end:
// DEL of nothing leaves no lock, record or directory behind. The configs are
// well-typed JSON; configs that do not decode are FuzzDel's.
func DelProperty(t *testing.T, seed uint64, n int, base map[string]any, fields map[string][]any,
	del func(*skel.CmdArgs) error) {
	t.Helper()
	stateDir := t.TempDir()
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	keys := keyprop.RandomKeys(seed, n)
	names := slices.Sorted(maps.Keys(fields)) // map order would make a seed irreproducible
	failures := 0
	for i := 0; i < n; i++ {
		conf := maps.Clone(base)
		for _, name := range names {
			if values := fields[name]; rng.IntN(3) > 0 {
				conf[name] = values[rng.IntN(len(values))]
			}
		}
		conf["stateDir"] = stateDir
		stdin, err := json.Marshal(conf)
		if err != nil {
			t.Fatal(err)
		}
		cid, ifname := keys[i].ContainerID, keys[i].IfName
		switch rng.IntN(8) {
		case 0:
			cid = strings.Repeat("c", 240+rng.IntN(40)) // past hint.MaxContainerID
		case 1:
			cid = "../" + cid
		case 2:
			ifname = strings.Repeat("i", 16) // past IFNAMSIZ
		case 3:
			ifname = "a/b"
		case 4:
			cid = ""
		}
		args := &skel.CmdArgs{ContainerID: cid, IfName: ifname, Netns: "/var/run/netns/vmct-delprop-none",
			Args: randomCNIArgs(rng), StdinData: stdin}
		if err := del(args); err != nil {
			failures++
			if failures <= 5 {
				t.Errorf("DEL %d (container %q, ifname %q, CNI_ARGS %q) failed: %v\n%s", i, cid, ifname, args.Args, err, stdin)
			}
		}
	}
	if failures > 0 {
		t.Errorf("%d of %d DELs failed", failures, n)
	}
	entries, err := os.ReadDir(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != ".locks" {
			t.Errorf("DEL of nothing left %s in the state dir", e.Name())
			continue
		}
		if locks, _ := os.ReadDir(stateDir + "/.locks"); len(locks) > 0 {
			t.Errorf("DEL of nothing left %d lock files, %s first", len(locks), locks[0].Name())
		}
	}
}

// randomCNIArgs returns CNI_ARGS as runtimes send them, with a MAC that may
// be refused.
func randomCNIArgs(rng *rand.Rand) string {
	switch rng.IntN(4) {
	case 0:
		return ""
	case 1:
		return "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=vm;K8S_POD_UID=1234"
	case 2:
		return "IgnoreUnknown=1;MAC=02:00:00:00:00:01"
	}
	return "IgnoreUnknown=1;MAC=zz:zz"
}
