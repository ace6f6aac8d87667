#!/usr/bin/env bash
# Builds Helm from the Go module proxy into a cache outside the repository, once
# per version, for the chart's tests (helm lint, helm template, helm install on
# the test bed's API server). `go install module@version` builds Helm exactly as
# its go.mod pins its dependencies; nothing but the module proxy is reached.
#
# Prints the path of the helm binary on stdout; progress goes to stderr (a first
# build takes a few minutes on 2 cores).
set -euo pipefail

version="${HELM_VERSION:-v4.3.2}"
cache="${NODEKIT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nodekit}"
out="$cache/helm-$version"
bin="$out/bin/helm"

if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi

# Concurrent callers wait for one build; the lock dies with its holder.
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi

start=$SECONDS
echo "building Helm $version from the Go module proxy into $out; a first build takes a few minutes on 2 cores" >&2
( while sleep 30 >/dev/null 2>&1; do echo "  still building Helm $version: $(( (SECONDS - start) / 60 ))m$(( (SECONDS - start) % 60 ))s" >&2; done ) &
ticker=$!
work="$(mktemp -d)"
trap 'kill $ticker 2>/dev/null || true; rm -rf "$work"' EXIT

# Outside any module, so the repository's go.mod plays no part.
cd "$work"
ldflags="-s -w -X helm.sh/helm/v4/internal/version.version=$version -X helm.sh/helm/v4/internal/version.gitTreeState=clean"
GOFLAGS=-mod=mod CGO_ENABLED=0 GOBIN="$out/bin" go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v4/cmd/helm@$version" >&2
echo "built Helm $version in $(( (SECONDS - start) / 60 ))m$(( (SECONDS - start) % 60 ))s" >&2
echo "$bin"
