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

# Debian packages the test bed and the demo use.
DEB_PACKAGES := iptables iproute2 etcd-server awscli python3-botocore curl procps prometheus \
  runc containernetworking-plugins busybox-static conntrack
# A count, not a duration: a duration-bounded run can fail with a bare "context deadline
# exceeded" when its time runs out (golang/go#75804, fixed only in Go 1.27).
FUZZTIME ?= 5000x

.PHONY: build deps kube containerd node-exporter check unit fuzz e2e test demo demo-realnode bench clean

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
	tmp=$$(mktemp -d) && cd $$tmp && GOBIN=$(dir $(NODE_EXPORTER_BIN)) GOFLAGS=-mod=mod $(GO) install github.com/prometheus/node_exporter@$(NODE_EXPORTER_VERSION); rc=$$?; rm -rf $$tmp; exit $$rc

check:
	@bad=$$(gofmt -l $$(git ls-files '*.go') $$(git ls-files --others --exclude-standard '*.go')); \
	if [ -n "$$bad" ]; then echo "gofmt needed on:"; echo "$$bad"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags e2e ./test/e2e/...

unit: kube node-exporter
	NODEKIT_KUBE_BIN=$(KUBE_BIN) $(GO) test -race -timeout 20m ./...

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
e2e: kube containerd build image
	NODEKIT_KUBE_BIN=$(KUBE_BIN) NODEKIT_CONTAINERD_BIN=$(CONTAINERD_BIN) NODEKIT_BIN=$(CURDIR)/bin \
	  NODEKIT_IMAGE=$(CURDIR)/bin/image/nodekit.oci.tar $(GO) test -tags e2e -count=1 -timeout 25m ./test/e2e/...

test: deps check unit fuzz e2e

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
