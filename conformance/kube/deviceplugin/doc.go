// Package deviceplugin is a small kubelet device plugin (API v1beta1) that
// advertises SR-IOV VFs, named by PCI address, as an extended resource for
// vmcni's Kubernetes end-to-end tests. The tests run it in-process next to a
// real kubelet; it is not shipped.
//
// # Contract
//
// Start serves the v1beta1 DevicePlugin service on the unix socket
// KubeletDir/SocketName(ResourceName) ("vmcni-<resource, '/' as '_'>.sock",
// one per resource: the kubelet keeps one plugin per resource name), then
// registers with the kubelet's Registration service on KubeletDir/kubelet.sock
// (Version v1beta1, Endpoint the socket's file name, ResourceName). The
// kubelet answers Register only after it has dialled the plugin back and
// called GetDevicePluginOptions, so the socket serves before Register is sent.
// Start returns once the first registration succeeded, waiting up to
// Options.StartTimeout for kubelet.sock to appear and accept it.
//
// The plugin answers:
//   - GetDevicePluginOptions: no options (PreStartRequired and
//     GetPreferredAllocationAvailable false).
//   - ListAndWatch: every device of Options.Devices, Healthy, no topology,
//     sent once when the stream opens; the stream then stays open until the
//     plugin stops (or the kubelet goes away). Each registration makes the
//     kubelet open a new stream, which gets the full list again.
//   - Allocate: for each container request one environment variable,
//     EnvName(ResourceName) = the requested device IDs joined by ",", e.g.
//     PCIDEVICE_VMCNI_IO_SRIOV_VF=0000:3b:02.1 — the variable the SR-IOV
//     network device plugin sets. No device nodes, mounts or annotations:
//     the VFs are handed to vm-sriov by PCI address (Multus reads the
//     allocation from the kubelet's pod-resources API and passes it as
//     runtimeConfig.deviceID), and vfio device nodes do not exist on the
//     simulated PCI tree. A device ID the plugin does not advertise is
//     refused with codes.InvalidArgument.
//   - GetPreferredAllocation: the must-include devices, then the available
//     ones in the kubelet's order, up to the allocation size (the kubelet
//     does not call it, since the option is off).
//   - PreStartContainer: an empty answer (not required).
//
// # Kubelet restarts
//
// A starting kubelet deletes every socket in its device-plugin directory,
// then creates a new kubelet.sock. The plugin checks both sockets every
// Options.PollInterval: when its own socket is gone (or replaced) it serves a
// new one, and when kubelet.sock is a new file it registers again, so it is
// back within about one PollInterval after the kubelet listens. A failed
// registration is retried every PollInterval.
//
// Stop (or the end of Start's ctx) stops serving, closing the kubelet's
// ListAndWatch stream, and removes the socket if it is still the plugin's
// own. There is no deregistration in the API: the kubelet marks the
// resource's devices unhealthy when the stream ends.
package deviceplugin
