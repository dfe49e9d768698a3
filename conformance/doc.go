// Package conformance is an executable CNI specification for plugins, with
// extra checks for VM-oriented plugins that follow vmcni's hint contract
// (pkg/hint). Point it at a directory of plugin binaries and a conflist; it
// drives the plugins the way runtimes do (through libcni) and, where the
// protocol itself is under test, by executing them directly, and reports
// every check with pass, fail or skip and a reason.
//
// The checks (see Checks for the full list with what each verifies):
//
//   - protocol: VERSION; ADD, CHECK, DEL, DEL; DEL without ADD; DEL after
//     the netns is gone; CHECK failing once the result's interfaces in the
//     netns are deleted, and DEL cleaning up after that; ADD, CHECK and DEL
//     with the CNI_ARGS Kubernetes runtimes send (IgnoreUnknown=1,
//     K8S_POD_*); GC with cni.dev/valid-attachments (libcni) and with
//     the older cni.dev/attachments key alone (direct exec); STATUS; a
//     result for every supported cniVersion (0.4.0, 1.0.0, 1.1.0) and its
//     conversion to the others; the error object (code, msg) for malformed
//     JSON (6), an unknown version (1), missing environment (4) and
//     caller-supplied invalid configs (7); stdout carries exactly one result
//     on ADD, one error object on failure, nothing else.
//   - host hygiene: every check that changes the host compares a snapshot of
//     the host netns's links, addresses, routes and qdiscs, vmcni's nftables
//     rules and the files, sockets, symlinks and empty directories under the
//     watched directories (state dirs, IPAM data dirs, socket dirs) before
//     and after (package hostsnap), plus the caller's Config.ExtraState
//     (what the plugin programs elsewhere: OVS ports, VPP objects).
//   - concurrency: N parallel ADDs then N parallel DELs, no failure, no leak.
//   - VM hint checks (only when the result carries vmcni pseudo-interfaces):
//     the interfaces the result names exist, socketPath is a socket or (for a
//     backend that creates none) its directory exists, pciID is a PCI
//     address, and the pseudo-interface and hint file agree with the result.
//
// Plugins that take one device per attachment get it as a device plugin
// would hand it out: Config.CapabilityArgsPool holds one capability-args
// object per device, each attachment takes a free one, and every plugin
// receives the keys its "capabilities" declare as runtimeConfig, through
// libcni and in the suite's direct execs alike.
//
// The suite creates network namespaces named with Config.NamePrefix (default
// "vmct") under /var/run/netns and removes them; it needs root.
package conformance
