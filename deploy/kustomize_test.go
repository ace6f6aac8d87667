package deploy

import (
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/nodekit/nodekit/test/kubeapi"
)

// kustomize runs `kubectl kustomize dir` with the test bed's kubectl (the
// Kustomize users get with `kubectl apply -k`).
func kustomize(t *testing.T, dir string) []byte {
	t.Helper()
	bin, err := kubeapi.Binaries(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), filepath.Join(bin, "kubectl"), "kustomize", dir)
	cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			stderr = ee.Stderr
		}
		t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, stderr)
	}
	return out
}

// TestKustomization: deploy/ renders the manifest's objects unchanged, and
// an overlay's images: entry (a mirror and a tag, or a digest) reaches every
// container and nothing else.
func TestKustomization(t *testing.T) {
	manifest := readFile(t, "nodekit.yaml")
	want := objects(t, manifest)

	t.Run("deploy renders nodekit.yaml", func(t *testing.T) {
		got := objects(t, kustomize(t, "."))
		if !slices.Equal(slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want))) {
			t.Fatalf("objects %v, want %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
		}
		for key, w := range want {
			for _, d := range diff(key, got[key], w) {
				t.Errorf("kustomize vs nodekit.yaml: %s", d)
			}
		}
	})

	// A platform team's overlay on a copy of deploy/ (a base must be a
	// directory of its own below or beside the overlay).
	base := filepath.Join(t.TempDir(), "base")
	if err := os.MkdirAll(base, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"kustomization.yaml", "nodekit.yaml"} {
		if err := os.WriteFile(filepath.Join(base, f), readFile(t, f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name, images, want string
		// patches and data: a ConfigMap patch (README's example) and
		// the settings it must yield.
		patches string
		data    map[string]string
	}{
		{name: "mirror and tag", images: "newName: registry.example.com/mirror/nodekit\n    newTag: 0.2.0", want: "registry.example.com/mirror/nodekit:0.2.0"},
		{name: "digest", images: "digest: sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			want: "ghcr.io/nodekit/nodekit@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
		{
			name: "settings patched", images: "newTag: 0.1.0", want: "ghcr.io/nodekit/nodekit:0.1.0",
			patches: `patches:
  - target: {kind: ConfigMap, name: nodekit}
    patch: |
      - {op: replace, path: /data/metaproxy.host-interface, value: "eni+"}
      - {op: replace, path: /data/logship.cluster-name, value: prod}
`,
			data: map[string]string{"metaproxy.host-interface": "eni+", "logship.cluster-name": "prod"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			overlay := filepath.Join(filepath.Dir(base), "overlay-"+filepath.Base(t.Name()))
			if err := os.MkdirAll(overlay, 0o755); err != nil {
				t.Fatal(err)
			}
			k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../base\nimages:\n  - name: ghcr.io/nodekit/nodekit\n    " + tc.images + "\n" + tc.patches
			if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(k), 0o644); err != nil {
				t.Fatal(err)
			}
			rendered := kustomize(t, overlay)
			m, err := ParseManifest(rendered)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range m.DaemonSet.Spec.Template.Spec.Containers {
				if c.Image != tc.want {
					t.Errorf("container %s: image %s, want %s", c.Name, c.Image, tc.want)
				}
			}
			for k, v := range tc.data {
				if m.ConfigMap.Data[k] != v {
					t.Errorf("ConfigMap %s = %q, want %q", k, m.ConfigMap.Data[k], v)
				}
			}
			// Nothing but the images and the patched settings changed.
			got := objects(t, rendered)
			for key, w := range want {
				for _, d := range diff(key, got[key], w) {
					if !imagePath.MatchString(d) && !(len(tc.data) > 0 && strings.HasPrefix(d, "ConfigMap/nodekit/nodekit.data.")) {
						t.Errorf("overlay changed more than the image: %s", d)
					}
				}
			}
		})
	}
}

// imagePath matches a diff line about a container's image.
var imagePath = regexp.MustCompile(`\.spec\.template\.spec\.containers\[\d+\]\.image: `)
