package conformance_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"gopkg.in/yaml.v3"

	bridgetap "github.com/vmcni/vmcni/bridge-tap"
	cniconf "github.com/vmcni/vmcni/internal/conflist"
	"github.com/vmcni/vmcni/sriov"
	"github.com/vmcni/vmcni/vhostuser"
	"github.com/vmcni/vmcni/vpp"
)

// validators check one vmcni plugin config with its plugin's ParseConfig
// and Validate (ValidateForAdd where the plugin has it).
var validators = map[string]func([]byte) error{
	"vm-bridge": func(b []byte) error {
		c, err := bridgetap.ParseConfig(b, "")
		if err != nil {
			return err
		}
		return c.ValidateForAdd()
	},
	"vm-vhostuser": func(b []byte) error {
		c, err := vhostuser.ParseConfig(b, "")
		if err != nil {
			return err
		}
		return c.Validate()
	},
	"vm-sriov": func(b []byte) error {
		c, err := sriov.ParseConfig(b, "")
		if err != nil {
			return err
		}
		return c.Validate()
	},
	"vm-vpp": func(b []byte) error {
		c, err := vpp.ParseConfig(b, "")
		if err != nil {
			return err
		}
		return c.ValidateForAdd()
	},
}

// TestDeploy parses every YAML document under deploy/ and checks: each
// NetworkAttachmentDefinition's config (or, without one, the conflist of
// the same name the DaemonSet installs) parses as a CNI config and every
// vmcni plugin in it passes ParseConfig + Validate; the ConfigMap's
// conflists likewise; every vmcni plugin has a NAD; the DaemonSet mounts
// /opt/cni/bin and the conflists; `make image` builds ./plugins/....
func TestDeploy(t *testing.T) {
	root := filepath.Join("..", "deploy")
	files, err := filepath.Glob(filepath.Join(root, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	nads, _ := filepath.Glob(filepath.Join(root, "nad", "*.yaml"))
	files = append(files, nads...)
	if len(files) == 0 {
		t.Fatal("no YAML under deploy/")
	}
	type nad struct{ name, config, file string }
	var defs []nad
	installed := map[string]string{} // conflist name -> content
	var daemonSets int
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for i := 0; ; i++ {
			var doc struct {
				Kind     string `yaml:"kind"`
				Metadata struct {
					Name string `yaml:"name"`
				} `yaml:"metadata"`
				Spec map[string]any    `yaml:"spec"`
				Data map[string]string `yaml:"data"`
			}
			if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s document %d: %v", f, i, err)
			}
			switch doc.Kind {
			case "NetworkAttachmentDefinition":
				cfg, _ := doc.Spec["config"].(string)
				defs = append(defs, nad{doc.Metadata.Name, cfg, f})
			case "ConfigMap":
				for k, v := range doc.Data {
					if strings.HasSuffix(k, ".conflist") {
						installed[strings.TrimSuffix(k, ".conflist")] = v
					}
				}
			case "DaemonSet":
				daemonSets++
				checkDaemonSet(t, f, data)
			case "":
				t.Errorf("%s document %d has no kind", f, i)
			}
		}
	}
	if daemonSets == 0 {
		t.Error("no DaemonSet under deploy/")
	}
	covered := map[string]bool{}
	for name, conf := range installed {
		for _, typ := range validateConfig(t, "ConfigMap conflist "+name, name, conf) {
			covered[typ] = true
		}
	}
	for _, d := range defs {
		conf := d.config
		if conf == "" {
			if conf = installed[d.name]; conf == "" {
				t.Errorf("%s: NAD %q has no config and the DaemonSet installs no conflist of that name", d.file, d.name)
				continue
			}
		}
		for _, typ := range validateConfig(t, d.file+" NAD "+d.name, d.name, conf) {
			covered[typ] = true
		}
	}
	var missing []string
	for typ := range validators {
		if !covered[typ] {
			missing = append(missing, typ)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("no NetworkAttachmentDefinition for %v", missing)
	}
	makefile, err := os.ReadFile(filepath.Join("..", "Makefile"))
	_, target, _ := bytes.Cut(makefile, []byte("\nimage:"))
	target, _, _ = bytes.Cut(target, []byte("\n\n"))
	if err != nil || !bytes.Contains(target, []byte("./plugins/...")) {
		t.Errorf("make image must build ./plugins/... (err %v)", err)
	}
}

// validateConfig parses conf (a conflist or a single plugin config, as a
// NAD may hold either), checks its name matches the NAD's, and validates
// every vmcni plugin in it. It returns the vmcni plugin types seen.
func validateConfig(t *testing.T, where, name, conf string) []string {
	t.Helper()
	list, err := cniconf.Parse([]byte(conf))
	if err != nil {
		t.Errorf("%s: not a CNI config: %v", where, err)
		return nil
	}
	if list.Name != name {
		t.Errorf("%s: config name %q differs from %q", where, list.Name, name)
	}
	var types []string
	for _, p := range list.Plugins {
		validate, ok := validators[p.Network.Type]
		if !ok {
			continue
		}
		full, err := libcni.InjectConf(p, map[string]any{"name": list.Name, "cniVersion": list.CNIVersion})
		if err != nil {
			t.Errorf("%s: %v", where, err)
			continue
		}
		if err := validate(full.Bytes); err != nil {
			t.Errorf("%s: %s rejects its config: %v", where, p.Network.Type, err)
			continue
		}
		types = append(types, p.Network.Type)
	}
	if len(types) == 0 {
		t.Errorf("%s: no vmcni plugin in the config", where)
	}
	return types
}

// checkDaemonSet checks the DaemonSet mounts the host's CNI bin dir and
// the conflists, and runs the vmcni image.
func checkDaemonSet(t *testing.T, file string, data []byte) {
	t.Helper()
	for _, want := range []string{"path: /opt/cni/bin", "path: /etc/cni/multus/net.d", "name: vmcni-conflists", "image: vmcni/vmcni"} {
		if !bytes.Contains(data, []byte(want)) {
			t.Errorf("%s: DaemonSet lacks %q", file, want)
		}
	}
}
