package conformance

import (
	"context"
)

// kubeletArgs are the CNI_ARGS a Kubernetes runtime (containerd, CRI-O)
// passes on every command, with IgnoreUnknown so that plugins that do not
// use them accept them.
func kubeletArgs(att attachment) [][2]string {
	return [][2]string{
		{"IgnoreUnknown", "1"},
		{"K8S_POD_NAMESPACE", "vmct-ns"},
		{"K8S_POD_NAME", "vmct-pod"},
		{"K8S_POD_INFRA_CONTAINER_ID", att.ContainerID},
		{"K8S_POD_UID", "0b6a3f0e-4f1d-4c62-9d5b-8f2f6a1c9e11"},
	}
}

// checkKubeletArgs runs ADD, CHECK and DEL with the CNI_ARGS a Kubernetes
// runtime sends; all must succeed and leave the host as before.
func (s *suite) checkKubeletArgs(ctx context.Context) verdict {
	before, att, cleanup, err := s.beginAttachment()
	if err != nil {
		return fail("%v", err)
	}
	defer cleanup()
	rt := att.runtime()
	rt.Args = kubeletArgs(att)
	if _, err := s.cni.AddNetworkList(ctx, s.net.list, rt); err != nil {
		_ = s.cni.DelNetworkList(ctx, s.net.list, rt)
		return fail("ADD with Kubernetes CNI_ARGS: %v", err)
	}
	if s.atLeast("0.4.0") {
		if err := s.cni.CheckNetworkList(ctx, s.net.list, rt); err != nil {
			_ = s.cni.DelNetworkList(ctx, s.net.list, rt)
			return fail("CHECK with Kubernetes CNI_ARGS: %v", err)
		}
	}
	if err := s.cni.DelNetworkList(ctx, s.net.list, rt); err != nil {
		return fail("DEL with Kubernetes CNI_ARGS: %v", err)
	}
	cleanup()
	if v, ok := s.hygiene(before, "after ADD, CHECK, DEL with Kubernetes CNI_ARGS"); !ok {
		return v
	}
	return pass("ADD, CHECK, DEL accepted IgnoreUnknown=1 and the K8S_POD_* arguments; host as before")
}
