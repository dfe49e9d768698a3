package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/vmcni/vmcni/internal/cnierr"
	"github.com/vmcni/vmcni/pkg/hint"
)

// toyConf is a fifth plugin's whole config: the shared part and one key.
type toyConf struct {
	NetConf
	Dir string `json:"dir"`
}

func (c *toyConf) Validate() error {
	if err := c.NetConf.Validate(); err != nil {
		return err
	}
	if !filepath.IsAbs(c.Dir) {
		return cnierr.Config("dir %q must be absolute", c.Dir)
	}
	return nil
}

// toyState is what it records: the files it creates.
type toyState struct {
	Device string `json:"device"`
	Lease  string `json:"lease"`
}

// toy is a plugin whose side effects are files: a "device" (a VM
// device's stand-in) and a "lease" (an allocation released with Claim).
// failUndo makes the device's undo fail once.
type toy struct {
	failUndo bool
}

func (p *toy) spec() Spec[*toyConf, toyState] {
	return Spec[*toyConf, toyState]{
		Name: "vm-toy",
		Parse: func(stdin []byte, cniArgs string) (*toyConf, error) {
			c := &toyConf{}
			return c, Decode(stdin, cniArgs, c)
		},
		Add: func(_ context.Context, a *Addition[*toyConf, toyState]) (Outcome, error) {
			st := &toyState{
				Device: filepath.Join(a.Conf.Dir, a.Args.ContainerID+".dev"),
				Lease:  filepath.Join(a.Conf.Dir, a.Args.ContainerID+".lease"),
			}
			if err := a.Begin(st); err != nil {
				return Outcome{}, err
			}
			err := a.Claim("lease", func() error { return removeIfExists(st.Lease) }, func() error {
				return os.WriteFile(st.Lease, nil, 0o600)
			})
			if err != nil {
				return Outcome{}, err
			}
			err = a.Do("device", func() error {
				if p.failUndo {
					p.failUndo = false
					return errors.New("device busy")
				}
				return removeIfExists(st.Device)
			}, func() error { return os.WriteFile(st.Device, nil, 0o600) })
			if err != nil {
				return Outcome{}, err
			}
			h := &hint.Hint{Kind: hint.KindTap, Tap: &hint.Tap{Name: "tap0"}, Guest: hint.Guest{MAC: "02:00:00:00:00:01"}}
			return Outcome{Result: &current.Result{CNIVersion: current.ImplementedSpecVersion}, Hint: h, PodIf: -1}, nil
		},
		Teardown: func(_ context.Context, t *Teardown[*toyConf, toyState]) {
			t.Step(removeIfExists(t.State.Device))
			t.Step(removeIfExists(t.State.Lease))
		},
		Check: func(context.Context, *Checking[*toyConf, toyState]) error { return nil },
	}
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

type toyEnv struct {
	t             *testing.T
	dir, stateDir string
	containerID   string
	extra         map[string]any
}

func newToyEnv(t *testing.T) *toyEnv {
	dir := t.TempDir()
	return &toyEnv{t: t, dir: filepath.Join(dir, "dev"), stateDir: filepath.Join(dir, "state"), containerID: "c1"}
}

func (e *toyEnv) args() *skel.CmdArgs {
	c := map[string]any{"cniVersion": "1.1.0", "name": "toynet", "type": "vm-toy", "dir": e.dir, "stateDir": e.stateDir}
	for k, v := range e.extra {
		c[k] = v
	}
	data, _ := json.Marshal(c)
	return &skel.CmdArgs{ContainerID: e.containerID, IfName: "eth0", Netns: "/proc/self/ns/net", StdinData: data}
}

func (e *toyEnv) files() []string {
	var out []string
	for _, root := range []string{e.dir, e.stateDir} {
		_ = filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() {
				out = append(out, strings.TrimPrefix(p, filepath.Dir(e.dir)))
			}
			return nil
		})
	}
	return out
}

// TestEngineFailedUndoKeepsClaims: when an undo fails, the rollback keeps
// the allocation and the (incomplete) record, so the device is never handed
// out dirty; the next DEL finishes the job and leaves nothing.
func TestEngineFailedUndoKeepsClaims(t *testing.T) {
	e := newToyEnv(t)
	if err := os.MkdirAll(e.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := &toy{failUndo: true}
	failHint := WithStepHook(func(s string) error {
		if s == "hint" {
			return errors.New("injected")
		}
		return nil
	})
	err := New(p.spec(), WithStdout(io.Discard), failHint).Add(e.args())
	if err == nil || !strings.Contains(err.Error(), "device busy") {
		t.Fatalf("ADD: %v", err)
	}
	left := strings.Join(e.files(), " ")
	for _, want := range []string{"c1.lease", "c1.dev", "record.json"} {
		if !strings.Contains(left, want) {
			t.Errorf("%s released after a failed undo: %s", want, left)
		}
	}
	if err := New(p.spec()).Del(e.args()); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	if f := e.files(); len(f) != 0 {
		t.Fatalf("left after DEL: %v", f)
	}
}

// TestEngineDelRefused: DEL succeeds for what ADD refuses before doing
// anything (a bad config, a container ID too long for a file name, a
// prevResult with a null entry), and ADD refuses each with its code.
func TestEngineDelRefused(t *testing.T) {
	for _, tc := range []struct {
		name  string
		apply func(e *toyEnv)
		code  uint
	}{
		{"relative dir", func(e *toyEnv) { e.extra = map[string]any{"dir": "rel"} }, 7},
		{"long container ID", func(e *toyEnv) { e.containerID = strings.Repeat("a", 300) }, 4},
		{"null interface", func(e *toyEnv) {
			e.extra = map[string]any{"prevResult": map[string]any{"cniVersion": "0.4.0", "interfaces": []any{nil}}}
		}, 6},
		{"null ip", func(e *toyEnv) {
			e.extra = map[string]any{"prevResult": map[string]any{"cniVersion": "0.4.0", "ips": []any{nil}}}
		}, 6},
		{"null ip, lower-case key", func(e *toyEnv) { // encoding/json matches keys case-insensitively
			e.extra = map[string]any{"prevresult": map[string]any{"cniVersion": "0.4.0", "IPs": []any{nil}}}
		}, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newToyEnv(t)
			tc.apply(e)
			p := &toy{}
			if err := New(p.spec(), WithStdout(io.Discard)).Add(e.args()); cnierr.Code(err) != tc.code {
				t.Fatalf("ADD: code %d (%v), want %d", cnierr.Code(err), err, tc.code)
			}
			// No record: DEL succeeds, even for a config it cannot decode.
			if err := New(p.spec()).Del(e.args()); err != nil {
				t.Fatalf("DEL: %v", err)
			}
		})
	}
}
