package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// imageFS is an image's flattened filesystem, read into memory, for
// checking paths, links and file contents without unpacking anything.
type imageFS struct {
	files map[string]*fsEntry // by absolute, clean path
}

type fsEntry struct {
	hdr  *tar.Header
	data []byte
}

// imageFSCache keeps each image's filesystem read once per test binary:
// several tests look at the same two images.
var imageFSCache struct {
	sync.Mutex
	byDigest map[v1.Hash]*imageFS
}

func readImageFS(t *testing.T, img v1.Image) *imageFS {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	imageFSCache.Lock()
	defer imageFSCache.Unlock()
	if fs, ok := imageFSCache.byDigest[d]; ok {
		return fs
	}
	fs := extractImageFS(t, img)
	if imageFSCache.byDigest == nil {
		imageFSCache.byDigest = map[v1.Hash]*imageFS{}
	}
	imageFSCache.byDigest[d] = fs
	return fs
}

func extractImageFS(t *testing.T, img v1.Image) *imageFS {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	fs := &imageFS{files: map[string]*fsEntry{"/": {hdr: &tar.Header{Typeflag: tar.TypeDir, Mode: 0o755}}}}
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("reading the image's filesystem: %v", err)
		}
		e := &fsEntry{hdr: hdr}
		if hdr.Typeflag == tar.TypeReg {
			if e.data, err = io.ReadAll(tr); err != nil {
				t.Fatalf("reading %s: %v", hdr.Name, err)
			}
		}
		fs.files[path.Clean("/"+hdr.Name)] = e
	}
	return fs
}

// resolve follows symbolic links (in any component) inside the image and
// returns the final path and its entry.
func (fs *imageFS) resolve(p string) (string, *fsEntry, error) {
	return fs.resolveDepth(p, 0)
}

func (fs *imageFS) resolveDepth(p string, depth int) (string, *fsEntry, error) {
	if depth > 40 {
		return "", nil, fmt.Errorf("%s: too many levels of symbolic links", p)
	}
	parts := strings.Split(strings.Trim(path.Clean("/"+p), "/"), "/")
	cur := "/"
	for i, part := range parts {
		if part == "" {
			continue
		}
		next := path.Join(cur, part)
		e, ok := fs.files[next]
		if !ok {
			return next, nil, fmt.Errorf("%s: no such file in the image", next)
		}
		switch e.hdr.Typeflag {
		case tar.TypeSymlink:
			target := e.hdr.Linkname
			if !path.IsAbs(target) {
				target = path.Join(cur, target)
			}
			rest := path.Join(append([]string{target}, parts[i+1:]...)...)
			return fs.resolveDepth(rest, depth+1)
		case tar.TypeLink:
			return fs.resolveDepth(path.Join(append([]string{"/" + e.hdr.Linkname}, parts[i+1:]...)...), depth+1)
		}
		if i < len(parts)-1 && e.hdr.Typeflag != tar.TypeDir {
			return next, nil, fmt.Errorf("%s: not a directory", next)
		}
		cur = next
	}
	return cur, fs.files[cur], nil
}

// file returns the regular file at p (after links) and its contents.
func (fs *imageFS) file(p string) (*fsEntry, error) {
	real, e, err := fs.resolve(p)
	if err != nil {
		return nil, err
	}
	if e.hdr.Typeflag != tar.TypeReg {
		return nil, fmt.Errorf("%s (%s) is not a regular file", p, real)
	}
	return e, nil
}

// lookPath finds a command along PATH inside the image, as exec.LookPath
// would in the container.
func (fs *imageFS) lookPath(pathEnv, cmd string) (string, error) {
	for _, dir := range strings.Split(pathEnv, ":") {
		p := path.Join(dir, cmd)
		if e, err := fs.file(p); err == nil && e.hdr.Mode&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found along PATH=%s", cmd, pathEnv)
}

// under lists the paths at or below dir, sorted.
func (fs *imageFS) under(dir string) []string {
	var out []string
	for p := range fs.files {
		if p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/") {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}
