// Package image builds the nodekit container image: one definition (this
// file) for both ways it is made.
//
//   - Locally (`make image`, and the real-node tests through Build): on a
//     base made here from Debian 12 packages (package debianbase) with the
//     iptables-wrapper arrangement of distroless-iptables, written as an
//     OCI image-layout archive that `ctr -n k8s.io images import` reads.
//   - For a release (`make image-release`): on ReleaseBase, pulled from its
//     registry, pushed to the release reference.
//
// Either way the image is an index for linux/amd64 and linux/arm64 whose
// images add one layer to the base: the three agents, built from this tree
// with CGO_ENABLED=0, in /usr/local/bin; and the same configuration (user,
// entrypoint, environment, labels). deploy/nodekit.yaml picks an agent per
// container; the package's tests check the built image against it.
package image

import (
	"fmt"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

const (
	// LocalBase selects the base made from Debian packages.
	LocalBase = "debian"
	// ReleaseBase is the release image's base: Kubernetes' distroless image
	// with iptables (nft and legacy) behind iptables-wrapper, Debian 12.
	// Pin it by digest (…@sha256:…) when cutting a release.
	ReleaseBase = "registry.k8s.io/build-image/distroless-iptables:v0.8.7"
	// Module is the Go module the binaries are built from.
	Module = "github.com/nodekit/nodekit"
	// BinDir is where the agents live in the image.
	BinDir = "/usr/local/bin"
	// Path is the image's PATH: go-iptables finds iptables and ip6tables
	// through it (in /usr/sbin).
	Path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// Binary is one program in the image.
type Binary struct {
	// Package is the Go package, relative to the module root ("./cmd/logship").
	Package string
	// Path is where the image holds it.
	Path string
}

// Name is the program's file name.
func (b Binary) Name() string { return path.Base(b.Path) }

// Definition is what the nodekit image is, whichever base it is built on.
type Definition struct {
	Binaries []Binary
	// User is the default user, uid:gid. nodekit.yaml sets each
	// container's own; an image run without one is not root.
	User       string
	Entrypoint []string
	Env        []string
	WorkingDir string
	// Platforms the image is built for.
	Platforms []v1.Platform
}

// Nodekit is the nodekit image's definition.
func Nodekit() Definition {
	var bins []Binary
	for _, name := range []string{"metaproxy", "logship", "nodeexp"} {
		bins = append(bins, Binary{Package: "./cmd/" + name, Path: BinDir + "/" + name})
	}
	return Definition{
		Binaries: bins,
		// distroless' "nonroot".
		User:       "65532:65532",
		Entrypoint: []string{BinDir + "/nodeexp"},
		Env:        []string{"PATH=" + Path},
		WorkingDir: "/",
		Platforms: []v1.Platform{
			{OS: "linux", Architecture: "amd64"},
			{OS: "linux", Architecture: "arm64", Variant: "v8"},
		},
	}
}

// DefaultLDFlags are the linker flags of the Makefile's LDFLAGS for version:
// stripped, with the version every agent's --version prints.
func DefaultLDFlags(version string) string {
	return "-s -w -X " + Module + "/pkg/agent.version=" + version
}

// ParsePlatform reads "linux/arm64" (or "linux/arm64/v8") into a platform,
// with the variant arm64 images carry by convention.
func ParsePlatform(s string) (v1.Platform, error) {
	p, err := v1.ParsePlatform(s)
	if err != nil {
		return v1.Platform{}, fmt.Errorf("platform %q: %w", s, err)
	}
	if p.OS != "linux" || (p.Architecture != "amd64" && p.Architecture != "arm64") {
		return v1.Platform{}, fmt.Errorf("platform %q: nodekit builds linux/amd64 and linux/arm64", s)
	}
	if p.Architecture == "arm64" && p.Variant == "" {
		p.Variant = "v8"
	}
	return *p, nil
}

// PlatformString is the inverse of ParsePlatform, without the arm64 variant.
func PlatformString(p v1.Platform) string {
	return strings.Join([]string{p.OS, p.Architecture}, "/")
}
