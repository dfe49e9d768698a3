package deviceplugin

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// Options configure a Plugin.
type Options struct {
	// ResourceName is the extended resource advertised, "domain/name" as
	// the kubelet accepts it (e.g. "vmcni.io/sriov_vf"; not in the
	// kubernetes.io domain). Required.
	ResourceName string
	// Devices are the device IDs advertised, e.g. VF PCI addresses
	// "0000:3b:02.1". Required: non-empty, unique, without ",".
	Devices []string
	// KubeletDir (optional) is the kubelet's device-plugin directory, where
	// kubelet.sock is and the plugin's socket goes; defaults to
	// "/var/lib/kubelet/device-plugins".
	KubeletDir string
	// Logger (optional) receives the plugin's log; defaults to discarding.
	Logger *slog.Logger
	// PollInterval (optional) is how often the sockets are checked for a
	// kubelet restart and a failed registration retried; defaults to 500ms.
	PollInterval time.Duration
	// StartTimeout (optional) bounds how long Start waits for the first
	// registration; defaults to 30s.
	StartTimeout time.Duration
}

const (
	defaultPollInterval = 500 * time.Millisecond
	defaultStartTimeout = 30 * time.Second
	// maxSocketPath is what fits in sockaddr_un.sun_path with its NUL.
	maxSocketPath = 107
)

var (
	// dnsLabel is an RFC 1123 label, the parts of the resource's domain.
	dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	// qualifiedName is the name part of a Kubernetes qualified name.
	qualifiedName = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)
	// unsafeSocketChar is what SocketName replaces.
	unsafeSocketChar = regexp.MustCompile(`[^A-Za-z0-9_.-]`)
)

// SocketName returns the file name of the socket the plugin for
// resourceName serves in the kubelet's directory:
// "vmcni-" + resourceName with every character other than letters, digits,
// '_', '.' and '-' replaced by '_' + ".sock".
func SocketName(resourceName string) string {
	return "vmcni-" + unsafeSocketChar.ReplaceAllString(resourceName, "_") + ".sock"
}

// EnvName returns the environment variable Allocate sets for resourceName:
// "PCIDEVICE_" + resourceName upper-cased, with '.' and '/' (and any other
// character not allowed in a variable name) replaced by '_'.
func EnvName(resourceName string) string {
	return "PCIDEVICE_" + strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			return r
		default:
			return '_'
		}
	}, resourceName)
}

// withDefaults returns o with the optional fields set and KubeletDir made
// absolute (gRPC's unix:// target wants an absolute path).
func (o Options) withDefaults() (Options, error) {
	if o.KubeletDir == "" {
		o.KubeletDir = filepath.Clean(pluginapi.DevicePluginPath)
	}
	dir, err := filepath.Abs(o.KubeletDir)
	if err != nil {
		return o, fmt.Errorf("kubelet directory %q: %w", o.KubeletDir, err)
	}
	o.KubeletDir = dir
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.PollInterval <= 0 {
		o.PollInterval = defaultPollInterval
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = defaultStartTimeout
	}
	return o, nil
}

// Validate checks the options without touching the file system.
func (o Options) Validate() error {
	var errs []error
	if err := validateResourceName(o.ResourceName); err != nil {
		errs = append(errs, err)
	}
	if len(o.Devices) == 0 {
		errs = append(errs, errors.New("no devices to advertise"))
	}
	seen := make(map[string]bool, len(o.Devices))
	for _, d := range o.Devices {
		switch {
		case d == "":
			errs = append(errs, errors.New("empty device ID"))
		case strings.Contains(d, ","):
			errs = append(errs, fmt.Errorf("device ID %q contains \",\"", d))
		case seen[d]:
			errs = append(errs, fmt.Errorf("device ID %q listed twice", d))
		}
		seen[d] = true
	}
	dir := o.KubeletDir
	if dir == "" {
		dir = pluginapi.DevicePluginPath
	}
	for _, name := range []string{"kubelet.sock", SocketName(o.ResourceName)} {
		if p := filepath.Join(dir, name); len(p) > maxSocketPath {
			errs = append(errs, fmt.Errorf("socket path %q is longer than %d bytes", p, maxSocketPath))
		}
	}
	return errors.Join(errs...)
}

// validateResourceName accepts what the kubelet's registration accepts
// (v1helper.IsExtendedResourceName): "domain/name", domain a DNS subdomain
// outside kubernetes.io, name a qualified name of at most 63 characters.
func validateResourceName(name string) error {
	domain, local, ok := strings.Cut(name, "/")
	if !ok || strings.Contains(local, "/") {
		return fmt.Errorf("resource name %q: want domain/name", name)
	}
	if len(domain) == 0 || len(domain) > 253 {
		return fmt.Errorf("resource name %q: domain %q must have 1 to 253 characters", name, domain)
	}
	for _, label := range strings.Split(domain, ".") {
		if len(label) > 63 || !dnsLabel.MatchString(label) {
			return fmt.Errorf("resource name %q: domain %q is not a lower-case DNS subdomain", name, domain)
		}
	}
	if strings.HasSuffix(domain, "kubernetes.io") { // the kubelet's test is Contains(name, "kubernetes.io/")
		return fmt.Errorf("resource name %q: domain %q is reserved for native resources", name, domain)
	}
	if len(local) > 63 || !qualifiedName.MatchString(local) {
		return fmt.Errorf("resource name %q: name %q must be 1 to 63 letters, digits, '-', '_' or '.', starting and ending alphanumeric", name, local)
	}
	return nil
}
