#!/usr/bin/env bash
# Builds kube-apiserver and kubectl from the Go module proxy into a cache outside
# the repository, once per version. The scratch module requires k8s.io/kubernetes
# and replaces every staging module (which k8s.io/kubernetes points at ./staging)
# with its published v0.X.Y twin, since the proxy's zip has no staging tree.
#
# Prints the directory that holds the two binaries.
set -euo pipefail

version="${KUBE_VERSION:-v1.36.3}"
cache="${NODEKIT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nodekit}"
out="$cache/kube-$version"

if [ -x "$out/bin/kube-apiserver" ] && [ -x "$out/bin/kubectl" ]; then
  echo "$out/bin"
  exit 0
fi

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

cat >tools.go <<'GO'
//go:build tools

package kubebuild

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO

go mod tidy >&2

major="${version#v}"; major="${major%%.*}"
minor="${version#v*.}"; minor="${minor%%.*}"
ldflags="-s -w"
for kv in "gitVersion=$version" "gitMajor=$major" "gitMinor=$minor" "gitTreeState=clean"; do
  ldflags="$ldflags -X k8s.io/component-base/version.$kv -X k8s.io/client-go/pkg/version.$kv"
done
CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/bin/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl >&2
rm -rf "$work"
echo "$out/bin"
