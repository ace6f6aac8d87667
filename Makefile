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

# Debian packages the test bed and the demo use.
DEB_PACKAGES := iptables iproute2 etcd-server awscli python3-botocore curl procps prometheus
FUZZTIME ?= 5s

.PHONY: build deps kube check unit fuzz e2e test demo bench clean

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

## kube: build kube-apiserver and kubectl once into $(NODEKIT_CACHE).
kube:
	@echo "kube-apiserver binaries: $(KUBE_BIN)"

check:
	@bad=$$(gofmt -l $$(git ls-files '*.go') $$(git ls-files --others --exclude-standard '*.go')); \
	if [ -n "$$bad" ]; then echo "gofmt needed on:"; echo "$$bad"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags e2e ./test/e2e/...

unit: kube
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

e2e: kube build
	NODEKIT_KUBE_BIN=$(KUBE_BIN) NODEKIT_BIN=$(CURDIR)/bin $(GO) test -tags e2e -count=1 -timeout 25m ./test/e2e/...

test: deps check unit fuzz e2e

demo: deps kube build
	@echo "make demo: the full demo arrives with the demo issue; for now see 'make test'."

bench:
	@echo "make bench: not written yet"

clean:
	rm -rf bin
