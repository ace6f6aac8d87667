package realnode

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Images made here, since no registry can be reached: the pod sandbox's
// pause and a busybox image for test pods. localhost/ names need no
// docker.io normalisation, and pods use imagePullPolicy Never or
// IfNotPresent.
const (
	PauseImage   = "localhost/pause:v1"
	BusyboxImage = "localhost/busybox:v1"
)

// File is one file of an image layer, copied from the host.
type File struct {
	// Path in the image, absolute.
	Path string
	// Source on the host.
	Source string
	// Mode; 0 means 0755.
	Mode os.FileMode
}

// NewImage is a one-layer linux image of the machine's architecture holding
// files (with their parent directories) and symlinks (image path → target),
// with entrypoint ep.
func NewImage(files []File, symlinks map[string]string, ep []string) (v1.Image, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	// Every program expects a /tmp anyone may write to.
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777}); err != nil {
		return nil, err
	}
	dirs := map[string]bool{"/": true, "/tmp": true}
	addDirs := func(p string) error {
		var missing []string
		for d := path.Dir(p); !dirs[d]; d = path.Dir(d) {
			missing = append(missing, d)
			dirs[d] = true
		}
		slices.Reverse(missing)
		for _, d := range missing {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(d, "/") + "/", Mode: 0o755}); err != nil {
				return err
			}
		}
		return nil
	}
	for _, f := range files {
		data, err := os.ReadFile(f.Source)
		if err != nil {
			return nil, fmt.Errorf("reading %s for the image: %w", f.Source, err)
		}
		mode := f.Mode
		if mode == 0 {
			mode = 0o755
		}
		if err := addDirs(f.Path); err != nil {
			return nil, err
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(f.Path, "/"), Mode: int64(mode), Size: int64(len(data))}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	links := make([]string, 0, len(symlinks))
	for p := range symlinks {
		links = append(links, p)
	}
	slices.Sort(links)
	for _, p := range links {
		if err := addDirs(p); err != nil {
			return nil, err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: strings.TrimPrefix(p, "/"), Linkname: symlinks[p], Mode: 0o777}); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("writing the image layer: %w", err)
	}
	layerData := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerData)), nil
	})
	if err != nil {
		return nil, fmt.Errorf("making the image layer: %w", err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, fmt.Errorf("adding the layer: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", runtime.GOARCH
	cfg.Config.Entrypoint = ep
	cfg.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cfg.Config.WorkingDir = "/"
	return mutate.ConfigFile(img, cfg)
}

// NewBusyboxImage is Debian's static busybox with every applet linked and
// sh as its entrypoint, plus extra files (test programs, say).
func NewBusyboxImage(ctx context.Context, extra ...File) (v1.Image, error) {
	out, err := exec.CommandContext(ctx, "/bin/busybox", "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("listing busybox applets: %w", err)
	}
	links := map[string]string{}
	for _, applet := range strings.Fields(string(out)) {
		if p := "/" + applet; p != "/bin/busybox" {
			links[p] = "/bin/busybox"
		}
	}
	files := append([]File{{Path: "/bin/busybox", Source: "/bin/busybox"}}, extra...)
	return NewImage(files, links, []string{"/bin/sh"})
}

// ImportImage loads img into the node's containerd under ref, where the
// kubelet finds it.
func (n *Node) ImportImage(ctx context.Context, ref string, img v1.Image) error {
	tag, err := name.NewTag(ref)
	if err != nil {
		return fmt.Errorf("image reference %q: %w", ref, err)
	}
	f, err := os.CreateTemp(n.dir, "image-*.tar")
	if err != nil {
		return err
	}
	f.Close()
	defer os.Remove(f.Name())
	if err := tarball.WriteToFile(f.Name(), tag, img); err != nil {
		return fmt.Errorf("writing image %s: %w", ref, err)
	}
	return n.ImportArchive(ctx, f.Name())
}

// ImportArchive loads an image archive (OCI layout or docker save format,
// as `make image` writes) into the node's containerd, for the host's
// platform.
func (n *Node) ImportArchive(ctx context.Context, archive string) error {
	out, err := n.Ctr(ctx, "images", "import", archive)
	if err != nil {
		return fmt.Errorf("importing %s into containerd: %w: %s", filepath.Base(archive), err, out)
	}
	return nil
}

// Ctr runs ctr against the node's containerd, in the k8s.io namespace the
// CRI plugin uses, and returns its standard output; its warnings (on
// standard error) go into the error, if any.
func (n *Node) Ctr(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, n.bin.ctr(), append([]string{"--address", n.containerdSock(), "--namespace", "k8s.io"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("ctr %v: %w: %s", args, err, stderr.String())
	}
	return string(out), nil
}
