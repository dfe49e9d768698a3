package conformance_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vmcni/vmcni/conformance"
	"github.com/vmcni/vmcni/sriov/sriovsim"
)

// sriovVFs is the size of the simulated VF pool: the concurrency check's
// attachments plus the two of the GC checks, with room to spare.
const sriovVFs = 8

// TestSRIOV runs the suite on the vm-sriov binary in both modes, on the
// simulated PCI tree (package sriovsim: sysfs attributes acted on by a
// simulated PCI core, VF netdevs as links in the host netns that return to
// it when a pod netns is destroyed, a file-backed PF table). Every
// attachment gets its own VF through the deviceID capability, as a device
// plugin hands them out under Multus; in vfio mode also its own NPWG
// device-info file. Every hygiene comparison includes the simulated host
// (drivers, overrides, VF netdevs, /dev/vfio nodes, PF-side VF settings).
func TestSRIOV(t *testing.T) {
	for _, mode := range []string{"netdev", "vfio"} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t)
			k := sriovsim.Start(t, sriovsim.Options{VFs: sriovVFs})
			devInfoDir := filepath.Join(t.TempDir(), "devinfo")
			var pool []map[string]any
			for i := range sriovVFs {
				args := map[string]any{"deviceID": sriovsim.VFAddr(i)}
				if mode == "vfio" {
					args["CNIDeviceInfoFile"] = filepath.Join(devInfoDir, fmt.Sprintf("vf%d-device.json", i))
				}
				pool = append(pool, args)
			}
			conf := map[string]any{"type": sriovsim.PluginType, "mode": mode, "sysfsRoot": k.Root, "stateDir": e.stateDir,
				"bindTimeout": "3s", "ipam": e.ipam(),
				"capabilities": map[string]bool{"deviceID": true, "CNIDeviceInfoFile": true}}
			if mode == "vfio" {
				conf["kataDanDir"] = e.danDir() // vfio: the DAN type both Kata runtimes read
			}
			simBefore := k.State()
			rep := e.run(conformance.Config{
				Conflist:           conflist("vmct-sriov-"+mode, conf),
				CapabilityArgsPool: pool,
				WatchDirs:          []string{devInfoDir},
				ExtraState:         func() ([]string, error) { return strings.Split(k.State(), "\n"), nil },
				Skip: map[string]string{conformance.CheckTamper: "a VF netdev is a physical device: it cannot be deleted " +
					"(the simulator's veth stand-in could, and would come back under another name)"},
				InvalidConfigs: [][]byte{
					invalidConf(conf, map[string]any{"vlan": 4095}), invalidConf(conf, map[string]any{"mac": "not-a-mac"}),
					invalidConf(conf, map[string]any{"mode": "bogus"}),
					invalidConf(conf, map[string]any{"min_tx_rate": 100, "max_tx_rate": 10}),
				},
			})
			checks := append(slices.Clone(protocolChecks), conformance.CheckErrInvalidConfig, conformance.CheckGCValid, conformance.CheckGCLegacyKey)
			if mode == "netdev" {
				// The second ADD gets its own VF; moving it into the netns
				// as eth0 collides, after the PF-side settings were made.
				checks = append(checks, conformance.CheckFailedAdd)
			} else {
				// A VFIO device is a pseudo-interface with a pciID.
				checks = append(checks, conformance.CheckVMDevice, conformance.CheckVMHint)
			}
			assertPassed(t, rep, checks...)
			k.AssertState(t, simBefore)
		})
	}
}
