// Package kube starts a real single-node Kubernetes cluster for vmcni's
// end-to-end tests: etcd (Debian's etcd-server), the control plane, a
// kubelet and kube-proxy built from k8s.io/kubernetes (Version) and cached
// under /var/cache/vmcni/kube, a private containerd 1.6, and Multus as the
// cluster's CNI with the reference bridge as the default network.
//
// Everything a cluster creates lives under its own directory or is
// recorded before it is changed (sysctls the kubelet sets, iptables chains,
// CNI directories), and Stop puts the host back as it was.
package kube
