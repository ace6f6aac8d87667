package debianbase

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func TestCanonical(t *testing.T) {
	tests := []struct {
		in    string
		want  string
		moved bool
	}{
		{"./bin/dash", "usr/bin/dash", true},
		{"./sbin/", "usr/sbin", true},
		{"./lib/x86_64-linux-gnu/libc.so.6", "usr/lib/x86_64-linux-gnu/libc.so.6", true},
		{"./lib64/ld-linux-x86-64.so.2", "usr/lib64/ld-linux-x86-64.so.2", true},
		{"./usr/sbin/xtables-nft-multi", "usr/sbin/xtables-nft-multi", false},
		{"./library/x", "library/x", false},
		{"./etc/../etc/passwd", "etc/passwd", false},
		{"./", "", false},
	}
	for _, tc := range tests {
		got, moved := canonical(tc.in)
		if got != tc.want || moved != tc.moved {
			t.Errorf("canonical(%q) = %q, %v; want %q, %v", tc.in, got, moved, tc.want, tc.moved)
		}
	}
}

func TestExcluded(t *testing.T) {
	for p, want := range map[string]bool{
		"usr/share/doc/iptables/copyright":                  false,
		"usr/share/doc/iptables":                            false,
		"usr/share/doc/iptables/changelog.Debian.gz":        true,
		"usr/share/man/man8/iptables.8.gz":                  true,
		"usr/share/man":                                     true,
		"usr/share/manx":                                    false,
		"usr/lib/x86_64-linux-gnu/gconv/UTF-16.so":          true,
		"usr/lib/x86_64-linux-gnu/gconv":                    true,
		"usr/share/zoneinfo/Europe/Paris":                   false,
		"usr/lib/x86_64-linux-gnu/xtables/libxt_comment.so": false,
	} {
		if got := excluded(p); got != want {
			t.Errorf("excluded(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestParsePrintURIs(t *testing.T) {
	out := "'http://deb.debian.org/debian/pool/main/i/iptables/iptables_1.8.9-2_arm64.deb' iptables_1.8.9-2_arm64.deb 351736 SHA256:5cb1974950a07f89c2d61a20e62d2dbcd882acb6d522d36ad3c690f6f5d3c643\n" +
		"'http://deb.debian.org/debian-security/pool/updates/main/z/zlib/zlib1g_1.2.13.dfsg-1%2bdeb12u1_arm64.deb' zlib1g_1%3a1.2.13.dfsg-1+deb12u1_arm64.deb 82944 SHA256:0000000000000000000000000000000000000000000000000000000000000001\n" +
		"Reading package lists...\n"
	debs, err := parsePrintURIs([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if len(debs) != 2 || debs[0].Name != "iptables" || debs[1].Name != "zlib1g" {
		t.Fatalf("got %+v", debs)
	}
	if d := debs[1]; d.Version != "1:1.2.13.dfsg-1+deb12u1" || d.Arch != "arm64" || d.Size != 82944 || d.Filename != "zlib1g_1:1.2.13.dfsg-1+deb12u1_arm64.deb" {
		t.Errorf("epoch version parsed as %+v", d)
	}
	for name, bad := range map[string]string{
		"no checksum":   "'http://x/a_1_all.deb' a_1_all.deb 10 MD5Sum:abc\n",
		"bad file name": "'http://x/a.deb' a.deb 10 SHA256:0000000000000000000000000000000000000000000000000000000000000001\n",
		"nothing":       "Reading package lists...\n",
	} {
		if _, err := parsePrintURIs([]byte(bad)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// debTar is a package's data tar as dpkg-deb --fsys-tarfile gives it.
func debTar(t *testing.T, entries ...tar.Header) io.Reader {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range entries {
		data := []byte(nil)
		if h.Typeflag == tar.TypeReg {
			data = []byte("content of " + h.Name)
			h.Size = int64(len(data))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &b
}

func TestRootfs(t *testing.T) {
	keep := func(p string) bool { return !excluded(p) }
	fs := newRootfs()
	err := fs.addArchive("dash", debTar(t,
		tar.Header{Typeflag: tar.TypeDir, Name: "./", Mode: 0o755},
		tar.Header{Typeflag: tar.TypeDir, Name: "./bin/", Mode: 0o755},
		tar.Header{Typeflag: tar.TypeReg, Name: "./bin/dash", Mode: 0o755},
		tar.Header{Typeflag: tar.TypeSymlink, Name: "./bin/sh", Linkname: "dash"},
		tar.Header{Typeflag: tar.TypeSymlink, Name: "./lib/up", Linkname: "../usr/share/x"},
		tar.Header{Typeflag: tar.TypeLink, Name: "./bin/rdash", Linkname: "./bin/dash"},
		tar.Header{Typeflag: tar.TypeReg, Name: "./usr/share/man/man1/dash.1.gz", Mode: 0o644},
	), keep)
	if err != nil {
		t.Fatal(err)
	}
	// Another package shipping the same directory is fine.
	if err := fs.addArchive("other", debTar(t, tar.Header{Typeflag: tar.TypeDir, Name: "./usr/bin/", Mode: 0o755}), keep); err != nil {
		t.Fatal(err)
	}
	// The same file twice is not.
	err = fs.addArchive("clash", debTar(t, tar.Header{Typeflag: tar.TypeReg, Name: "./usr/bin/dash", Mode: 0o755}), keep)
	if err == nil || !strings.Contains(err.Error(), "dash and clash") {
		t.Errorf("a file shipped twice: err = %v, want one naming both packages", err)
	}
	if err := finish(fs); err == nil || !strings.Contains(err.Error(), "CA certificate") {
		t.Errorf("finish without certificates: err = %v", err)
	}
	if err := fs.addArchive("ca-certificates", debTar(t,
		tar.Header{Typeflag: tar.TypeReg, Name: "./usr/share/ca-certificates/mozilla/b.crt", Mode: 0o644},
		tar.Header{Typeflag: tar.TypeReg, Name: "./usr/share/ca-certificates/mozilla/a.crt", Mode: 0o644},
	), keep); err != nil {
		t.Fatal(err)
	}
	if err := finish(fs); err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	if err := fs.write(&out); err != nil {
		t.Fatal(err)
	}
	got := map[string]*tar.Header{}
	data := map[string]string{}
	var order []string
	tr := tar.NewReader(&out)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		name := strings.TrimSuffix(h.Name, "/")
		got[name], data[name] = h, string(b)
		order = append(order, name)
	}
	for _, tc := range []struct {
		path     string
		typ      byte
		linkname string
	}{
		{"bin", tar.TypeSymlink, "usr/bin"},
		{"sbin", tar.TypeSymlink, "usr/sbin"},
		{"lib", tar.TypeSymlink, "usr/lib"},
		{"var/run", tar.TypeSymlink, "/run"},
		{"usr/bin/dash", tar.TypeReg, ""},
		// A relative link moved under usr/ keeps pointing where it did.
		{"usr/bin/sh", tar.TypeSymlink, "/bin/dash"},
		{"usr/lib/up", tar.TypeSymlink, "/usr/share/x"},
		{"usr/bin/rdash", tar.TypeLink, "usr/bin/dash"},
		{"etc/passwd", tar.TypeReg, ""},
		{"etc/ssl/certs/ca-certificates.crt", tar.TypeReg, ""},
		{"tmp", tar.TypeDir, ""},
		{"home/nonroot", tar.TypeDir, ""},
	} {
		h, ok := got[tc.path]
		if !ok {
			t.Errorf("/%s missing", tc.path)
			continue
		}
		if h.Typeflag != tc.typ || h.Linkname != tc.linkname {
			t.Errorf("/%s: type %q -> %q, want %q -> %q", tc.path, h.Typeflag, h.Linkname, tc.typ, tc.linkname)
		}
	}
	if _, ok := got["usr/share/man/man1/dash.1.gz"]; ok {
		t.Error("manual pages were kept")
	}
	if h := got["home/nonroot"]; h != nil && (h.Uid != 65532 || h.Mode != 0o700) {
		t.Errorf("/home/nonroot: uid %d mode %o", h.Uid, h.Mode)
	}
	if h := got["tmp"]; h != nil && h.Mode != 0o1777 {
		t.Errorf("/tmp mode %o", h.Mode)
	}
	bundle := data["etc/ssl/certs/ca-certificates.crt"]
	if want := "content of ./usr/share/ca-certificates/mozilla/a.crt\ncontent of ./usr/share/ca-certificates/mozilla/b.crt\n"; bundle != want {
		t.Errorf("CA bundle = %q, want the certificates in order", bundle)
	}
	if !strings.Contains(data["etc/passwd"], "nonroot:x:65532:65532:") || !strings.Contains(data["etc/group"], "nobody:x:65534:") {
		t.Errorf("accounts: passwd %q group %q", data["etc/passwd"], data["etc/group"])
	}
	// Parents before children; hard links after their targets.
	seen := map[string]bool{}
	for _, p := range order {
		if i := strings.LastIndex(p, "/"); i > 0 && !seen[p[:i]] {
			t.Errorf("/%s comes before its directory", p)
		}
		if h := got[p]; h.Typeflag == tar.TypeLink && !seen[h.Linkname] {
			t.Errorf("hard link /%s comes before its target /%s", p, h.Linkname)
		}
		seen[p] = true
		if h := got[p]; !h.ModTime.Equal(h.ModTime.Truncate(time.Second)) {
			t.Errorf("/%s: time %v not whole seconds", p, h.ModTime)
		}
	}

	// The same tree writes the same bytes.
	var again bytes.Buffer
	if err := fs.write(&again); err != nil {
		t.Fatal(err)
	}
	var first bytes.Buffer
	_ = fs.write(&first)
	if !bytes.Equal(first.Bytes(), again.Bytes()) {
		t.Error("writing the same tree twice gave different bytes")
	}
}

func TestKeyChangesWithPackages(t *testing.T) {
	a := []Deb{{Name: "iptables", Filename: "iptables_1.8.9-2_amd64.deb", SHA256: "aa"}}
	b := []Deb{{Name: "iptables", Filename: "iptables_1.8.9-3_amd64.deb", SHA256: "bb"}}
	if key(a) == key(b) {
		t.Error("a new package version keeps the cache key")
	}
	if key(a) != key(append([]Deb(nil), a...)) {
		t.Error("the same packages give different keys")
	}
}
