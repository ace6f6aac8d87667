#!/usr/bin/env bash
# Builds containerd, its runc shim and ctr from the Go module proxy into a cache
# outside the repository, once per version (static, CGO off, as containerd's
# release builds them). The real node (test/realnode) runs them with Debian's
# runc and CNI plugins.
#
# Prints the directory that holds the binaries on stdout; progress on stderr.
set -euo pipefail

version="${CONTAINERD_VERSION:-v2.4.2}"
cache="${NODEKIT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nodekit}"
out="$cache/containerd-$version"
components=(containerd containerd-shim-runc-v2 ctr)

complete() {
  for c in "${components[@]}"; do [ -x "$out/bin/$c" ] || return 1; done
}
if complete; then echo "$out/bin"; exit 0; fi

mkdir -p "$out"
exec 9>"$out/.lock"
flock 9
if complete; then echo "$out/bin"; exit 0; fi

start=$SECONDS
echo "building containerd $version (${components[*]}) from the Go module proxy into $out; a first build takes about 3 min on 2 cores" >&2
( while sleep 30; do echo "  still building containerd $version: $(( (SECONDS - start) / 60 ))m$(( (SECONDS - start) % 60 ))s" >&2; done ) >/dev/null &
ticker=$!
trap 'kill $ticker 2>/dev/null || true' EXIT

work="$out/src"
rm -rf "$work"
mkdir -p "$work" "$out/bin"
cd "$work"
export GOFLAGS=-mod=mod CGO_ENABLED=0
cat >go.mod <<MOD
module nodekit.local/containerdbuild

go 1.26
MOD
{
  echo "//go:build tools"
  echo
  echo "package containerdbuild"
  echo
  echo "import ("
  for c in "${components[@]}"; do echo "	_ \"github.com/containerd/containerd/v2/cmd/$c\""; done
  echo ")"
} >tools.go
go get "github.com/containerd/containerd/v2@$version" >&2
go mod tidy >&2

ld="-s -w -X github.com/containerd/containerd/v2/version.Version=$version"
go build -trimpath -tags "no_btrfs urfave_cli_no_docs" -ldflags "$ld" -o "$out/bin/" \
  github.com/containerd/containerd/v2/cmd/containerd github.com/containerd/containerd/v2/cmd/ctr >&2
# The shim without gRPC, as containerd's Makefile builds it: it speaks ttrpc only.
go build -trimpath -tags "no_btrfs urfave_cli_no_docs no_grpc" -ldflags "$ld" -o "$out/bin/" \
  github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 >&2
rm -rf "$work"
echo "built containerd $version in $(( (SECONDS - start) / 60 ))m$(( (SECONDS - start) % 60 ))s" >&2
echo "$out/bin"
