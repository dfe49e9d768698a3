package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// ExecResult is the per-invocation cost of one plugin binary.
type ExecResult struct {
	Plugin     string
	Version    Sample // exec of CNI_COMMAND=VERSION
	AddMaxRSS  int64  // KiB, peak RSS of one ADD
	BinarySize int64  // bytes
}

// Exec measures VERSION exec time and ADD peak RSS of vm-bridge and the
// reference bridge plugin.
func (e *Env) Exec(ctx context.Context) ([]ExecResult, error) {
	type plugin struct {
		name string
		conf map[string]any
	}
	var out []ExecResult
	for _, pl := range []plugin{{"vm-bridge", e.vmBridge("tcfilter")}, {"bridge", e.refBridgePlugin()}} {
		bin := filepath.Join(e.BinDir, pl.name)
		st, err := os.Stat(bin)
		if err != nil {
			return nil, err
		}
		r := ExecResult{Plugin: pl.name, BinarySize: st.Size()}
		for i := 0; i < e.N; i++ {
			t0 := time.Now()
			if _, _, verr := e.execPlugin(ctx, bin, []string{"CNI_COMMAND=VERSION"}, []byte(`{"cniVersion":"1.1.0"}`)); verr != nil {
				return nil, verr
			}
			r.Version = append(r.Version, time.Since(t0))
		}
		p, err := newPod()
		if err != nil {
			return nil, err
		}
		conf := map[string]any{"cniVersion": "1.1.0", "name": "bench-rss"}
		for k, v := range pl.conf {
			conf[k] = v
		}
		stdin := mustJSON(conf)
		env := []string{"CNI_CONTAINERID=" + p.id, "CNI_NETNS=" + p.ns, "CNI_IFNAME=eth0", "CNI_PATH=" + e.BinDir}
		_, rss, err := e.execPlugin(ctx, bin, append(env, "CNI_COMMAND=ADD"), stdin)
		if err != nil {
			p.remove()
			return nil, err
		}
		r.AddMaxRSS = rss
		_, _, _ = e.execPlugin(ctx, bin, append(env, "CNI_COMMAND=DEL"), stdin)
		p.remove()
		out = append(out, r)
	}
	return out, nil
}

func (e *Env) execPlugin(ctx context.Context, bin string, env []string, stdin []byte) ([]byte, int64, error) {
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = env
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	err := cmd.Run()
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w: %s", filepath.Base(bin), err, stdout.String())
	}
	var rss int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss
	}
	return stdout.Bytes(), rss, nil
}
