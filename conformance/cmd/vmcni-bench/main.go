// Command vmcni-bench measures vmcni against the reference CNI plugins in
// one run and writes docs/benchmarks.md and docs/benchmarks.svg. Run it as
// root through `make bench`.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/vmcni/vmcni/conformance/bench"
)

func main() {
	bin := flag.String("bin", "bin/all", "directory with vmcni's plugins and the reference plugins")
	out := flag.String("out", "docs/benchmarks.md", "report file (the SVG plot goes next to it)")
	n := flag.Int("n", 40, "samples per control-plane scenario")
	scale := flag.String("scale", "1,10,50,200", "concurrency levels")
	growth := flag.String("growth", "0,100,500", "attachments present for the growth test")
	dp := flag.Duration("dp", time.Second, "duration of each data-plane measurement")
	rounds := flag.Int("rounds", 5, "data-plane rounds (the median is reported)")
	flag.Parse()
	if err := run(*bin, *out, *n, ints(*scale), ints(*growth), *dp, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "vmcni-bench:", err)
		os.Exit(1)
	}
}

func ints(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if v, err := strconv.Atoi(strings.TrimSpace(f)); err == nil {
			out = append(out, v)
		}
	}
	return out
}

func run(bin, out string, n int, scale, growth []int, dp time.Duration, rounds int) error {
	abs, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "vmcni-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
	env := &bench.Env{BinDir: abs, WorkDir: work, N: n, Log: logf}
	defer env.Cleanup()
	ctx := context.Background()

	r := &bench.Report{
		When: time.Now(), Machine: machine(), Versions: versions(), N: n,
		Command: "make bench  (go run ./conformance/cmd/vmcni-bench " + strings.Join(os.Args[1:], " ") + ")",
	}
	logf("control plane: %d scenarios x %d", len(env.Scenarios()), n)
	r.Latency = env.ControlPlane(ctx, env.Scenarios())
	logf("scale: %v", scale)
	r.Scale = env.Scale(ctx, scale)
	logf("growth: %v", growth)
	r.Growth = env.Growth(ctx, growth, n)
	logf("kernel floor of DEL")
	r.Kernel = env.KernelDelete(ctx, n)
	logf("per invocation")
	if r.Exec, err = env.Exec(ctx); err != nil {
		return err
	}
	logf("data plane")
	if r.DataPlane, err = env.DataPlane(ctx, dp, rounds); err != nil {
		return err
	}

	var md, svg bytes.Buffer
	plot := strings.TrimSuffix(filepath.Base(out), ".md") + ".svg"
	r.WriteMarkdown(&md, plot)
	r.WriteSVG(&svg)
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(out, md.Bytes(), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(out), plot), svg.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Print(md.String())
	return nil
}

func machine() string {
	model := "unknown CPU"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel, _ := exec.Command("uname", "-r").Output()
	return fmt.Sprintf("%s, %d CPUs, kernel %s, %s", model, runtime.NumCPU(), strings.TrimSpace(string(kernel)), runtime.Version())
}

func versions() string {
	rev, _ := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	return fmt.Sprintf("vmcni %s; reference plugins github.com/containernetworking/plugins v1.9.1; libcni github.com/containernetworking/cni v1.3.0",
		strings.TrimSpace(string(rev)))
}
