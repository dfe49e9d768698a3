# vmcni — CNI plugins for VM-based containers.
#   make demo     builds, plumbs a netns with vm-bridge, boots a real VM on the hint, pings it
#   make test     every test (unit, integration in real netns, VM end-to-end); needs root
#   make install  plugins into $(PREFIX) (default /opt/cni/bin)
#   make image    the plugin image as $(BIN)/vmcni-image.tar (no registry, no Docker engine; deploy/README.md)

PREFIX    ?= /opt/cni/bin
BIN       ?= bin
GUEST_DIR ?= /var/cache/vmcni/guest
LAB_DIR ?= /var/cache/vmcni/lab
GO        ?= go
GOFLAGS   ?=
PLUGINS   := $(notdir $(wildcard plugins/*))
LINT      := .cache/tools/golangci-lint
LINT_VERSION := v2.15.0

.PHONY: all build ref install test test-unit fuzz deps guest lab demo lint bench clean
.PHONY: image

all: build

# Static binaries (no cgo), as the image ships them: a plugin is exec'd
# for every pod, and the dynamic loader would add to each exec.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/ ./plugins/... ./vmnet/cmd/... ./cnm-adapter/cmd/... ./conformance/cmd/vmcni-conformance

# The reference plugins (versions pinned in go.mod) the demo, tests and
# benchmarks run next to vmcni, built as their releases are (CGO_ENABLED=0).
ref:
	CGO_ENABLED=0 $(GO) build -o $(BIN)/ref/ github.com/containernetworking/plugins/plugins/main/bridge \
	  github.com/containernetworking/plugins/plugins/main/ptp github.com/containernetworking/plugins/plugins/main/tap \
	  github.com/containernetworking/plugins/plugins/ipam/host-local github.com/containernetworking/plugins/plugins/ipam/static \
	  github.com/containernetworking/cni/cnitool

install: build
	install -d $(DESTDIR)$(PREFIX)
	for p in $(PLUGINS); do install -m 0755 $(BIN)/$$p $(DESTDIR)$(PREFIX)/$$p; done

# The plugin image deploy/daemonset.yaml runs: static plugins and the
# vmcni-install entrypoint in one archive that is both an OCI layout and a
# docker-archive (ctr -n k8s.io images import, docker load).
image:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o $(BIN)/image/ ./plugins/... ./deploy/cmd/vmcni-install
	$(GO) run ./deploy/cmd/vmcni-image -bin $(BIN)/image -o $(BIN)/vmcni-image.tar

# System packages the tests and the demo need (idempotent).
deps:
	bash .ci/deps

guest: deps
	bash vmnet/guest/build.sh $(GUEST_DIR)

# The device lab: QEMU 10 (bookworm-backports, unpacked, not installed) and
# a guest on Debian's generic kernel, where vm-sriov's lab tests run on the
# real SR-IOV and VFIO stack (sriov.TestDeviceLab).
lab: deps
	bash vmnet/guest/lab/build.sh $(LAB_DIR)

# Every test. Integration and VM tests need root; they create namespaces
# and links with a "vmct" prefix and remove them. Packages run one at a
# time (-p 1): each test compares whole-host snapshots.
test: deps guest lab
	VMCNI_GUEST_DIR=$(GUEST_DIR) VMCNI_LAB_DIR=$(LAB_DIR) $(GO) test -p 1 -count=1 -timeout 30m ./...

# Every fuzz target briefly (config parsers and the hint decoder); crashers
# land in testdata/fuzz and become regression tests. The budget is a count
# of executions, not a duration: a -fuzztime duration races Go's fuzz
# coordinator at the deadline and fails with a bare "context deadline
# exceeded" (golang/go#75804, fixed in Go 1.27).
FUZZTIME ?= 100000x
FUZZ_TARGETS := ./bridge-tap/:FuzzParseConfig ./vhostuser/:FuzzParseConfig ./sriov/:FuzzParseConfig \
	./vpp/:FuzzParseConfig ./pkg/hint/:FuzzDecode \
	./bridge-tap/:FuzzDel ./vhostuser/:FuzzDel ./sriov/:FuzzDel ./vpp/:FuzzDel
fuzz:
	for t in $(FUZZ_TARGETS); do \
	  $(GO) test $${t%%:*} -run XXX -fuzz "^$${t##*:}$$" -fuzztime $(FUZZTIME) -parallel 1 || exit 1; \
	done

# Tests that need neither root nor a guest image.
test-unit:
	$(GO) test -count=1 ./internal/cnierr/... ./internal/undo/... ./pkg/hint/... ./vmnet/

demo: deps guest build ref
	BIN=$(BIN) VMCNI_GUEST_DIR=$(GUEST_DIR) bash vmnet/demo.sh

# Benchmarks against the reference plugins, same run; writes docs/benchmarks.md
# and docs/benchmarks.svg. Needs root. BENCH_FLAGS e.g. "-n 10 -scale 1,10".
bench: build ref
	mkdir -p $(BIN)/all && cp $(BIN)/vm-* $(BIN)/ref/* $(BIN)/all/
	$(GO) run ./conformance/cmd/vmcni-bench -bin $(BIN)/all -out docs/benchmarks.md $(BENCH_FLAGS)

$(LINT):
	GOBIN=$(CURDIR)/.cache/tools GOFLAGS= $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(LINT_VERSION)

lint: $(LINT)
	$(GO) vet ./...
	$(LINT) run ./...

clean:
	rm -rf $(BIN)
