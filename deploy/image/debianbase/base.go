// Package debianbase makes the nodekit image's base layer from Debian 12
// packages, where the release base (distroless-iptables) cannot be pulled:
// the C library, CA certificates, time zones and name-service files of
// distroless' base image, plus iptables with both backends (nft and legacy)
// as distroless-iptables stages them. No maintainer script runs (foreign
// architectures cannot execute here): packages are unpacked, merged into a
// /usr-merged tree, and what their scripts would make is written directly
// (the CA bundle, users and groups, the package status).
//
// The iptables commands themselves (iptables, iptables-save, ...) are not in
// this layer: package image adds them as links to iptables-wrapper.
//
// The layer is cached per architecture under the cache directory, keyed by
// the exact package files and this recipe, so a new Debian security update
// makes a new base and an unchanged one is reused.
package debianbase

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
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

	"github.com/klauspost/compress/gzip"
	"golang.org/x/sys/unix"
)

// Packages are the Debian packages the base is made of, without their
// dependencies: every dependency is either listed here or in LeftOut.
func Packages() []string {
	return []string{
		// distroless/base-debian12's share.
		"base-files", "netbase", "tzdata", "ca-certificates", "libc6", "libgcc-s1",
		// /bin/sh, as distroless-iptables has (dash).
		"dash",
		// iptables 1.8 with its nft and legacy backends and their libraries.
		"iptables", "libip4tc2", "libip6tc2", "libxtables12", "libmnl0", "libnfnetlink0",
		"libnetfilter-conntrack3", "libnftnl11",
	}
}

// LeftOut are dependencies of Packages deliberately not in the base, and why.
func LeftOut() map[string]string {
	return map[string]string{
		"awk":         "base-files' maintainer scripts; none run",
		"debianutils": "dash's maintainer scripts (add-shell); none run",
		"dpkg":        "dash's maintainer scripts; the image has no package manager",
		"debconf":     "configuration prompts of tzdata and ca-certificates; none run",
		"debconf-2.0": "virtual package of debconf",
		"openssl":     "ca-certificates' bundle builder; the bundle is written at build time",
		"gcc-12-base": "libgcc-s1's documentation only",
	}
}

// recipe names this file's way of assembling the tree; change it when the
// assembly changes in a way the inputs hashed into the key do not show.
const recipe = "nodekit-debianbase/1"

// Suite is the Debian release the packages come from: the host's apt
// sources name it (Debian 12, bookworm).
const Suite = "bookworm"

// Users are the accounts of distroless' base image: nodekit.yaml runs
// containers as 0 and 65534, and the image's default user is 65532.
const (
	passwd = "root:x:0:0:root:/root:/sbin/nologin\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
		"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
	group = "root:x:0:\n" +
		"nobody:x:65534:\n" +
		"nonroot:x:65532:\n"
	nsswitch = "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n" +
		"networks: files\nprotocols: files\nservices: files\nethers: files\nrpc: files\n"
)

// excluded paths: documentation (copyright files stay), and glibc's
// character-set converters, as distroless leaves them out.
func excluded(p string) bool {
	for _, prefix := range []string{"usr/share/man", "usr/share/info", "usr/share/lintian", "usr/share/locale", "usr/share/menu"} {
		if p == prefix || strings.HasPrefix(p, prefix+"/") {
			return true
		}
	}
	if rest, ok := strings.CutPrefix(p, "usr/share/doc/"); ok {
		_, file, nested := strings.Cut(rest, "/")
		return nested && file != "copyright"
	}
	return strings.Contains(p+"/", "/gconv/")
}

// Config says which base to make and where to keep it.
type Config struct {
	// Arch is the Debian architecture: amd64 or arm64.
	Arch string
	// CacheDir holds apt's private state, the downloaded packages and the
	// finished layers (e.g. ~/.cache/nodekit/image).
	CacheDir string
	// ListsMaxAge is how old apt's package lists may be before they are
	// read again (default 24h): a new security update reaches the base
	// within a day.
	ListsMaxAge time.Duration
	Logger      *slog.Logger
}

// Base is a finished base layer.
type Base struct {
	// Layer is the gzip-compressed layer tar.
	Layer string `json:"-"`
	// Key identifies the inputs (package files and recipe).
	Key      string `json:"key"`
	Arch     string `json:"arch"`
	Packages []Deb  `json:"packages"`
	// Cached is true when the layer was already in the cache.
	Cached bool `json:"-"`
}

// Build returns the base layer for cfg.Arch, making it if the cache has
// none for the current package versions. Concurrent builds of one
// architecture (make image, tests) wait for each other.
func Build(ctx context.Context, cfg Config) (Base, error) {
	if cfg.Arch == "" || cfg.CacheDir == "" {
		return Base{}, errors.New("debianbase: Arch and CacheDir are required")
	}
	if cfg.ListsMaxAge == 0 {
		cfg.ListsMaxAge = 24 * time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	for _, tool := range []string{"apt-get", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			return Base{}, fmt.Errorf("debianbase: %s not found: the base is made from Debian packages on a Debian host", tool)
		}
	}
	a := &apt{dir: filepath.Join(cfg.CacheDir, "apt", cfg.Arch), arch: cfg.Arch, logger: cfg.Logger}
	if err := os.MkdirAll(a.dir, 0o755); err != nil {
		return Base{}, fmt.Errorf("creating cache %s: %w", a.dir, err)
	}
	unlock, err := lock(filepath.Join(a.dir, "lock"), cfg.Logger)
	if err != nil {
		return Base{}, err
	}
	defer unlock()

	if err := a.update(ctx, cfg.ListsMaxAge); err != nil {
		return Base{}, err
	}
	debs, err := a.resolve(ctx, Packages())
	if err != nil {
		return Base{}, err
	}
	b := Base{Key: key(debs), Arch: cfg.Arch, Packages: debs}
	layersDir := filepath.Join(cfg.CacheDir, "base")
	b.Layer = filepath.Join(layersDir, fmt.Sprintf("debian-%s-%s.tar.gz", cfg.Arch, b.Key))
	if _, err := os.Stat(b.Layer); err == nil {
		b.Cached = true
		return b, nil
	}

	start := time.Now()
	if err := a.download(ctx, debs); err != nil {
		return Base{}, err
	}
	fs := newRootfs()
	for _, d := range debs {
		if err := unpack(ctx, fs, d, filepath.Join(a.debsDir(), d.Filename)); err != nil {
			return Base{}, err
		}
	}
	if err := finish(fs); err != nil {
		return Base{}, err
	}
	if err := os.MkdirAll(layersDir, 0o755); err != nil {
		return Base{}, fmt.Errorf("creating %s: %w", layersDir, err)
	}
	if err := writeLayer(fs, b.Layer); err != nil {
		return Base{}, err
	}
	meta, _ := json.MarshalIndent(b, "", "  ")
	if err := os.WriteFile(strings.TrimSuffix(b.Layer, ".tar.gz")+".json", append(meta, '\n'), 0o644); err != nil {
		return Base{}, fmt.Errorf("writing the base's package list: %w", err)
	}
	a.prune(debs)
	pruneLayers(layersDir, cfg.Arch, b.Layer)
	cfg.Logger.Info("made Debian base layer", "arch", cfg.Arch, "packages", len(debs), "took", time.Since(start).Round(100*time.Millisecond))
	return b, nil
}

// key hashes the recipe, the exact package files and what finish writes.
func key(debs []Deb) string {
	h := sha256.New()
	fmt.Fprint(h, recipe, "\n", passwd, group, nsswitch)
	left := LeftOut()
	names := make([]string, 0, len(left))
	for n := range left {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(h, names)
	for _, d := range debs {
		fmt.Fprintln(h, d.Filename, d.SHA256)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// unpack adds one package's files and its status entry (for scanners, as
// distroless keeps /var/lib/dpkg/status.d).
func unpack(ctx context.Context, fs *rootfs, d Deb, file string) error {
	control, err := exec.CommandContext(ctx, "dpkg-deb", "-f", file).Output()
	if err != nil {
		return fmt.Errorf("reading %s's control file: %w", d.Filename, err)
	}
	cmd := exec.CommandContext(ctx, "dpkg-deb", "--fsys-tarfile", file)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("unpacking %s: %w", d.Filename, err)
	}
	addErr := fs.addArchive(d.Name, out, func(p string) bool { return !excluded(p) })
	_, _ = io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("unpacking %s: %w: %s", d.Filename, err, strings.TrimSpace(stderr.String()))
	}
	if addErr != nil {
		return addErr
	}
	return addFile(fs, "var/lib/dpkg/status.d/"+d.Name, 0o644, 0, control)
}

// finish writes what maintainer scripts and the system installer would
// have: the /usr-merge links, accounts, the CA bundle, /run and homes.
func finish(fs *rootfs) error {
	for _, d := range []string{"bin", "sbin", "lib"} {
		fs.merged[d] = true
	}
	for d := range fs.merged {
		if err := addLink(fs, d, "usr/"+d); err != nil {
			return err
		}
	}
	for p, content := range map[string]string{"etc/passwd": passwd, "etc/group": group, "etc/nsswitch.conf": nsswitch} {
		if err := addFile(fs, p, 0o644, 0, []byte(content)); err != nil {
			return err
		}
	}
	bundle, n, err := caBundle(fs)
	if err != nil {
		return err
	}
	if n == 0 {
		return errors.New("no CA certificate found under /usr/share/ca-certificates")
	}
	if err := addFile(fs, "etc/ssl/certs/ca-certificates.crt", 0o644, 0, bundle); err != nil {
		return err
	}
	for _, d := range []struct {
		path string
		mode int64
		uid  int
	}{{"run", 0o755, 0}, {"tmp", 0o1777, 0}, {"root", 0o700, 0}, {"home/nonroot", 0o700, 65532}, {"var/lib/dpkg/status.d", 0o755, 0}} {
		if err := addDir(fs, d.path, d.mode, d.uid); err != nil {
			return err
		}
	}
	return addLink(fs, "var/run", "/run")
}

// caBundle concatenates every certificate ca-certificates ships, which is
// what update-ca-certificates makes with Debian's default configuration
// (all of them enabled).
func caBundle(fs *rootfs) ([]byte, int, error) {
	var paths []string
	for p, n := range fs.nodes {
		if strings.HasPrefix(p, "usr/share/ca-certificates/") && strings.HasSuffix(p, ".crt") && n.hdr.Typeflag == tar.TypeReg {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	var b bytes.Buffer
	for _, p := range paths {
		data := fs.nodes[p].data
		b.Write(data)
		if len(data) > 0 && data[len(data)-1] != '\n' {
			b.WriteByte('\n')
		}
	}
	return b.Bytes(), len(paths), nil
}

// epoch is the time stamp of generated entries: fixed, so the layer's
// digest depends on content only.
var epoch = time.Unix(0, 0).UTC()

func addDir(fs *rootfs, p string, mode int64, uid int) error {
	if err := mkdirAll(fs, path.Dir(p)); err != nil {
		return err
	}
	return fs.replace("nodekit", p, tar.Header{Typeflag: tar.TypeDir, Mode: mode, Uid: uid, Gid: uid, ModTime: epoch}, nil)
}

func addFile(fs *rootfs, p string, mode int64, uid int, data []byte) error {
	if err := mkdirAll(fs, path.Dir(p)); err != nil {
		return err
	}
	return fs.replace("nodekit", p, tar.Header{Typeflag: tar.TypeReg, Mode: mode, Uid: uid, Gid: uid, ModTime: epoch}, data)
}

func addLink(fs *rootfs, p, target string) error {
	if err := mkdirAll(fs, path.Dir(p)); err != nil {
		return err
	}
	return fs.replace("nodekit", p, tar.Header{Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777, ModTime: epoch}, nil)
}

func mkdirAll(fs *rootfs, p string) error {
	if p == "." || p == "" {
		return nil
	}
	if n, ok := fs.get(p); ok {
		if n.hdr.Typeflag != tar.TypeDir {
			return fmt.Errorf("/%s is not a directory", p)
		}
		return nil
	}
	if err := mkdirAll(fs, path.Dir(p)); err != nil {
		return err
	}
	return fs.add("nodekit", p, tar.Header{Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch}, nil)
}

// writeLayer writes the gzip-compressed tar next to its final name and
// renames it into place, so a reader never sees half a layer.
func writeLayer(fs *rootfs, dst string) error {
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".layer-*")
	if err != nil {
		return fmt.Errorf("creating the base layer: %w", err)
	}
	defer os.Remove(tmp.Name())
	zw, err := gzip.NewWriterLevel(tmp, gzip.DefaultCompression)
	if err != nil {
		return err
	}
	if err := fs.write(zw); err != nil {
		tmp.Close()
		return fmt.Errorf("writing the base layer: %w", err)
	}
	if err := zw.Close(); err != nil {
		tmp.Close()
		return fmt.Errorf("compressing the base layer: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("writing the base layer: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing the base layer: %w", err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("storing the base layer: %w", err)
	}
	return nil
}

// pruneLayers removes older base layers of arch, keeping current.
func pruneLayers(dir, arch, current string) {
	keep := strings.TrimSuffix(current, ".tar.gz")
	matches, _ := filepath.Glob(filepath.Join(dir, "debian-"+arch+"-*"))
	for _, m := range matches {
		if strings.TrimSuffix(strings.TrimSuffix(m, ".json"), ".tar.gz") != keep {
			_ = os.Remove(m)
		}
	}
}

// lock takes an exclusive lock on path until the returned func is called,
// saying so when another build holds it.
func lock(path string, logger *slog.Logger) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening lock %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		logger.Info("waiting for another build of the Debian base", "lock", path)
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
	}
	return func() { _ = unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
}
