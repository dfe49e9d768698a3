// Package testutil holds the helpers every vmcni test shares: root checks,
// throwaway network namespaces, built plugin binaries, a libcni driver,
// private daemons (OVS-DPDK, containerd: ContainerdConfig renders the one
// config.toml every private containerd uses) and host snapshots that prove
// an operation left the host exactly as before.
//
// Tests only touch namespaces and links they create, named with the prefix
// "vmct" plus a random suffix, and remove them in t.Cleanup.
package testutil
