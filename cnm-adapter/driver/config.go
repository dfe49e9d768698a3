package driver

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/containernetworking/cni/libcni"

	"github.com/vmcni/vmcni/cnm-adapter/api"
	"github.com/vmcni/vmcni/cnm-adapter/state"
	"github.com/vmcni/vmcni/internal/link"
)

// Network options (docker network create -o KEY=VALUE). Every one is
// optional.
const (
	// OptPlugin (default "vm-bridge") is the plugin of a generated config;
	// only vm-bridge is generated, anything else needs OptConflist.
	OptPlugin = "plugin"
	// OptMode (default "tcfilter") is vm-bridge's mode: tcfilter, bridge,
	// macvtap.
	OptMode = "mode"
	// OptBridge (default PREFIX + 11 chars of the network ID) is the host
	// bridge; created if missing and then deleted with the network.
	OptBridge = "bridge"
	// OptMTU (default: the bridge's) is the MTU.
	OptMTU = "mtu"
	// OptIPMasq (default "true", like Docker's bridge) masquerades traffic
	// leaving the subnet.
	OptIPMasq = "ipmasq"
	// OptConflist is an absolute path to a CNI conflist (or single config)
	// used instead of a generated one; read once, at network create.
	OptConflist = "conflist"
	// OptCNIName (default "cnm-" + 12 chars of the network ID) is the CNI
	// network name (masquerade rules, IPAM state).
	OptCNIName = "cniname"
	// OptStateDir (default: the adapter's --plugin-state-dir, else
	// vm-bridge's) is vm-bridge's stateDir.
	OptStateDir = "statedir"
	// OptLogFile and OptLogLevel are vm-bridge's logFile / logLevel.
	OptLogFile = "logfile"
	// OptLogLevel is vm-bridge's logLevel.
	OptLogLevel = "loglevel"
	// OptVMDevice (default "none") builds a VM device in the sandbox once
	// libnetwork has moved the interface there: vm-bridge chained in mode
	// tcfilter, bridge or macvtap, with its hint file. "none" hands the
	// sandbox the plain veth (right for runc).
	OptVMDevice = "vmdevice"
)

// VMDeviceNone is OptVMDevice's default: no VM device.
const VMDeviceNone = "none"

var knownOptions = map[string]bool{
	OptPlugin: true, OptMode: true, OptBridge: true, OptMTU: true, OptIPMasq: true,
	OptConflist: true, OptCNIName: true, OptStateDir: true, OptLogFile: true, OptLogLevel: true,
	OptVMDevice: true,
}

// podIfName is CNI_IFNAME inside the transfer netns.
const podIfName = "eth0"

// transferIfName is CNI_IFNAME inside the transfer netns on networks with
// a VM device: the chained attachment is keyed (endpoint ID, sandbox
// interface "ethN") in vm-bridge's state dir and link groups, so the
// host-side attachment must not use an "eth" name.
const transferIfName = "xfer0"

// vmDevice returns the network's VM device mode, or "" for none.
func vmDevice(n *state.Network) string {
	if m := n.Options[OptVMDevice]; m != "" && m != VMDeviceNone {
		return m
	}
	return ""
}

// genericOptions extracts the -o map from CreateNetwork's options.
func genericOptions(opts map[string]any) (map[string]string, error) {
	out := map[string]string{}
	raw, ok := opts[api.GenericOption]
	if !ok || raw == nil {
		return out, nil
	}
	m, ok := raw.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("option %q is %T, want an object", api.GenericOption, raw)
	}
	for k, v := range m {
		s, isString := v.(string)
		if !isString {
			s = fmt.Sprint(v)
		}
		out[k] = s
	}
	return out, nil
}

// parseNetworkOptions merges defaults under given, validates them without
// side effects and returns the merged map.
func (d *Driver) parseNetworkOptions(netID string, given map[string]string) (map[string]string, error) {
	o := map[string]string{}
	for k, v := range d.defaultOpt {
		o[k] = v
	}
	for k, v := range given {
		o[strings.ToLower(k)] = v
	}
	var unknown []string
	for k := range o {
		if !knownOptions[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("unknown option(s) %q; known: plugin, mode, bridge, mtu, ipmasq, conflist, cniname, statedir, logfile, loglevel, vmdevice", unknown)
	}
	switch v := strings.ToLower(o[OptVMDevice]); v {
	case "", VMDeviceNone:
		o[OptVMDevice] = VMDeviceNone
	case "tcfilter", "bridge", "macvtap":
		o[OptVMDevice] = v
	default:
		return nil, fmt.Errorf("vmdevice %q is not one of none, tcfilter, bridge, macvtap", o[OptVMDevice])
	}
	if o[OptConflist] != "" {
		for _, k := range []string{OptPlugin, OptMode, OptBridge, OptMTU, OptIPMasq, OptStateDir, OptLogFile, OptLogLevel} {
			if o[k] != "" && d.defaultOpt[k] != o[k] {
				return nil, fmt.Errorf("option %q does not combine with %q (put it in the conflist)", k, OptConflist)
			}
			delete(o, k)
		}
		if !filepath.IsAbs(o[OptConflist]) {
			return nil, fmt.Errorf("conflist %q must be an absolute path", o[OptConflist])
		}
		return o, nil
	}
	if p := o[OptPlugin]; p != "" && p != "vm-bridge" {
		return nil, fmt.Errorf("plugin %q has no generated config; use -o conflist=FILE", p)
	}
	o[OptPlugin] = "vm-bridge"
	switch o[OptMode] {
	case "":
		o[OptMode] = "tcfilter"
	case "tcfilter", "bridge", "macvtap":
	default:
		return nil, fmt.Errorf("mode %q is not one of tcfilter, bridge, macvtap", o[OptMode])
	}
	if o[OptBridge] == "" {
		o[OptBridge] = d.prefix + short(netID)
		if len(o[OptBridge]) > 15 {
			o[OptBridge] = o[OptBridge][:15]
		}
	}
	if err := link.ValidateName(o[OptBridge]); err != nil {
		return nil, fmt.Errorf("bridge: %w", err)
	}
	if v := o[OptMTU]; v != "" {
		if n, err := strconv.Atoi(v); err != nil || n < 68 || n > 65535 {
			return nil, fmt.Errorf("mtu %q must be a number from 68 to 65535", v)
		}
	}
	if v := o[OptIPMasq]; v != "" {
		if _, err := strconv.ParseBool(v); err != nil {
			return nil, fmt.Errorf("ipmasq %q must be true or false: %w", v, err)
		}
	} else {
		o[OptIPMasq] = "true"
	}
	if v := o[OptStateDir]; v != "" && !filepath.IsAbs(v) {
		return nil, fmt.Errorf("statedir %q must be an absolute path", v)
	}
	if v := o[OptLogFile]; v != "" && !filepath.IsAbs(v) {
		return nil, fmt.Errorf("logfile %q must be an absolute path", v)
	}
	return o, nil
}

// loadConflist reads and parses a conflist file.
func loadConflist(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read conflist %q: %w", path, err)
	}
	if _, err = libcni.NetworkConfFromBytes(data); err != nil {
		return nil, fmt.Errorf("parse conflist %q: %w", path, err)
	}
	return data, nil
}

func cniName(n *state.Network) string {
	if v := n.Options[OptCNIName]; v != "" {
		return v
	}
	return "cnm-" + short(n.ID)
}

// staticAddress is one address of the static IPAM plugin.
type staticAddress struct {
	Address string `json:"address"`
	Gateway string `json:"gateway,omitempty"`
}

type route struct {
	Dst string `json:"dst"`
	GW  string `json:"gw,omitempty"`
}

// vmBridgeConf is the generated vm-bridge plugin config.
type vmBridgeConf struct {
	Type         string          `json:"type"`
	Mode         string          `json:"mode"`
	Bridge       string          `json:"bridge"`
	IsGateway    bool            `json:"isGateway"`
	IPMasq       bool            `json:"ipMasq"`
	MTU          int             `json:"mtu,omitempty"`
	StateDir     string          `json:"stateDir,omitempty"`
	LogFile      string          `json:"logFile,omitempty"`
	LogLevel     string          `json:"logLevel,omitempty"`
	Capabilities map[string]bool `json:"capabilities"`
	IPAM         staticIPAM      `json:"ipam"`
}

type staticIPAM struct {
	Type      string          `json:"type"`
	Addresses []staticAddress `json:"addresses"`
	Routes    []route         `json:"routes,omitempty"`
}

type conflist struct {
	CNIVersion string `json:"cniVersion"`
	Name       string `json:"name"`
	Plugins    []any  `json:"plugins"`
}

// gatewayOf returns the gateway IP (no prefix) of the pool containing
// addr, or "".
func gatewayOf(pools []state.Pool, addr string) string {
	ip, _, err := net.ParseCIDR(addr)
	if err != nil {
		return ""
	}
	for _, p := range pools {
		_, subnet, perr := net.ParseCIDR(p.Subnet)
		if perr != nil || !subnet.Contains(ip) || p.Gateway == "" {
			continue
		}
		gw, _, gerr := net.ParseCIDR(p.Gateway)
		if gerr == nil {
			return gw.String()
		}
	}
	return ""
}

// renderConfig returns the CNI config and runtime for ep on n. Docker's
// addresses reach the plugins as static IPAM (generated configs) or as
// the "ips" capability (conflists), the MAC as the "mac" capability.
func (d *Driver) renderConfig(n *state.Network, ep *state.Endpoint) ([]byte, *state.Runtime, error) {
	rt := &state.Runtime{ContainerID: ep.ID, IfName: podIfName, CapabilityArgs: map[string]any{}}
	if vmDevice(n) != "" {
		rt.IfName = transferIfName
	}
	var ips []string
	for _, a := range []string{ep.Address, ep.AddressIPv6} {
		if a != "" {
			ips = append(ips, a)
		}
	}
	if len(ips) > 0 {
		rt.CapabilityArgs["ips"] = ips
	}
	if ep.MAC != "" {
		rt.CapabilityArgs["mac"] = ep.MAC
	}
	if len(n.Conflist) > 0 {
		return n.Conflist, rt, nil
	}
	o := n.Options
	pc := vmBridgeConf{
		Type: "vm-bridge", Mode: o[OptMode], Bridge: n.Bridge, IsGateway: true,
		StateDir: o[OptStateDir], LogFile: o[OptLogFile], LogLevel: o[OptLogLevel],
		Capabilities: map[string]bool{"mac": true},
		IPAM:         staticIPAM{Type: "static"},
	}
	if pc.StateDir == "" {
		pc.StateDir = d.stateDir
	}
	pc.IPMasq, _ = strconv.ParseBool(o[OptIPMasq])
	pc.MTU, _ = strconv.Atoi(o[OptMTU])
	if ep.Address != "" {
		gw := gatewayOf(n.IPv4, ep.Address)
		pc.IPAM.Addresses = append(pc.IPAM.Addresses, staticAddress{Address: ep.Address, Gateway: gw})
		pc.IPAM.Routes = append(pc.IPAM.Routes, route{Dst: "0.0.0.0/0", GW: gw})
	}
	if ep.AddressIPv6 != "" {
		gw := gatewayOf(n.IPv6, ep.AddressIPv6)
		pc.IPAM.Addresses = append(pc.IPAM.Addresses, staticAddress{Address: ep.AddressIPv6, Gateway: gw})
		if gw != "" {
			pc.IPAM.Routes = append(pc.IPAM.Routes, route{Dst: "::/0", GW: gw})
		}
	}
	if len(pc.IPAM.Addresses) == 0 {
		return nil, nil, fmt.Errorf("endpoint %q has no address: vm-bridge needs one from Docker's IPAM", short(ep.ID))
	}
	data, err := json.Marshal(conflist{CNIVersion: "1.1.0", Name: cniName(n), Plugins: []any{pc}})
	if err != nil {
		return nil, nil, fmt.Errorf("encode config: %w", err)
	}
	return data, rt, nil
}

// runtimeConf turns a recorded runtime into libcni's.
func runtimeConf(rt *state.Runtime) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{
		ContainerID: rt.ContainerID, NetNS: rt.NetNS, IfName: rt.IfName,
		Args: rt.Args, CapabilityArgs: rt.CapabilityArgs,
	}
}

// poolsOf converts Docker's IPAM data.
func poolsOf(data []api.IPAMData, v6 bool) ([]state.Pool, error) {
	var out []state.Pool
	for _, p := range data {
		if _, _, err := net.ParseCIDR(p.Pool); err != nil {
			return nil, fmt.Errorf("pool %q: %w", p.Pool, err)
		}
		if p.Gateway != "" {
			if _, _, err := net.ParseCIDR(p.Gateway); err != nil {
				return nil, fmt.Errorf("gateway %q: %w", p.Gateway, err)
			}
		}
		out = append(out, state.Pool{AddressSpace: p.AddressSpace, Subnet: p.Pool, Gateway: p.Gateway, V6: v6})
	}
	return out, nil
}
