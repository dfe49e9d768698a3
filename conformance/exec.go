package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	types040 "github.com/containernetworking/cni/pkg/types/040"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/types/create"
	"github.com/containernetworking/cni/pkg/version"
)

// attachment is one (container, netns, ifname) the suite plumbs.
type attachment struct {
	ContainerID string
	Netns       string
	IfName      string
	// CapArgs are the attachment's capability args (Config.CapabilityArgsPool).
	CapArgs map[string]any
}

func (a attachment) runtime() *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: a.ContainerID, NetNS: a.Netns, IfName: a.IfName, CapabilityArgs: a.CapArgs}
}

// withRuntimeConfig adds to inject what libcni injects as p's
// runtimeConfig: the attachment's capability args that p declares in
// "capabilities" (nothing when there are none), and returns inject.
func (a attachment) withRuntimeConfig(p *libcni.PluginConfig, inject map[string]any) map[string]any {
	rc := map[string]any{}
	for key, declared := range p.Network.Capabilities {
		if v, ok := a.CapArgs[key]; ok && declared {
			rc[key] = v
		}
	}
	if len(rc) > 0 {
		inject["runtimeConfig"] = rc
	}
	return inject
}

// call is one direct execution of a plugin binary.
type call struct {
	Plugin  string // binary name (the config's "type")
	Command string // CNI_COMMAND
	Att     attachment
	Stdin   []byte
	// Omit lists CNI_* variables left out of the environment.
	Omit []string
}

// outcome is what a plugin printed and how it exited.
type outcome struct {
	Stdout, Stderr []byte
	// Exit is the exec error (nil when the plugin exited 0).
	Exit error
}

// pluginError describes a failed or misbehaving plugin call.
type pluginError struct {
	Plugin, Command string
	// Code and Msg are the error object's, when the plugin printed one.
	Code uint
	Msg  string
	// Protocol is set when the plugin broke the protocol (stdout not
	// exactly one result / error object / nothing).
	Protocol error
}

func (e *pluginError) Error() string {
	if e.Protocol != nil {
		return fmt.Sprintf("%s %s: protocol violation: %v", e.Plugin, e.Command, e.Protocol)
	}
	return fmt.Sprintf("%s %s: error code %d: %s", e.Plugin, e.Command, e.Code, e.Msg)
}

func (e *pluginError) Unwrap() error { return e.Protocol }

// exec runs one plugin binary with the CNI environment of c. The error is
// only for failing to start it; a plugin failure is in outcome.Exit.
func (s *suite) exec(ctx context.Context, c call) (outcome, error) {
	path, err := invoke.FindInPath(c.Plugin, s.cfg.BinDirs)
	if err != nil {
		return outcome{}, fmt.Errorf("find plugin %q in %v: %w", c.Plugin, s.cfg.BinDirs, err)
	}
	env := map[string]string{
		"CNI_COMMAND":     c.Command,
		"CNI_CONTAINERID": c.Att.ContainerID,
		"CNI_NETNS":       c.Att.Netns,
		"CNI_IFNAME":      c.Att.IfName,
		"CNI_PATH":        strings.Join(s.cfg.BinDirs, ":"),
	}
	for _, k := range c.Omit {
		delete(env, k)
	}
	cmd := exec.CommandContext(ctx, path)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	for k, v := range env {
		if v != "" || k == "CNI_COMMAND" {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	cmd.Stdin = bytes.NewReader(c.Stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var exitErr *exec.ExitError
	if runErr != nil && !errors.As(runErr, &exitErr) {
		return outcome{}, fmt.Errorf("run %q: %w", path, runErr)
	}
	return outcome{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), Exit: runErr}, nil
}

// strictDecode decodes data, which must hold exactly one JSON value with no
// field v does not know, into v.
func strictDecode(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return fmt.Errorf("more than one JSON value on stdout (%q after the first)", truncate(string(data[dec.InputOffset():]), 80))
	}
	return nil
}

// parseResult parses an ADD's stdout strictly: one result object of
// cniVersion want, no unknown fields, nothing else.
func parseResult(want string, stdout []byte) (types.Result, error) {
	if len(bytes.TrimSpace(stdout)) == 0 {
		return nil, errors.New("empty stdout, want a result")
	}
	var probe struct {
		CNIVersion string `json:"cniVersion"`
	}
	if err := json.Unmarshal(stdout, &probe); err != nil {
		return nil, fmt.Errorf("stdout is not one JSON result: %w (stdout %q)", err, truncate(string(stdout), 120))
	}
	if probe.CNIVersion != want {
		return nil, fmt.Errorf("result cniVersion %q, config asked for %q", probe.CNIVersion, want)
	}
	var target any = &current.Result{}
	if gt, _ := version.GreaterThanOrEqualTo(want, "1.0.0"); !gt {
		target = &types040.Result{}
	}
	if err := strictDecode(stdout, target); err != nil {
		return nil, fmt.Errorf("strict parse of result: %w", err)
	}
	res, err := create.Create(want, stdout)
	if err != nil {
		return nil, fmt.Errorf("parse result as %s: %w", want, err)
	}
	return res, nil
}

// parseError parses a failed call's stdout strictly: one error object with
// a code and a msg.
func parseError(stdout []byte) (*types.Error, error) {
	// The spec's error object; types.Error lacks cniVersion.
	var e struct {
		CNIVersion string `json:"cniVersion,omitempty"`
		Code       uint   `json:"code"`
		Msg        string `json:"msg"`
		Details    string `json:"details,omitempty"`
	}
	if err := strictDecode(stdout, &e); err != nil {
		return nil, fmt.Errorf("stdout of a failed call is not one error object: %w (stdout %q)", err, truncate(string(stdout), 120))
	}
	if e.Code == 0 || e.Msg == "" {
		return nil, fmt.Errorf("error object without code or msg: %q", truncate(string(stdout), 120))
	}
	return &types.Error{Code: e.Code, Msg: e.Msg, Details: e.Details}, nil
}

// checkOutcome turns an outcome into an error: nil when the plugin exited
// 0 with the right stdout (a result for ADD, nothing otherwise), a
// *pluginError otherwise. For ADD it returns the parsed result.
func checkOutcome(c call, cniVersion string, o outcome) (types.Result, error) {
	if o.Exit != nil {
		e, perr := parseError(o.Stdout)
		if perr != nil {
			return nil, &pluginError{Plugin: c.Plugin, Command: c.Command, Protocol: fmt.Errorf("%w (exit: %w, stderr %q)", perr, o.Exit, truncate(string(o.Stderr), 200))}
		}
		return nil, &pluginError{Plugin: c.Plugin, Command: c.Command, Code: e.Code, Msg: e.Msg}
	}
	switch c.Command {
	case "ADD":
		res, err := parseResult(cniVersion, o.Stdout)
		if err != nil {
			return nil, &pluginError{Plugin: c.Plugin, Command: c.Command, Protocol: err}
		}
		return res, nil
	case "VERSION":
		return nil, nil
	default:
		if len(bytes.TrimSpace(o.Stdout)) != 0 {
			return nil, &pluginError{Plugin: c.Plugin, Command: c.Command,
				Protocol: fmt.Errorf("stdout must be empty on success, got %q", truncate(string(o.Stdout), 120))}
		}
		return nil, nil
	}
}

// chain runs command (ADD, CHECK or DEL) through every plugin of list by
// direct execution, as libcni would (DEL in reverse order; prevResult is
// the previous plugin's result for ADD and prev for CHECK and DEL), and
// checks every plugin's stdout strictly. It returns ADD's final result.
func (s *suite) chain(ctx context.Context, list *libcni.NetworkConfigList, command string, att attachment, prev types.Result) (types.Result, error) {
	plugins := list.Plugins
	if command == "DEL" {
		plugins = make([]*libcni.PluginConfig, len(list.Plugins))
		for i, p := range list.Plugins {
			plugins[len(list.Plugins)-1-i] = p
		}
	}
	for _, p := range plugins {
		inject := map[string]any{"name": list.Name, "cniVersion": list.CNIVersion}
		if prev != nil {
			inject["prevResult"] = prev
		}
		conf, err := libcni.InjectConf(p, att.withRuntimeConfig(p, inject))
		if err != nil {
			return nil, fmt.Errorf("build config of %q: %w", p.Network.Type, err)
		}
		c := call{Plugin: p.Network.Type, Command: command, Att: att, Stdin: conf.Bytes}
		o, err := s.exec(ctx, c)
		if err != nil {
			return nil, err
		}
		res, err := checkOutcome(c, list.CNIVersion, o)
		if err != nil {
			return nil, err
		}
		if command == "ADD" {
			prev = res
		}
	}
	if command == "ADD" {
		return prev, nil
	}
	return nil, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
