package conformance_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// fakeKube is a fake kube-apiserver serving one pod and one
// NetworkAttachmentDefinition as JSON, for exactly the requests Multus
// (client-go) makes: GET of the pod, GET of the NAD, PUT of the pod's
// status subresource (the network-status annotation) and POST of events
// (sent asynchronously by Multus's event recorder, so optional). Anything
// else gets a 404 Status and is listed by Unexpected.
type fakeKube struct {
	srv              *httptest.Server
	ns, pod, nad     string
	podJSON, nadJSON []byte

	mu            sync.Mutex // guards requests, unexpected and statusUpdates
	requests      []string
	unexpected    []string
	statusUpdates []fakeKubeBody
}

// fakeKubeBody is a request body and its content type.
type fakeKubeBody struct {
	contentType string
	body        []byte
}

// startFakeKube serves pod (name, UID, annotations) and nad (name,
// annotations, spec.config) in namespace ns until the test ends.
func startFakeKube(t *testing.T, ns, pod, podUID string, podAnnots map[string]string,
	nad string, nadAnnots map[string]string, nadConfig []byte,
) *fakeKube {
	t.Helper()
	f := &fakeKube{ns: ns, pod: pod, nad: nad}
	f.podJSON = mustJSON(map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": pod, "namespace": ns, "uid": podUID, "annotations": podAnnots, "resourceVersion": "1"},
		"spec":     map[string]any{"containers": []map[string]any{{"name": "vm", "image": "vmct"}}},
		"status":   map[string]any{"phase": "Pending"},
	})
	f.nadJSON = mustJSON(map[string]any{
		"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
		"metadata": map[string]any{"name": nad, "namespace": ns, "annotations": nadAnnots, "resourceVersion": "1"},
		"spec":     map[string]any{"config": string(nadConfig)},
	})
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeKube) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	req := r.Method + " " + r.URL.Path
	podPath := "/api/v1/namespaces/" + f.ns + "/pods/" + f.pod
	f.mu.Lock()
	f.requests = append(f.requests, req)
	f.mu.Unlock()
	reply := func(code int, data []byte) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = w.Write(data)
	}
	switch req {
	case "GET " + podPath:
		reply(http.StatusOK, f.podJSON)
	case "GET /apis/k8s.cni.cncf.io/v1/namespaces/" + f.ns + "/network-attachment-definitions/" + f.nad:
		reply(http.StatusOK, f.nadJSON)
	case "PUT " + podPath + "/status":
		f.mu.Lock()
		f.statusUpdates = append(f.statusUpdates, fakeKubeBody{r.Header.Get("Content-Type"), body})
		f.mu.Unlock()
		reply(http.StatusOK, f.podJSON)
	case "POST /api/v1/namespaces/" + f.ns + "/events":
		reply(http.StatusCreated, mustJSON(map[string]any{
			"apiVersion": "v1", "kind": "Event",
			"metadata": map[string]any{"name": "vmct-event", "namespace": f.ns},
		}))
	default:
		f.mu.Lock()
		f.unexpected = append(f.unexpected, req)
		f.mu.Unlock()
		reply(http.StatusNotFound, mustJSON(map[string]any{
			"apiVersion": "v1", "kind": "Status", "status": "Failure", "reason": "NotFound",
			"code": http.StatusNotFound, "message": "vmct fake apiserver: unexpected " + req,
		}))
	}
}

// Requests returns the requests served so far, in order, as "METHOD path".
func (f *fakeKube) Requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

// Unexpected returns the requests answered with 404.
func (f *fakeKube) Unexpected() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.unexpected...)
}

// StatusAnnotations returns the pod annotations of each status update
// (client-go sends them as Kubernetes protobuf, or JSON).
func (f *fakeKube) StatusAnnotations() ([]map[string]string, error) {
	f.mu.Lock()
	updates := append([]fakeKubeBody(nil), f.statusUpdates...)
	f.mu.Unlock()
	var out []map[string]string
	for _, u := range updates {
		var annots map[string]string
		var err error
		if strings.HasPrefix(u.contentType, "application/json") {
			var pod struct {
				Metadata struct {
					Annotations map[string]string `json:"annotations"`
				} `json:"metadata"`
			}
			err = json.Unmarshal(u.body, &pod)
			annots = pod.Metadata.Annotations
		} else {
			annots, err = protoPodAnnotations(u.body)
		}
		if err != nil {
			return nil, fmt.Errorf("pod status update (%s): %w", u.contentType, err)
		}
		out = append(out, annots)
	}
	return out, nil
}

// Kubeconfig writes a kubeconfig for the fake server (JSON is YAML; no
// auth) and returns its path.
func (f *fakeKube) Kubeconfig(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	data := mustJSON(map[string]any{
		"apiVersion": "v1", "kind": "Config", "current-context": "vmct",
		"clusters": []map[string]any{{"name": "vmct", "cluster": map[string]any{"server": f.srv.URL}}},
		"users":    []map[string]any{{"name": "vmct", "user": map[string]any{}}},
		"contexts": []map[string]any{{"name": "vmct", "context": map[string]any{"cluster": "vmct", "user": "vmct"}}},
	})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// protoPodAnnotations reads metadata.annotations of a Pod in the
// Kubernetes protobuf envelope: "k8s\x00", then a runtime.Unknown whose
// field 2 (raw) is the Pod; the Pod's field 1 is its ObjectMeta, whose
// field 12 is the annotations map (entries: key 1, value 2).
func protoPodAnnotations(b []byte) (map[string]string, error) {
	magic := []byte("k8s\x00")
	if !bytes.HasPrefix(b, magic) {
		return nil, errors.New("no Kubernetes protobuf magic")
	}
	raw, err := protoField(b[len(magic):], 2)
	if err != nil {
		return nil, fmt.Errorf("runtime.Unknown raw: %w", err)
	}
	meta, err := protoField(raw, 1)
	if err != nil {
		return nil, fmt.Errorf("pod metadata: %w", err)
	}
	annots := map[string]string{}
	err = protoEach(meta, func(num int, entry []byte) error {
		if num != 12 {
			return nil
		}
		var key, val string
		err := protoEach(entry, func(n int, v []byte) error {
			switch n {
			case 1:
				key = string(v)
			case 2:
				val = string(v)
			}
			return nil
		})
		annots[key] = val
		return err
	})
	return annots, err
}

// protoField returns the last length-delimited field num of message b.
func protoField(b []byte, num int) ([]byte, error) {
	var out []byte
	found := false
	err := protoEach(b, func(n int, v []byte) error {
		if n == num {
			out, found = v, true
		}
		return nil
	})
	if err == nil && !found {
		err = fmt.Errorf("no field %d", num)
	}
	return out, err
}

// protoEach calls fn for each length-delimited field of message b and
// skips the other wire types.
func protoEach(b []byte, fn func(num int, v []byte) error) error {
	for len(b) > 0 {
		tag, n := binary.Uvarint(b)
		if n <= 0 {
			return errors.New("bad tag")
		}
		b = b[n:]
		num, wire := int(tag>>3), tag&7
		switch wire {
		case 0:
			if _, n = binary.Uvarint(b); n <= 0 {
				return errors.New("bad varint")
			}
			b = b[n:]
		case 1, 5:
			size := 8
			if wire == 5 {
				size = 4
			}
			if len(b) < size {
				return errors.New("short fixed-size field")
			}
			b = b[size:]
		case 2:
			l, n := binary.Uvarint(b)
			if n <= 0 || uint64(len(b)-n) < l {
				return errors.New("bad length")
			}
			if err := fn(num, b[n:n+int(l)]); err != nil {
				return err
			}
			b = b[n+int(l):]
		default:
			return fmt.Errorf("unsupported wire type %d", wire)
		}
	}
	return nil
}
