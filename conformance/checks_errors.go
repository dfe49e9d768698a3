package conformance

import (
	"context"
	"errors"
	"fmt"

	"github.com/containernetworking/cni/libcni"

	"github.com/vmcni/vmcni/internal/conflist"
)

// errorCase is one ADD that must fail with a given code.
type errorCase struct {
	label string
	call  call
	want  uint
}

// runErrorCases runs each case in a fresh netns and checks the exit, the
// strict error object, its code and that the host is unchanged.
func (s *suite) runErrorCases(ctx context.Context, what string, cases func(att attachment) ([]errorCase, error)) verdict {
	before, att, cleanup, err := s.beginAttachment()
	if err != nil {
		return fail("%v", err)
	}
	defer cleanup()
	list, err := cases(att)
	if err != nil {
		return fail("%v", err)
	}
	if len(list) == 0 {
		return skip("no case to run")
	}
	var problems, details []string
	for _, c := range list {
		o, err := s.exec(ctx, c.call)
		if err != nil {
			return fail("%v", err)
		}
		_, cerr := checkOutcome(c.call, s.net.list.CNIVersion, o)
		var pe *pluginError
		switch {
		case cerr == nil:
			// ADD succeeded: undo it so the next checks start clean.
			_, _ = s.chain(ctx, s.net.list, "DEL", att, nil)
			problems = append(problems, fmt.Sprintf("%s: ADD succeeded, want error code %d", c.label, c.want))
		case !errors.As(cerr, &pe):
			problems = append(problems, fmt.Sprintf("%s: %v", c.label, cerr))
		case pe.Protocol != nil:
			problems = append(problems, fmt.Sprintf("%s: %v", c.label, pe.Protocol))
		case pe.Code != c.want:
			problems = append(problems, fmt.Sprintf("%s: error code %d (%q), want %d", c.label, pe.Code, truncate(pe.Msg, 100), c.want))
		default:
			details = append(details, fmt.Sprintf("%s: code %d: %s", c.label, pe.Code, truncate(pe.Msg, 100)))
		}
	}
	cleanup()
	if len(problems) > 0 {
		return fail("%s", problems[0]).with(append(problems[1:], details...)...)
	}
	if v, ok := s.hygiene(before, "after the failed ADDs"); !ok {
		return v.with(details...)
	}
	return pass("%d %s case(s) failed with the right code; host as before", len(list), what).with(details...)
}

// pluginConfs returns each distinct plugin's config as it would be
// executed (name and cniVersion injected), with overrides applied.
func (s *suite) pluginConfs(override map[string]any) ([]call, error) {
	var out []call
	seen := map[string]bool{}
	for _, p := range s.net.list.Plugins {
		if seen[p.Network.Type] {
			continue
		}
		seen[p.Network.Type] = true
		inject := map[string]any{"name": s.net.list.Name, "cniVersion": s.net.list.CNIVersion}
		for k, v := range override {
			inject[k] = v
		}
		conf, err := libcni.InjectConf(p, inject)
		if err != nil {
			return nil, fmt.Errorf("build config of %q: %w", p.Network.Type, err)
		}
		out = append(out, call{Plugin: p.Network.Type, Command: "ADD", Stdin: conf.Bytes})
	}
	return out, nil
}

func (s *suite) checkErrMalformed(ctx context.Context) verdict {
	return s.runErrorCases(ctx, "malformed JSON", func(att attachment) ([]errorCase, error) {
		calls, err := s.pluginConfs(nil)
		if err != nil {
			return nil, err
		}
		var out []errorCase
		for _, c := range calls {
			c.Att = att
			c.Stdin = c.Stdin[:len(c.Stdin)/2]
			out = append(out, errorCase{label: c.Plugin + " truncated config", call: c, want: errCodeDecode})
		}
		return out, nil
	})
}

func (s *suite) checkErrVersion(ctx context.Context) verdict {
	return s.runErrorCases(ctx, "unknown version", func(att attachment) ([]errorCase, error) {
		calls, err := s.pluginConfs(map[string]any{"cniVersion": "99.99.99"})
		if err != nil {
			return nil, err
		}
		var out []errorCase
		for _, c := range calls {
			c.Att = att
			out = append(out, errorCase{label: c.Plugin + " cniVersion 99.99.99", call: c, want: errCodeIncompatible})
		}
		return out, nil
	})
}

func (s *suite) checkErrEnv(ctx context.Context) verdict {
	return s.runErrorCases(ctx, "missing environment", func(att attachment) ([]errorCase, error) {
		calls, err := s.pluginConfs(nil)
		if err != nil {
			return nil, err
		}
		var out []errorCase
		for _, c := range calls {
			for _, v := range []string{"CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"} {
				c := c
				c.Att = att
				c.Omit = []string{v}
				out = append(out, errorCase{label: c.Plugin + " without " + v, call: c, want: errCodeEnv})
			}
		}
		return out, nil
	})
}

// checkErrInvalidConfig runs the caller's invalid configs. A conflist's
// first plugin is executed (the one a runtime would run first).
func (s *suite) checkErrInvalidConfig(ctx context.Context) verdict {
	if len(s.cfg.InvalidConfigs) == 0 {
		return skip("no invalid config supplied (Config.InvalidConfigs, -invalid)")
	}
	return s.runErrorCases(ctx, "invalid config", func(att attachment) ([]errorCase, error) {
		var out []errorCase
		for i, data := range s.cfg.InvalidConfigs {
			list, err := conflist.Parse(data)
			if err == nil && len(list.Plugins) == 0 {
				err = errors.New("no plugin")
			}
			if err != nil {
				return nil, fmt.Errorf("invalid config #%d does not even parse as a CNI config (libcni refuses it): %w", i+1, err)
			}
			inject := att.withRuntimeConfig(list.Plugins[0], map[string]any{"name": list.Name, "cniVersion": list.CNIVersion})
			conf, err := libcni.InjectConf(list.Plugins[0], inject)
			if err != nil {
				return nil, fmt.Errorf("invalid config #%d: %w", i+1, err)
			}
			c := call{Plugin: list.Plugins[0].Network.Type, Command: "ADD", Att: att, Stdin: conf.Bytes}
			out = append(out, errorCase{label: fmt.Sprintf("%s invalid config #%d", c.Plugin, i+1), call: c, want: errCodeInvalidConfig})
		}
		return out, nil
	})
}
