package plugin

import (
	"encoding/json"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/vmcni/vmcni/pkg/cnierr"
)

// ValidAttachments reads a GC config's cni.dev/valid-attachments, or the
// older cni.dev/attachments key when the first is absent, as a set.
func ValidAttachments(stdin []byte) (map[types.GCAttachment]bool, error) {
	var keys struct {
		Valid []types.GCAttachment `json:"cni.dev/valid-attachments"`
		Older []types.GCAttachment `json:"cni.dev/attachments"`
	}
	if err := json.Unmarshal(stdin, &keys); err != nil {
		return nil, cnierr.Decode("parse GC attachments: %w", err)
	}
	list := keys.Valid
	if list == nil {
		list = keys.Older
	}
	valid := make(map[types.GCAttachment]bool, len(list))
	for _, a := range list {
		valid[a] = true
	}
	return valid, nil
}
