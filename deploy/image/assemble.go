package image

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"

	"github.com/nodekit/nodekit/deploy/image/debianbase"
	"github.com/nodekit/nodekit/deploy/image/xtables"
)

// WrapperPath is where the local base keeps iptables-wrapper; the iptables
// commands (xtables.Commands) in /usr/sbin link to it, as in
// distroless-iptables.
const WrapperPath = "/usr/sbin/iptables-wrapper"

// epoch stamps the layers and configs this package writes, so equal inputs
// give equal digests.
var epoch = time.Unix(0, 0).UTC()

// builder makes one platform's image at a time.
type builder struct {
	opts Options
	def  Definition
	work string
	log  *slog.Logger
}

// image is the base plus the agents' layer, configured by the definition.
func (b *builder) image(ctx context.Context, p v1.Platform) (v1.Image, error) {
	base, err := b.base(ctx, p)
	if err != nil {
		return nil, err
	}
	mt, err := layerMediaType(base)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(b.work, p.Architecture)
	var pkgs []string
	var files []layerFile
	for _, bin := range b.def.Binaries {
		pkgs = append(pkgs, bin.Package)
		files = append(files, layerFile{path: bin.Path, src: filepath.Join(dir, "bin", bin.Name()), mode: 0o755})
	}
	start := time.Now()
	if err := goBuild(ctx, b.opts.RepoDir, filepath.Join(dir, "bin")+"/", p, b.opts.LDFlags, pkgs...); err != nil {
		return nil, err
	}
	b.log.Info("compiled the agents", "platform", p.String(), "took", time.Since(start).Round(100*time.Millisecond))
	layer, err := fileLayer(filepath.Join(dir, "agents.tar.gz"), files, mt)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, bin := range b.def.Binaries {
		names = append(names, bin.Path)
	}
	img, err := mutate.Append(base, mutate.Addendum{Layer: layer, History: v1.History{
		Created:   v1.Time{Time: epoch},
		CreatedBy: "nodekit " + b.opts.Version + ": " + strings.Join(names, " "),
		Comment:   "go build -trimpath -ldflags '" + b.opts.LDFlags + "' (CGO_ENABLED=0)",
	}})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading the base's configuration: %w", err)
	}
	cfg := *cf.Config.DeepCopy()
	cfg.User = b.def.User
	cfg.Entrypoint = b.def.Entrypoint
	cfg.Cmd = nil
	cfg.WorkingDir = b.def.WorkingDir
	cfg.Env = mergeEnv(cfg.Env, b.def.Env)
	if cfg.Labels == nil {
		cfg.Labels = map[string]string{}
	}
	cfg.Labels["org.opencontainers.image.title"] = "nodekit"
	cfg.Labels["org.opencontainers.image.version"] = b.opts.Version
	cfg.Labels["org.opencontainers.image.source"] = "https://" + Module
	cfg.Labels["org.opencontainers.image.base.name"] = b.opts.Base
	if img, err = mutate.Config(img, cfg); err != nil {
		return nil, err
	}
	return mutate.CreatedAt(img, v1.Time{Time: epoch})
}

// base returns the platform's base image: the release base from its
// registry, or the Debian-made one with iptables-wrapper.
func (b *builder) base(ctx context.Context, p v1.Platform) (v1.Image, error) {
	if b.opts.Base != LocalBase {
		return remoteBase(ctx, b.opts.Base, p, b.opts.Keychain)
	}
	start := time.Now()
	deb, err := debianbase.Build(ctx, debianbase.Config{Arch: p.Architecture, CacheDir: filepath.Join(b.opts.CacheDir, "image"), Logger: b.log})
	if err != nil {
		return nil, err
	}
	debLayer, err := tarball.LayerFromFile(deb.Layer, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("reading the Debian base layer: %w", err)
	}

	dir := filepath.Join(b.work, p.Architecture, "wrapper")
	if err := goBuild(ctx, b.opts.RepoDir, filepath.Join(dir, "iptables-wrapper"), p, "-s -w", "./deploy/image/iptables-wrapper"); err != nil {
		return nil, err
	}
	files := []layerFile{{path: WrapperPath, src: filepath.Join(dir, "iptables-wrapper"), mode: 0o755}}
	for _, c := range xtables.Commands {
		files = append(files, layerFile{path: path.Join(path.Dir(WrapperPath), c), link: WrapperPath})
	}
	wrapperLayer, err := fileLayer(filepath.Join(dir, "layer.tar.gz"), files, types.OCILayer)
	if err != nil {
		return nil, err
	}
	b.log.Info("Debian base with iptables-wrapper", "platform", p.String(), "packages", len(deb.Packages),
		"cached", deb.Cached, "key", deb.Key, "took", time.Since(start).Round(100*time.Millisecond))

	var pkgs []string
	for _, d := range deb.Packages {
		pkgs = append(pkgs, d.Name+"="+d.Version)
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err = mutate.ConfigFile(img, &v1.ConfigFile{
		OS: p.OS, Architecture: p.Architecture, Variant: p.Variant,
		RootFS: v1.RootFS{Type: "layers"},
		Config: v1.Config{Env: []string{"PATH=" + Path}},
	})
	if err != nil {
		return nil, err
	}
	return mutate.Append(img,
		mutate.Addendum{Layer: debLayer, History: v1.History{Created: v1.Time{Time: epoch},
			CreatedBy: "nodekit debianbase: Debian " + debianbase.Suite + " " + strings.Join(pkgs, " ")}},
		mutate.Addendum{Layer: wrapperLayer, History: v1.History{Created: v1.Time{Time: epoch},
			CreatedBy: "nodekit: " + WrapperPath + " as " + strings.Join(xtables.Commands, ", ")}},
	)
}

// remoteBase pulls the platform's image of ref (lazily: layers are read
// when written out).
func remoteBase(ctx context.Context, ref string, p v1.Platform, kc authn.Keychain) (v1.Image, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("base reference %q: %w", ref, err)
	}
	// Match on OS and architecture only: indexes do not always name the
	// arm64 variant.
	img, err := remote.Image(r, remote.WithContext(ctx), remote.WithAuthFromKeychain(kc),
		remote.WithPlatform(v1.Platform{OS: p.OS, Architecture: p.Architecture}))
	if err != nil {
		return nil, fmt.Errorf("pulling base %s: %w", ref, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading base %s: %w", ref, err)
	}
	if cf.OS != p.OS || cf.Architecture != p.Architecture {
		return nil, fmt.Errorf("base %s has no %s image (got %s/%s)", ref, p, cf.OS, cf.Architecture)
	}
	return img, nil
}

// layerMediaType matches the base's manifest kind: OCI layers on OCI
// images, Docker layers on Docker ones.
func layerMediaType(base v1.Image) (types.MediaType, error) {
	mt, err := base.MediaType()
	if err != nil {
		return "", fmt.Errorf("reading the base's manifest type: %w", err)
	}
	if mt == types.DockerManifestSchema2 {
		return types.DockerLayer, nil
	}
	return types.OCILayer, nil
}

// mergeEnv overrides base's variables with def's, keeping the others.
func mergeEnv(base, def []string) []string {
	set := map[string]bool{}
	for _, kv := range def {
		k, _, _ := strings.Cut(kv, "=")
		set[k] = true
	}
	var out []string
	for _, kv := range base {
		if k, _, _ := strings.Cut(kv, "="); !set[k] {
			out = append(out, kv)
		}
	}
	return append(out, def...)
}

// goBuild compiles pkgs for p, statically, into out (a directory when it
// ends in a slash).
func goBuild(ctx context.Context, repo, out string, p v1.Platform, ldflags string, pkgs ...string) error {
	dir := filepath.Dir(out)
	if strings.HasSuffix(out, "/") {
		dir = out
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	args := append([]string{"build", "-trimpath", "-ldflags", ldflags, "-o", out}, pkgs...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Architecture)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s for %s: %w\n%s", strings.Join(pkgs, " "), p, err, out)
	}
	return nil
}

// layerFile is one entry of a layer this package writes: a copy of src, or
// a symbolic link to link.
type layerFile struct {
	path string
	src  string
	link string
	mode int64
}

// fileLayer writes files (and their parent directories) as a gzip tar at
// dst, owned by root, time-stamped at the epoch.
func fileLayer(dst string, files []layerFile, mt types.MediaType) (v1.Layer, error) {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(dst)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zw, err := gzip.NewWriterLevel(f, gzip.DefaultCompression)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(zw)
	dirs := map[string]bool{}
	for _, lf := range files {
		for d := path.Dir(strings.TrimPrefix(lf.path, "/")); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	var names []string
	for d := range dirs {
		names = append(names, d)
	}
	sort.Strings(names)
	for _, d := range names {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: epoch}); err != nil {
			return nil, err
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].path < files[j].path })
	for _, lf := range files {
		name := strings.TrimPrefix(lf.path, "/")
		if lf.link != "" {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: lf.link, Mode: 0o777, ModTime: epoch}); err != nil {
				return nil, err
			}
			continue
		}
		if err := copyInto(tw, name, lf.src, lf.mode); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	return tarball.LayerFromFile(dst, tarball.WithMediaType(mt))
}

func copyInto(tw *tar.Writer, name, src string, mode int64) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: st.Size(), ModTime: epoch}); err != nil {
		return err
	}
	if _, err := io.Copy(tw, in); err != nil {
		return fmt.Errorf("adding %s: %w", src, err)
	}
	return nil
}
