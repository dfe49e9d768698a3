package image

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// dockerHub is how containerd, the kubelet and Docker spell Docker Hub in a
// fully qualified reference; go-containerregistry says "index.docker.io".
const dockerHub = "docker.io"

// Normalize returns the fully qualified form of an image reference as users
// write it in a pod spec: the registry defaults to docker.io (official
// images to docker.io/library/), the tag to "latest":
// "vmcni/vmcni:dev" gives "docker.io/vmcni/vmcni:dev". A digest reference
// is refused: the archive needs a tag to name the image.
func Normalize(ref string) (string, error) {
	if strings.Contains(ref, "@") {
		return "", fmt.Errorf("image reference %q: a tag is required, not a digest", ref)
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		return "", fmt.Errorf("image reference %q: %w", ref, err)
	}
	return qualified(tag), nil
}

// qualified spells tag as registry/repository:tag with Docker Hub as
// "docker.io".
func qualified(tag name.Tag) string {
	reg := tag.RegistryStr()
	if reg == name.DefaultRegistry {
		reg = dockerHub
	}
	return reg + "/" + tag.RepositoryStr() + ":" + tag.TagStr()
}

// parseRef checks that ref is a fully qualified tag already in normal form
// (Normalize(ref) == ref) and returns it parsed.
func parseRef(ref string) (name.Tag, error) {
	if strings.Contains(ref, "@") {
		return name.Tag{}, fmt.Errorf("image reference %q: a tag is required, not a digest", ref)
	}
	tag, err := name.NewTag(ref, name.StrictValidation)
	if err != nil {
		return name.Tag{}, fmt.Errorf("image reference %q must be fully qualified, registry/repository:tag (e.g. %q): %w",
			ref, "docker.io/vmcni/vmcni:dev", err)
	}
	if q := qualified(tag); q != ref {
		return name.Tag{}, fmt.Errorf("image reference %q is not in normal form: write %q (the name containerd and the kubelet use)", ref, q)
	}
	return tag, nil
}
