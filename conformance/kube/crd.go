package kube

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/vmcni/vmcni/internal/testutil"
)

// nadCRD returns the NetworkAttachmentDefinition CRD as Multus ships it
// (the first CustomResourceDefinition of its quick-start manifest, in the
// module testutil.MultusVersion).
func nadCRD() (string, error) {
	cmd := exec.Command("go", "mod", "download", "-json", "gopkg.in/k8snetworkplumbingwg/multus-cni.v4@"+testutil.MultusVersion)
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("download multus: %w", err)
	}
	var info struct{ Dir string }
	if err = json.Unmarshal(out, &info); err != nil || info.Dir == "" {
		return "", fmt.Errorf("download multus: no module dir in %s", out)
	}
	data, err := os.ReadFile(filepath.Join(info.Dir, "deployments", "multus-daemonset.yml"))
	if err != nil {
		return "", err
	}
	for _, doc := range strings.Split(string(data), "\n---\n") {
		if strings.Contains(doc, "\nkind: CustomResourceDefinition\n") {
			return doc, nil
		}
	}
	return "", fmt.Errorf("no CustomResourceDefinition in Multus %s's manifest", testutil.MultusVersion)
}
