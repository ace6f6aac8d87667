package debianbase

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"
)

// rootfs is a filesystem tree assembled in memory from package archives
// and generated files, written out as one layer tar.
type rootfs struct {
	nodes map[string]*node // by path without a leading slash
	// merged records the top-level directories (bin, lib, ...) whose
	// entries were moved under usr/.
	merged map[string]bool
}

type node struct {
	hdr  tar.Header
	data []byte
	from string // the package that shipped it, for conflict messages
}

func newRootfs() *rootfs { return &rootfs{nodes: map[string]*node{}, merged: map[string]bool{}} }

// usrMerged are the top-level directories Debian 12 systems keep as links
// into /usr; packages still ship files under them.
var usrMerged = map[string]bool{"bin": true, "sbin": true, "lib": true, "lib32": true, "lib64": true, "libx32": true}

// canonical cleans an archive path and moves it under usr/ when its first
// component is a merged directory. It reports whether it moved it.
func canonical(name string) (string, bool) {
	p := strings.TrimPrefix(path.Clean("/"+name), "/")
	first, rest, _ := strings.Cut(p, "/")
	if usrMerged[first] {
		return path.Join("usr", first, rest), true
	}
	return p, false
}

// addArchive adds every entry of a package's data tar that keep accepts.
func (r *rootfs) addArchive(pkg string, rd io.Reader, keep func(string) bool) error {
	tr := tar.NewReader(rd)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading %s's files: %w", pkg, err)
		}
		orig := strings.TrimPrefix(path.Clean("/"+hdr.Name), "/")
		p, moved := canonical(hdr.Name)
		if p == "" || !keep(p) {
			continue
		}
		if moved {
			r.merged[strings.SplitN(orig, "/", 2)[0]] = true
		}
		h := *hdr
		switch h.Typeflag {
		case tar.TypeSymlink:
			// A relative target was relative to where the package put the
			// link; make it absolute so moving the link keeps it right.
			if moved && !path.IsAbs(h.Linkname) {
				h.Linkname = path.Join("/", path.Dir(orig), h.Linkname)
			}
		case tar.TypeLink:
			target, _ := canonical(h.Linkname)
			h.Linkname = target
		case tar.TypeReg, tar.TypeDir:
		default:
			return fmt.Errorf("%s: %s has unsupported type %q", pkg, hdr.Name, h.Typeflag)
		}
		var data []byte
		if h.Typeflag == tar.TypeReg {
			if data, err = io.ReadAll(tr); err != nil {
				return fmt.Errorf("reading %s from %s: %w", hdr.Name, pkg, err)
			}
		}
		// Archives normally list every directory; make any they skip.
		if err := mkdirAll(r, path.Dir(p)); err != nil {
			return err
		}
		if err := r.add(pkg, p, h, data); err != nil {
			return err
		}
	}
}

// add puts one entry at p. Directories shipped twice keep the first
// shipment; any other overlap is an error.
func (r *rootfs) add(from, p string, h tar.Header, data []byte) error {
	if old, ok := r.nodes[p]; ok {
		if old.hdr.Typeflag == tar.TypeDir && h.Typeflag == tar.TypeDir {
			return nil
		}
		return fmt.Errorf("/%s is shipped by both %s and %s", p, old.from, from)
	}
	h.Name = p
	h.Uname, h.Gname = "", ""
	h.ModTime = h.ModTime.Truncate(time.Second)
	h.AccessTime, h.ChangeTime = time.Time{}, time.Time{}
	h.PAXRecords = nil
	h.Format = tar.FormatUnknown
	h.Size = int64(len(data))
	r.nodes[p] = &node{hdr: h, data: data, from: from}
	return nil
}

// replace sets p whatever was there.
func (r *rootfs) replace(from, p string, h tar.Header, data []byte) error {
	delete(r.nodes, p)
	return r.add(from, p, h, data)
}

func (r *rootfs) get(p string) (*node, bool) {
	n, ok := r.nodes[p]
	return n, ok
}

// write writes the tree as a tar, parents before children, in a fixed
// order so the same inputs give the same bytes.
func (r *rootfs) write(w io.Writer) error {
	paths := make([]string, 0, len(r.nodes))
	for p := range r.nodes {
		paths = append(paths, p)
	}
	// Hard links after everything else: their targets must exist when an
	// unpacker reaches them.
	sort.Slice(paths, func(i, j int) bool {
		li, lj := r.nodes[paths[i]].hdr.Typeflag == tar.TypeLink, r.nodes[paths[j]].hdr.Typeflag == tar.TypeLink
		if li != lj {
			return lj
		}
		return paths[i] < paths[j]
	})
	tw := tar.NewWriter(w)
	for _, p := range paths {
		n := r.nodes[p]
		h := n.hdr
		if h.Typeflag == tar.TypeDir {
			h.Name = p + "/"
		}
		if err := tw.WriteHeader(&h); err != nil {
			return fmt.Errorf("writing /%s: %w", p, err)
		}
		if _, err := tw.Write(n.data); err != nil {
			return fmt.Errorf("writing /%s: %w", p, err)
		}
	}
	return tw.Close()
}
