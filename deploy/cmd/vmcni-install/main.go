// Command vmcni-install is the entrypoint of the vmcni plugin image (a
// static binary: the image has no shell and no base image).
//
//	vmcni-install [flags]            install the plugins and conflists, print one line
//	vmcni-install [flags] keepalive  sleep until SIGTERM or SIGINT, then exit 0
//
// Install copies every file of -src-bin (default /opt/vmcni/bin) into
// -bin-dir (default $BIN_DIR, else /host/opt/cni/bin) and every *.conflist
// of -src-conf (default /config) into -conf-dir (default $CONF_DIR, else
// /host/etc/cni/multus/net.d), each atomically; see deploy/internal/install
// for the contract. The DaemonSet runs the install in its init container and
// keepalive as its long-running container. Exit codes: 0 success, 1
// installation failed, 2 bad usage.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/vmcni/vmcni/deploy/internal/install"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run is the whole command, with its environment injected for tests.
func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("vmcni-install", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o install.Options
	fs.StringVar(&o.BinDir, "bin-dir", orDefault(getenv("BIN_DIR"), install.DefaultBinDir), "node CNI binary directory (env BIN_DIR)")
	fs.StringVar(&o.ConfDir, "conf-dir", orDefault(getenv("CONF_DIR"), install.DefaultConfDir), "node Multus conflist directory (env CONF_DIR)")
	fs.StringVar(&o.SrcBin, "src-bin", install.DefaultSrcBin, "directory of the plugin binaries to install")
	fs.StringVar(&o.SrcConf, "src-conf", install.DefaultSrcConf, "directory of the *.conflist files to install")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	switch {
	case fs.NArg() == 0:
		res, err := install.Install(o)
		if err != nil {
			fmt.Fprintf(stderr, "vmcni-install: %v\n", err)
			return 1
		}
		fmt.Fprintln(stdout, res)
		return 0
	case fs.NArg() == 1 && fs.Arg(0) == "keepalive":
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		fmt.Fprintln(stdout, "vmcni: keepalive until SIGTERM or SIGINT")
		<-ctx.Done()
		return 0
	default:
		fmt.Fprintf(stderr, "vmcni-install: unexpected arguments %q; usage: vmcni-install [flags] [keepalive]\n", fs.Args())
		return 2
	}
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
