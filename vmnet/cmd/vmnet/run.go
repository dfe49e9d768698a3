package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/vmcni/vmcni/vmnet/launcher"
)

func runCmd(args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	conflist := fs.String("conflist", "", "CNI conflist file (required)")
	cniPath := fs.String("cni-path", envOr("CNI_PATH", "/opt/cni/bin"), "plugin directories, colon separated")
	nsPath := fs.String("netns", "", "existing netns path (default: a new one, removed at exit)")
	containerID := fs.String("container-id", "", "container ID (default: vmnet-<random>)")
	ifName := fs.String("ifname", "eth0", "CNI_IFNAME")
	vm := addVMFlags(fs)
	probe := fs.Bool("probe-gateway", false, "have the guest ping its gateway and report")
	probeTCP := fs.String("probe-tcp", "", "have the guest fetch http://HOST:PORT/ and report")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *conflist == "" {
		return fmt.Errorf("--conflist is required")
	}
	data, err := os.ReadFile(*conflist)
	if err != nil {
		return err
	}
	opts := launcher.Options{
		Conflist: data, CNIPath: filepath.SplitList(*cniPath), Netns: *nsPath,
		ContainerID: *containerID, IfName: *ifName, ProbeGateway: *probe, ProbeTCP: *probeTCP,
	}
	vm.apply(&opts)
	if *vm.console {
		opts.Console = os.Stderr
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := launcher.Start(ctx, opts)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := s.Close(); cerr != nil {
			fmt.Fprintln(os.Stderr, "vmnet: teardown:", cerr)
		}
	}()
	nic := s.Plan.NICs[0]
	fmt.Printf("guest up in %.1fs (%s): %s %q mac %s ip %s\n", s.BootTime.Seconds(), s.Accel,
		nic.Kind, nic.Device, nic.MAC, s.GuestIP(false))

	for _, marker := range s.ProbeMarkers() {
		line, err := s.WaitConsole(ctx, marker)
		if err != nil {
			return err
		}
		fmt.Println("guest says:", line)
	}
	if rest := fs.Args(); len(rest) > 0 {
		cmd := exec.CommandContext(ctx, rest[0], rest[1:]...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		cmd.Env = append(os.Environ(),
			"VMNET_GUEST_IP="+ipString(s.GuestIP(false)),
			"VMNET_GUEST_IP6="+ipString(s.GuestIP(true)),
			"VMNET_GUEST_MAC="+nic.MAC,
			"VMNET_GATEWAY="+ipString(s.Gateway()),
		)
		return cmd.Run()
	}
	fmt.Println("press Ctrl-C to stop the VM and tear down")
	<-ctx.Done()
	return nil
}

func ipString(ip interface{ String() string }) string {
	if ip == nil || fmt.Sprint(ip) == "<nil>" {
		return ""
	}
	return ip.String()
}
