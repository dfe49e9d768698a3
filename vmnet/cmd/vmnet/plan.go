package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/types/create"

	"github.com/vmcni/vmcni/pkg/hint"
	"github.com/vmcni/vmcni/vmnet"
)

func planCmd(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("plan", flag.ContinueOnError)
	resultFile := fs.String("result", "", "CNI result JSON (any supported version)")
	containerID := fs.String("container-id", "", "container ID of the attachment (with --result)")
	stateDir := fs.String("state-dir", hint.DefaultStateDir, "vmcni state dir holding hint files")
	machine := fs.String("machine", "microvm", "QEMU machine: microvm, pc or q35")
	var hints multiFlag
	fs.Var(&hints, "hint", "a vmcni hint file (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	plan, err := loadPlan(*resultFile, *containerID, *stateDir, hints)
	if err != nil {
		return err
	}
	return renderPlan(out, plan, *machine)
}

func loadPlan(resultFile, containerID, stateDir string, hintFiles []string) (*vmnet.Plan, error) {
	switch {
	case len(hintFiles) > 0:
		var hs []*hint.Hint
		for _, f := range hintFiles {
			data, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			h, err := hint.Decode(data)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			hs = append(hs, h)
		}
		return vmnet.PlanFromHints(hs...)
	case resultFile != "" && containerID != "":
		data, err := os.ReadFile(resultFile)
		if err != nil {
			return nil, err
		}
		res, err := decodeResult(data)
		if err != nil {
			return nil, err
		}
		return vmnet.PlanFromResult(res, containerID, stateDir)
	}
	return nil, errors.New("give --hint FILE..., or --result FILE with --container-id")
}

// decodeResult parses a CNI result of any supported version.
func decodeResult(data []byte) (types.Result, error) {
	var v struct {
		CNIVersion string `json:"cniVersion"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("decode result: %w", err)
	}
	if v.CNIVersion == "" {
		v.CNIVersion = current.ImplementedSpecVersion
	}
	return create.Create(v.CNIVersion, data)
}

// renderPlan prints the plan and what each VMM would be given. Descriptor
// numbers are those vmnet run would use (3, 4, ... in NIC and queue order).
func renderPlan(out io.Writer, plan *vmnet.Plan, machine string) error {
	fds := make([][]int, len(plan.NICs))
	next := 3
	for i, nic := range plan.NICs {
		if nic.Kind == hint.KindTap || nic.Kind == hint.KindMacvtap {
			for q := 0; q < max(nic.Queues, 1); q++ {
				fds[i] = append(fds[i], next)
				next++
			}
		}
	}
	fmt.Fprintf(out, "# plan\n%s\n", plan)
	section := func(title string, render func() (string, error)) {
		text, err := render()
		if err != nil {
			text = "unsupported: " + err.Error()
		}
		fmt.Fprintf(out, "\n# %s\n%s\n", title, strings.TrimRight(text, "\n"))
	}
	section("qemu ("+machine+")", func() (string, error) {
		args, err := vmnet.QEMUArgs(plan, vmnet.QEMUOptions{Machine: machine, MemoryMiB: 256, FDs: fds})
		return strings.Join(args, " "), err
	})
	section("cloud-hypervisor", func() (string, error) {
		args, err := vmnet.CloudHypervisorArgs(plan, fds)
		return strings.Join(args, " "), err
	})
	section("firecracker network-interfaces", func() (string, error) {
		data, err := vmnet.FirecrackerNetworkInterfaces(plan)
		return string(data), err
	})
	section("kernel ip=", func() (string, error) { return vmnet.KernelIPParam(plan), nil })
	section("vmcni test guest cmdline", func() (string, error) { return vmnet.GuestCmdline(plan), nil })
	section("cloud-init network-config", func() (string, error) {
		data, err := vmnet.CloudInitNetworkConfig(plan)
		return string(data), err
	})
	return nil
}
