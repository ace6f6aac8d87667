package image

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// Annotations naming the image in index.json: containerd's import takes
// the first as the image name; the second is the OCI layout's own tag.
const (
	AnnotationContainerdName = "io.containerd.image.name"
	AnnotationRefName        = "org.opencontainers.image.ref.name"
)

// writeLayout writes idx as an OCI image layout under outDir, named ref,
// and the same layout as one tar beside it. Both replace earlier ones.
func writeLayout(ctx context.Context, res *Result, idx v1.ImageIndex, ref name.Reference, outDir string) error {
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", outDir, err)
	}
	dir := filepath.Join(outDir, LayoutName)
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("removing the previous layout: %w", err)
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("creating the OCI layout: %w", err)
	}
	annotations := map[string]string{AnnotationContainerdName: ref.Name()}
	if tag, ok := ref.(name.Tag); ok {
		annotations[AnnotationRefName] = tag.TagStr()
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(annotations)); err != nil {
		return fmt.Errorf("writing the OCI layout: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	archive := filepath.Join(outDir, ArchiveName)
	size, err := tarDir(dir, archive)
	if err != nil {
		return err
	}
	res.Layout, res.Archive, res.ArchiveBytes = dir, archive, size
	return nil
}

// tarDir writes dir's files into a tar at dst (via a temporary file, so a
// reader never sees half an archive), in a fixed order, and returns its size.
func tarDir(dir, dst string) (int64, error) {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("listing %s: %w", dir, err)
	}
	sort.Strings(paths)
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".archive-*")
	if err != nil {
		return 0, fmt.Errorf("creating the archive: %w", err)
	}
	defer os.Remove(tmp.Name())
	tw := tar.NewWriter(tmp)
	for _, p := range paths {
		rel := filepath.ToSlash(strings.TrimPrefix(p, dir+string(filepath.Separator)))
		if err := addToTar(tw, p, rel); err != nil {
			tmp.Close()
			return 0, fmt.Errorf("archiving %s: %w", rel, err)
		}
	}
	if err := tw.Close(); err != nil {
		tmp.Close()
		return 0, fmt.Errorf("writing the archive: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return 0, err
	}
	st, err := tmp.Stat()
	if err != nil {
		tmp.Close()
		return 0, err
	}
	if err := tmp.Close(); err != nil {
		return 0, fmt.Errorf("writing the archive: %w", err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return 0, fmt.Errorf("storing the archive: %w", err)
	}
	return st.Size(), nil
}

func addToTar(tw *tar.Writer, p, rel string) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	if st.IsDir() {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: rel + "/", Mode: 0o755, ModTime: epoch})
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: rel, Mode: 0o644, Size: st.Size(), ModTime: epoch}); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}
