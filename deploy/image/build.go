package image

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Options say how to build the image. The zero value builds the local
// image of the working tree's version for both platforms.
type Options struct {
	// RepoDir is the nodekit source tree (default: the module root above
	// the working directory).
	RepoDir string
	// Version is stamped into the binaries and labels (default: git
	// describe, as the Makefile's VERSION).
	Version string
	// LDFlags for go build (default DefaultLDFlags(Version), the
	// Makefile's LDFLAGS).
	LDFlags string
	// Reference names the image: the archive's image name, or where Push
	// sends it (default localhost/nodekit:<Version>).
	Reference string
	// Platforms, e.g. "linux/amd64" (default: the definition's, amd64 and
	// arm64).
	Platforms []string
	// Base is LocalBase (the default) or an image reference (ReleaseBase).
	Base string
	// OutDir receives the OCI layout (nodekit-oci/) and its archive
	// (nodekit.oci.tar). Required unless Push is set.
	OutDir string
	// Push sends the image to Reference's registry.
	Push bool
	// CacheDir keeps the Debian bases and apt's state (default
	// $NODEKIT_CACHE, else the user cache directory's nodekit/).
	CacheDir string
	// Logger receives progress; nil discards it.
	Logger *slog.Logger
	// Keychain authenticates registry access (default: docker's config
	// and credential helpers).
	Keychain authn.Keychain
}

// Result is what Build made.
type Result struct {
	// Reference is the image's name: the archive's io.containerd.image.name
	// annotation, or where it was pushed.
	Reference string
	// Archive is the OCI image-layout tar for `ctr -n k8s.io images import`
	// (empty without OutDir).
	Archive string
	// Layout is the same layout as a directory.
	Layout string
	// Digest is the image index's digest.
	Digest string
	// Platforms built, e.g. "linux/arm64/v8".
	Platforms []string
	// ArchiveBytes is the archive's size.
	ArchiveBytes int64
	// Took is how long the build took.
	Took time.Duration
}

// Archive and layout names under Options.OutDir.
const (
	ArchiveName = "nodekit.oci.tar"
	LayoutName  = "nodekit-oci"
)

// Build compiles the agents for every platform, adds them to the base and
// writes the multi-platform image to OutDir and/or pushes it. It prints
// progress to opts.Logger, so a first run (Debian packages, cold Go builds
// for two architectures: a few minutes) is never silent.
func Build(ctx context.Context, opts Options) (Result, error) {
	start := time.Now()
	if err := opts.defaults(ctx); err != nil {
		return Result{}, err
	}
	ref, err := name.ParseReference(opts.Reference)
	if err != nil {
		return Result{}, fmt.Errorf("image reference %q: %w", opts.Reference, err)
	}
	if opts.OutDir == "" && !opts.Push {
		return Result{}, errors.New("nothing to do: set OutDir, Push or both")
	}
	def := Nodekit()
	platforms, err := opts.platforms(def)
	if err != nil {
		return Result{}, err
	}
	log := opts.Logger
	names := make([]string, len(platforms))
	for i, p := range platforms {
		names[i] = p.String()
	}
	log.Info("building the nodekit image", "reference", ref.Name(), "version", opts.Version, "platforms", strings.Join(names, ","), "base", opts.Base)

	work, err := os.MkdirTemp("", "nodekit-image-")
	if err != nil {
		return Result{}, fmt.Errorf("creating a work directory: %w", err)
	}
	defer os.RemoveAll(work)

	b := builder{opts: opts, def: def, work: work, log: log}
	var adds []mutate.IndexAddendum
	// An index of the same kind as its images: a Docker base (as some
	// registries' images are) makes a Docker manifest list.
	indexType := types.OCIImageIndex
	for _, p := range platforms {
		img, err := b.image(ctx, p)
		if err != nil {
			return Result{}, fmt.Errorf("%s: %w", p, err)
		}
		if mt, err := img.MediaType(); err == nil && mt == types.DockerManifestSchema2 {
			indexType = types.DockerManifestList
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, indexType), adds...)
	digest, err := idx.Digest()
	if err != nil {
		return Result{}, fmt.Errorf("computing the image index: %w", err)
	}
	res := Result{Reference: ref.Name(), Digest: digest.String(), Platforms: names}

	if opts.OutDir != "" {
		if err := writeLayout(ctx, &res, idx, ref, opts.OutDir); err != nil {
			return Result{}, err
		}
		log.Info("wrote the image", "archive", res.Archive, "MiB", fmt.Sprintf("%.1f", float64(res.ArchiveBytes)/(1<<20)), "digest", res.Digest)
	}
	if opts.Push {
		pushStart := time.Now()
		if err := remote.WriteIndex(ref, idx, remote.WithContext(ctx), remote.WithAuthFromKeychain(opts.Keychain)); err != nil {
			return Result{}, fmt.Errorf("pushing %s: %w", ref.Name(), err)
		}
		log.Info("pushed the image", "reference", ref.Name(), "digest", res.Digest, "took", time.Since(pushStart).Round(100*time.Millisecond))
	}
	res.Took = time.Since(start)
	log.Info("built the nodekit image", "reference", res.Reference, "took", res.Took.Round(100*time.Millisecond))
	return res, nil
}

func (o *Options) defaults(ctx context.Context) error {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Keychain == nil {
		o.Keychain = authn.DefaultKeychain
	}
	if o.RepoDir == "" {
		dir, err := FindRepo()
		if err != nil {
			return err
		}
		o.RepoDir = dir
	}
	if o.Version == "" {
		o.Version = gitVersion(ctx, o.RepoDir)
	}
	if o.LDFlags == "" {
		o.LDFlags = DefaultLDFlags(o.Version)
	}
	if o.Reference == "" {
		o.Reference = "localhost/nodekit:" + TagFor(o.Version)
	}
	if o.Base == "" {
		o.Base = LocalBase
	}
	if o.CacheDir == "" {
		o.CacheDir = os.Getenv("NODEKIT_CACHE")
	}
	if o.CacheDir == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			return fmt.Errorf("finding a cache directory (set NODEKIT_CACHE): %w", err)
		}
		o.CacheDir = filepath.Join(dir, "nodekit")
	}
	return nil
}

func (o *Options) platforms(def Definition) ([]v1.Platform, error) {
	if len(o.Platforms) == 0 {
		return def.Platforms, nil
	}
	var ps []v1.Platform
	for _, s := range o.Platforms {
		p, err := ParsePlatform(s)
		if err != nil {
			return nil, err
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// FindRepo returns the nodekit module root at or above the working directory.
func FindRepo() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if isModuleRoot(filepath.Join(dir, "go.mod")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no %s module at or above the working directory", Module)
		}
		dir = parent
	}
}

func isModuleRoot(gomod string) bool {
	f, err := os.Open(gomod)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); strings.HasPrefix(line, "module ") {
			return strings.TrimSpace(strings.TrimPrefix(line, "module ")) == Module
		}
	}
	return false
}

// gitVersion is the Makefile's VERSION: git describe, or "dev".
func gitVersion(ctx context.Context, repo string) string {
	cmd := exec.CommandContext(ctx, "git", "describe", "--tags", "--always", "--dirty")
	cmd.Dir = repo
	out, err := cmd.Output()
	if v := strings.TrimSpace(string(out)); err == nil && v != "" {
		return v
	}
	return "dev"
}

var badTagChars = regexp.MustCompile(`[^A-Za-z0-9_.-]`)

// TagFor makes a valid image tag of a version ("1.2+x" -> "1.2-x").
func TagFor(version string) string {
	t := badTagChars.ReplaceAllString(version, "-")
	t = strings.TrimLeft(t, ".-")
	if t == "" {
		t = "dev"
	}
	if len(t) > 128 {
		t = t[:128]
	}
	return t
}
