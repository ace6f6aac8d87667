# nodekit: `make demo` and `make test` are the two set-up commands (README).
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build

GO         ?= go
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS    := -s -w -X github.com/nodekit/nodekit/pkg/agent.version=$(VERSION)
BINARIES   := metaproxy logship nodeexp
# The kube-apiserver build lives outside the repo so clones and re-runs share it.
NODEKIT_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/nodekit
export NODEKIT_CACHE
KUBE_BIN = $(shell bash test/kubeapi/build.sh)
# containerd, its runc shim and ctr for the real node, built the same way.
CONTAINERD_BIN = $(shell bash test/realnode/build-containerd.sh)
# node_exporter, built from the Go module proxy, for nodeexp's side-by-side
# tests and benchmarks.
NODE_EXPORTER_VERSION := v1.12.1
NODE_EXPORTER_BIN ?= $(NODEKIT_CACHE)/bin/node_exporter
export NODE_EXPORTER_BIN
# Helm v4 from the Go module proxy, for the chart's lint, render and install tests.
HELM = $(shell bash test/helm/build.sh)
# arm64 (Graviton): the binaries, and the unit tests of the packages that parse
# and encode bytes, run under QEMU user emulation. `go test -exec` hands each
# test binary to qemu-aarch64-static, so no binfmt_misc registration is needed.
QEMU_AARCH64 ?= qemu-aarch64-static
# The collectors (procfs, sysfs parsing) and constmetric (exposition) for nodeexp;
# parse, record, batch, checkpoint and query for logship; imds and role for metaproxy.
ARM64_TEST_PKGS := ./pkg/logship/parse ./pkg/logship/record ./pkg/logship/batch ./pkg/logship/checkpoint \
	./pkg/logship/query ./pkg/metaproxy/imds ./pkg/metaproxy/role ./pkg/nodeexp/constmetric \
	./pkg/nodeexp ./pkg/nodeexp/podstats ./pkg/nodeexp/podnames

# Debian packages the test bed and the demo use.
DEB_PACKAGES := iptables iproute2 etcd-server awscli python3-botocore curl procps prometheus \
  runc containernetworking-plugins busybox-static conntrack qemu-user-static
# A count, not a duration: a duration-bounded run can fail with a bare "context deadline
# exceeded" when its time runs out (golang/go#75804, fixed only in Go 1.27).
FUZZTIME ?= 5000x

.PHONY: build deps kube containerd node-exporter helm chart build-arm64 unit-arm64 check unit fuzz e2e test faults demo demo-realnode bench clean

build:
	mkdir -p bin
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ $(addprefix ./cmd/,$(BINARIES))

## deps: install missing Debian packages (as root; elsewhere it only checks).
deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "missing Debian packages:$$missing (run as root to install them)" >&2; exit 1; fi; \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

## kube: build kube-apiserver, kubectl and the node's Kubernetes binaries once into $(NODEKIT_CACHE).
kube:
	@echo "Kubernetes binaries: $(KUBE_BIN)"

## containerd: build containerd, its shim and ctr once into $(NODEKIT_CACHE).
containerd:
	@echo "containerd binaries: $(CONTAINERD_BIN)"

node-exporter: $(NODE_EXPORTER_BIN)
$(NODE_EXPORTER_BIN):
	@echo "building node_exporter $(NODE_EXPORTER_VERSION) from the Go module proxy into $(dir $(NODE_EXPORTER_BIN)); a first build takes a few minutes"
	@start=$$SECONDS; tmp=$$(mktemp -d); \
	( while sleep 30 >/dev/null 2>&1; do echo "  still building node_exporter $(NODE_EXPORTER_VERSION): $$(( (SECONDS - start) / 60 ))m$$(( (SECONDS - start) % 60 ))s"; done ) & ticker=$$!; \
	trap 'kill $$ticker 2>/dev/null || true; rm -rf $$tmp' EXIT; \
	cd $$tmp && GOBIN=$(dir $(NODE_EXPORTER_BIN)) GOFLAGS=-mod=mod $(GO) install github.com/prometheus/node_exporter@$(NODE_EXPORTER_VERSION); \
	echo "built node_exporter in $$(( (SECONDS - start) / 60 ))m$$(( (SECONDS - start) % 60 ))s"

## helm: build Helm once into $(NODEKIT_CACHE).
helm:
	@echo "helm: $(HELM)"

## chart: helm lint and helm template of deploy/helm/nodekit (the Go tests in
## deploy/ compare the render with nodekit.yaml and try every value).
chart: helm
	@home=$$(mktemp -d); trap 'rm -rf $$home' EXIT; \
	export HOME=$$home HELM_CACHE_HOME=$$home/cache HELM_CONFIG_HOME=$$home/config HELM_DATA_HOME=$$home/data; \
	$(HELM) lint --strict deploy/helm/nodekit --namespace nodekit; \
	$(HELM) template nodekit deploy/helm/nodekit --namespace nodekit >/dev/null; \
	echo "helm template deploy/helm/nodekit: ok"

## build-arm64: the three binaries for linux/arm64 in bin/linux-arm64/, each
## started once under QEMU (--version) to prove it runs.
build-arm64:
	mkdir -p bin/linux-arm64
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/linux-arm64/ $(addprefix ./cmd/,$(BINARIES))
	@for b in $(BINARIES); do printf '%s (arm64, QEMU): ' $$b; $(QEMU_AARCH64) bin/linux-arm64/$$b --version; done

## unit-arm64: the parsing and encoding packages' unit tests on arm64 under QEMU.
## A test that re-executes its own binary cannot run without binfmt_misc: the
## kernel cannot exec an arm64 file itself (ARM64_SKIP).
ARM64_SKIP := ^TestKillDuringCommits$$
unit-arm64:
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) test -exec $(QEMU_AARCH64) -count=1 -timeout 15m -skip '$(ARM64_SKIP)' $(ARM64_TEST_PKGS)

check:
	@bad=$$(gofmt -l $$(git ls-files '*.go') $$(git ls-files --others --exclude-standard '*.go')); \
	if [ -n "$$bad" ]; then echo "gofmt needed on:"; echo "$$bad"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags e2e ./test/e2e/...
	@# SREs run `logship query` on their laptops: cmd/logship builds there.
	@for t in darwin/arm64 darwin/amd64 windows/amd64; do \
	  echo "go build ./cmd/logship for $$t"; \
	  GOOS=$${t%/*} GOARCH=$${t#*/} CGO_ENABLED=0 $(GO) build -o /dev/null ./cmd/logship; \
	done

## The image builder compresses and hashes every layer: under the race
## detector that alone takes two minutes, for code with no concurrency of
## its own; its tests run without it.
NORACE_PKGS := ./deploy/image
unit: kube node-exporter helm
	NODEKIT_KUBE_BIN=$(KUBE_BIN) NODEKIT_HELM=$(HELM) $(GO) test -race -timeout 20m $$($(GO) list ./... | grep -v -x -F $(addprefix -e github.com/nodekit/nodekit/,$(patsubst ./%,%,$(NORACE_PKGS))))
	$(GO) test -timeout 10m $(NORACE_PKGS)

## fuzz: a short run of every fuzz target.
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
	  for f in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/func //'); do \
	    echo "fuzz $$pkg $$f ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

# The real-node test installs the image as README.md's install block builds it.
e2e: IMAGE_REF := localhost/nodekit:dev
e2e: kube containerd helm build image
	NODEKIT_KUBE_BIN=$(KUBE_BIN) NODEKIT_CONTAINERD_BIN=$(CONTAINERD_BIN) NODEKIT_HELM=$(HELM) NODEKIT_BIN=$(CURDIR)/bin \
	  NODEKIT_IMAGE=$(CURDIR)/bin/image/nodekit.oci.tar $(GO) test -tags e2e -count=1 -timeout 45m ./test/e2e/...

test: deps check chart unit build-arm64 unit-arm64 fuzz e2e

## faults: the fault campaign on the real node at full length (storms, outages, a partition,
## a crash, a full disk, pod churn; about 25 minutes), written to FAULTS.md. make test runs
## the same scenarios short.
faults: IMAGE_REF := localhost/nodekit:dev
faults: deps kube containerd build image
	NODEKIT_KUBE_BIN=$(KUBE_BIN) NODEKIT_CONTAINERD_BIN=$(CONTAINERD_BIN) NODEKIT_BIN=$(CURDIR)/bin \
	  NODEKIT_IMAGE=$(CURDIR)/bin/image/nodekit.oci.tar NODEKIT_FAULTS=full NODEKIT_FAULTS_REPORT=$(CURDIR)/FAULTS.md \
	  $(GO) test -tags e2e -count=1 -timeout 60m -run '^TestFault' -v ./test/e2e/

## demo: a whole node on this machine (root); DEMO_ONESHOT=1 tears down and exits.
demo: deps kube build
	CGO_ENABLED=0 $(GO) build -o bin/demo ./test/demo
	NODEKIT_KUBE_BIN=$(KUBE_BIN) bin/demo --bin $(CURDIR)/bin

## image: the nodekit image for linux/amd64 and linux/arm64, built here without a registry, as an
## OCI archive (bin/image/nodekit.oci.tar, named IMAGE_REF, default localhost/nodekit:VERSION) for
## `ctr -n k8s.io images import`. Its base is made from Debian packages, cached in $(NODEKIT_CACHE)/image.
## image-release: the same image on the release base (distroless-iptables), pushed to RELEASE_REF.
IMAGE_REF   ?=
RELEASE_REF ?= ghcr.io/nodekit/nodekit:$(VERSION)
.PHONY: image image-release
image:
	$(GO) run ./deploy/image/mkimage --out bin/image --version '$(VERSION)' --ldflags '$(LDFLAGS)' $(if $(IMAGE_REF),--ref '$(IMAGE_REF)')

image-release:
	$(GO) run ./deploy/image/mkimage --base release --push --ref '$(RELEASE_REF)' --version '$(VERSION)' --ldflags '$(LDFLAGS)'

## demo-realnode: the same story on a real kubelet and containerd (test/realnode), nodekit
## installed from `make image` as README.md says (root; the first run builds Kubernetes,
## containerd and the image: about 20 minutes on 2 cores).
demo-realnode: IMAGE_REF := localhost/nodekit:dev
demo-realnode: deps kube containerd image
	CGO_ENABLED=0 $(GO) build -o bin/demo ./test/demo
	NODEKIT_KUBE_BIN=$(KUBE_BIN) NODEKIT_CONTAINERD_BIN=$(CONTAINERD_BIN) bin/demo --real-node

## bench: measure every figure (root, about 2 min) and write BENCHMARKS.md.
# The real-node area installs the image as README.md's install block builds it.
bench: IMAGE_REF := localhost/nodekit:dev
bench: deps kube containerd node-exporter build image
	NODEKIT_KUBE_BIN=$(KUBE_BIN) NODEKIT_CONTAINERD_BIN=$(CONTAINERD_BIN) $(GO) run ./test/bench -bin bin -out BENCHMARKS.md

clean:
	rm -rf bin
