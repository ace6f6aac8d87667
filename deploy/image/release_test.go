package image

import (
	"bytes"
	"context"
	"io"
	"log"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// TestReleasePath runs the release path (a base pulled from a registry,
// the result pushed) against a registry on loopback, with a stand-in for
// distroless-iptables: this image's own base layers under a Docker
// manifest list, as registries often serve, its arm64 entry without a
// variant. The pushed image must meet the manifest like the local one, and
// carry the very same agents layer and configuration: one definition, two
// bases. It builds arm64 only (the cross-compiled platform): a second
// build of both would add minutes and prove nothing more.
func TestReleasePath(t *testing.T) {
	res := builtImage(t)
	local := platformImages(t, res)
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	baseRef := host + "/build-image/distroless-iptables:v0.8.7"
	pushStandInBase(t, ctx, baseRef, local)

	var buildLog bytes.Buffer
	ref := host + "/nodekit/nodekit:" + shared.version
	out, err := Build(ctx, Options{
		Version:   shared.version,
		Base:      baseRef,
		Push:      true,
		Reference: ref,
		Platforms: []string{"linux/arm64"},
		Logger:    slog.New(slog.NewTextHandler(&buildLog, nil)),
	})
	t.Logf("release build log:\n%s", buildLog.String())
	if err != nil {
		t.Fatal(err)
	}
	if out.Archive != "" {
		t.Errorf("a push without OutDir wrote %s", out.Archive)
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(r, remote.WithContext(ctx))
	if err != nil {
		t.Fatalf("reading back %s: %v", ref, err)
	}
	if d, _ := idx.Digest(); d.String() != out.Digest {
		t.Errorf("the registry has %s, Build reported %s", d, out.Digest)
	}
	if mt, _ := idx.MediaType(); mt != types.DockerManifestList {
		t.Errorf("index type %s on a Docker base, want %s", mt, types.DockerManifestList)
	}
	pushed := indexImages(t, idx)
	if _, ok := pushed["arm64"]; !ok || len(pushed) != 1 {
		t.Fatalf("pushed %d platforms, want arm64 alone", len(pushed))
	}
	m := loadManifest(t)
	for arch, img := range pushed {
		t.Run(arch, func(t *testing.T) {
			for _, problem := range manifestProblems(t, m, img, shared.version) {
				t.Error(problem)
			}
			want := local[arch]
			got := layerDigests(t, img)
			wantLayers := layerDigests(t, want)
			if len(got) != len(wantLayers) || got[len(got)-1] != wantLayers[len(wantLayers)-1] {
				t.Errorf("layers (diff IDs) %v, want the base's and the local image's agents layer %v", got, wantLayers[len(wantLayers)-1])
			}
			gc, _ := img.ConfigFile()
			wc, _ := want.ConfigFile()
			if gc.Config.User != wc.Config.User || !slices.Equal(gc.Config.Entrypoint, wc.Config.Entrypoint) || gc.Config.WorkingDir != wc.Config.WorkingDir {
				t.Errorf("config %+v differs from the local image's %+v", gc.Config, wc.Config)
			}
			if !slices.Contains(gc.Config.Env, "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt") || !slices.Contains(gc.Config.Env, "PATH="+Path) {
				t.Errorf("env %q: want the base's variables kept and PATH set", gc.Config.Env)
			}
			if gc.Config.Labels["org.opencontainers.image.base.name"] != baseRef {
				t.Errorf("labels %v do not name the base %s", gc.Config.Labels, baseRef)
			}
		})
	}
}

// pushStandInBase pushes, as a Docker manifest list, images made of the
// local image's base layers (all but the agents') with a configuration like
// the release base's, the arm64 entry without a variant.
func pushStandInBase(t *testing.T, ctx context.Context, ref string, local map[string]v1.Image) {
	t.Helper()
	var adds []mutate.IndexAddendum
	for _, arch := range []string{"amd64", "arm64"} {
		layers, err := local[arch].Layers()
		if err != nil {
			t.Fatal(err)
		}
		img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.DockerManifestSchema2), types.DockerConfigJSON)
		img, err = mutate.ConfigFile(img, &v1.ConfigFile{OS: "linux", Architecture: arch, RootFS: v1.RootFS{Type: "layers"},
			Config: v1.Config{Env: []string{"PATH=/usr/sbin:/usr/bin", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"}}})
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range layers[:len(layers)-1] {
			dl, err := tarball.LayerFromOpener(l.Compressed, tarball.WithMediaType(types.DockerLayer))
			if err != nil {
				t.Fatal(err)
			}
			if img, err = mutate.AppendLayers(img, dl); err != nil {
				t.Fatal(err)
			}
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.DockerManifestList), adds...)
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(r, idx, remote.WithContext(ctx)); err != nil {
		t.Fatalf("pushing the stand-in base: %v", err)
	}
}

func layerDigests(t *testing.T, img v1.Image) []string {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range layers {
		d, err := l.DiffID()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d.String())
	}
	return out
}
