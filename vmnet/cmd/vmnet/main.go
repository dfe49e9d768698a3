// Command vmnet is vmcni's reference VM launcher.
//
//	vmnet run  --conflist FILE [flags] [-- COMMAND ARGS...]
//	    Create a netns, run the conflist (CNI ADD), boot the test guest on the
//	    device the result describes, then run COMMAND (with VMNET_GUEST_IP,
//	    VMNET_GUEST_IP6, VMNET_GUEST_MAC, VMNET_GATEWAY set) or wait for a
//	    signal; finally stop the VM, CNI DEL and remove the netns.
//	vmnet plan (--result FILE --container-id ID [--state-dir DIR] | --hint FILE...) [--machine M]
//	    Print the attachment plan and the VMM arguments without booting.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = runCmd(os.Args[2:])
	case "plan":
		err = planCmd(os.Args[2:], os.Stdout)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "vmnet:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: vmnet run --conflist FILE [flags] [-- COMMAND...] | vmnet plan (--result FILE --container-id ID | --hint FILE...)")
	os.Exit(2)
}
