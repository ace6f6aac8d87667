#!/usr/bin/env bash
# Builds the Kubernetes binaries the test bed runs from the Go module proxy into a
# cache outside the repository, once per version: kube-apiserver and kubectl for
# the API-server test bed, and kubelet, kube-controller-manager, kube-scheduler
# and kube-proxy for the real node. The scratch module requires k8s.io/kubernetes
# and replaces every staging module (which k8s.io/kubernetes points at ./staging)
# with its published v0.X.Y twin, since the proxy's zip has no staging tree.
#
# Prints the directory that holds the binaries on stdout; progress goes to stderr
# (a fresh machine spends about 20 minutes here on 2 cores).
set -euo pipefail

version="${KUBE_VERSION:-v1.36.3}"
cache="${NODEKIT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nodekit}"
out="$cache/kube-$version"
components=(kube-apiserver kubectl kubelet kube-controller-manager kube-scheduler kube-proxy)

find_missing() {
  missing=()
  for c in "${components[@]}"; do
    [ -x "$out/bin/$c" ] || missing+=("$c")
  done
}
find_missing
if [ ${#missing[@]} -eq 0 ]; then
  echo "$out/bin"
  exit 0
fi

# Concurrent callers (make, tests, the demo) wait for one build instead of
# sharing its scratch directory; the lock dies with its holder.
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9
find_missing
if [ ${#missing[@]} -eq 0 ]; then
  echo "$out/bin"
  exit 0
fi

# One line every 30 s while the build runs, so a first run is never minutes of silence.
start=$SECONDS
echo "building Kubernetes $version (${missing[*]}) from the Go module proxy into $out; a first build takes about 20 min on 2 cores" >&2
( while sleep 30; do echo "  still building Kubernetes $version: $(( (SECONDS - start) / 60 ))m$(( (SECONDS - start) % 60 ))s" >&2; done ) >/dev/null &
ticker=$!
trap 'kill $ticker 2>/dev/null || true' EXIT

staging_version="v0.${version#v1.}"
work="$out/src"
rm -rf "$work"
mkdir -p "$work" "$out/bin"
cd "$work"

export GOFLAGS=-mod=mod
go mod download -json "k8s.io/kubernetes@$version" >/dev/null
gomod="$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$version.mod"

{
  echo "module nodekit.local/kubebuild"
  echo
  grep -E '^go |^godebug ' "$gomod"
  echo
  echo "require k8s.io/kubernetes $version"
  echo
  echo "replace ("
  grep -E '=> \./staging/src/' "$gomod" | awk -v v="$staging_version" '{print "\t" $1 " => " $1 " " v}'
  echo ")"
} >go.mod

{
  echo "//go:build tools"
  echo
  echo "package kubebuild"
  echo
  echo "import ("
  for c in "${components[@]}"; do echo "	_ \"k8s.io/kubernetes/cmd/$c\""; done
  echo ")"
} >tools.go

go mod tidy >&2

major="${version#v}"; major="${major%%.*}"
minor="${version#v*.}"; minor="${minor%%.*}"
ldflags="-s -w"
for kv in "gitVersion=$version" "gitMajor=$major" "gitMinor=$minor" "gitTreeState=clean"; do
  ldflags="$ldflags -X k8s.io/component-base/version.$kv -X k8s.io/client-go/pkg/version.$kv"
done
pkgs=()
for c in "${missing[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/bin/" "${pkgs[@]}" >&2
rm -rf "$work"
echo "built Kubernetes $version in $(( (SECONDS - start) / 60 ))m$(( (SECONDS - start) % 60 ))s" >&2
echo "$out/bin"
