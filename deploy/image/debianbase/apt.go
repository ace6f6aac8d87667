package debianbase

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// apt runs apt-get against a private state and cache directory for one
// architecture: the host's sources, keys and proxy settings, none of its
// package state. The host never learns about the foreign architecture
// (no dpkg --add-architecture) and nothing is installed.
type apt struct {
	dir    string // state, lists and downloaded .debs live here
	arch   string
	logger *slog.Logger
}

// Deb is one resolved package file.
type Deb struct {
	Name     string `json:"name"`
	Version  string `json:"version"`
	Arch     string `json:"arch"`
	Filename string `json:"filename"`
	SHA256   string `json:"sha256"`
	Size     int64  `json:"size"`
}

func (a *apt) listsDir() string { return filepath.Join(a.dir, "lists") }
func (a *apt) debsDir() string  { return filepath.Join(a.dir, "debs") }

func (a *apt) options() []string {
	o := func(kv string) []string { return []string{"-o", kv} }
	var args []string
	for _, kv := range []string{
		"APT::Architecture=" + a.arch,
		"APT::Architectures::=" + a.arch,
		"Dir::State=" + filepath.Join(a.dir, "state"),
		"Dir::State::Lists=" + a.listsDir(),
		"Dir::State::status=" + filepath.Join(a.dir, "status"),
		"Dir::Cache=" + filepath.Join(a.dir, "cache"),
		"Dir::Cache::archives=" + filepath.Join(a.dir, "cache", "archives"),
		"Dir::Cache::pkgcache=",
		"Dir::Cache::srcpkgcache=",
		// Our own flock serialises builds; the host's apt locks are not ours.
		"Debug::NoLocking=1",
		"Acquire::Languages=none",
		// The files are written into a root-owned cache; skip the _apt
		// sandbox user (and its warning) when running as root.
		"APT::Sandbox::User=root",
		// Only the Packages indexes are needed, not AppStream or
		// command-not-found data the host's configuration may enable.
		"Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false",
		"Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false",
		"Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false",
		"Acquire::IndexTargets::deb::DEP-11-icons-hidpi::DefaultEnabled=false",
		"Acquire::IndexTargets::deb::CNF::DefaultEnabled=false",
	} {
		args = append(args, o(kv)...)
	}
	return args
}

func (a *apt) prepare() error {
	for _, d := range []string{filepath.Join(a.dir, "state"), filepath.Join(a.listsDir(), "partial"),
		filepath.Join(a.dir, "cache", "archives", "partial"), a.debsDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("creating apt directory: %w", err)
		}
	}
	status := filepath.Join(a.dir, "status")
	if _, err := os.Stat(status); os.IsNotExist(err) {
		// An empty dpkg status: nothing is installed in this view.
		if err := os.WriteFile(status, nil, 0o644); err != nil {
			return fmt.Errorf("creating apt status file: %w", err)
		}
	}
	return nil
}

// update refreshes the package lists when they are older than maxAge. A
// failed refresh with lists already present is logged and the old lists
// are used: an offline rebuild of a cached base still works.
func (a *apt) update(ctx context.Context, maxAge time.Duration) error {
	if err := a.prepare(); err != nil {
		return err
	}
	stamp := filepath.Join(a.dir, "updated")
	st, err := os.Stat(stamp)
	haveLists := err == nil
	if haveLists && time.Since(st.ModTime()) < maxAge {
		return nil
	}
	start := time.Now()
	a.logger.Info("reading Debian package lists", "arch", a.arch)
	if _, err := a.run(ctx, "", append(a.options(), "-q", "update")...); err != nil {
		if haveLists {
			a.logger.Warn("could not refresh the Debian package lists; using the ones from "+st.ModTime().Format(time.RFC3339), "arch", a.arch, "err", err)
			return nil
		}
		return fmt.Errorf("apt-get update for %s: %w", a.arch, err)
	}
	a.logger.Info("read Debian package lists", "arch", a.arch, "took", time.Since(start).Round(100*time.Millisecond))
	return os.WriteFile(stamp, []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644)
}

// resolve returns the candidate .deb of each package (no dependencies: the
// package list is explicit), sorted by name.
func (a *apt) resolve(ctx context.Context, packages []string) ([]Deb, error) {
	out, err := a.run(ctx, "", append(append(a.options(), "download", "--print-uris"), packages...)...)
	if err != nil {
		return nil, fmt.Errorf("resolving Debian packages for %s: %w", a.arch, err)
	}
	debs, err := parsePrintURIs(out)
	if err != nil {
		return nil, err
	}
	got := map[string]bool{}
	for _, d := range debs {
		got[d.Name] = true
	}
	for _, p := range packages {
		if !got[p] {
			return nil, fmt.Errorf("apt resolved no %s package for %s", p, a.arch)
		}
	}
	return debs, nil
}

// parsePrintURIs reads `apt-get download --print-uris` lines:
//
//	'http://.../libc6_2.36-9%2bdeb12u14_arm64.deb' libc6_2.36-9+deb12u14_arm64.deb 2324660 SHA256:01f4...
func parsePrintURIs(out []byte) ([]Deb, error) {
	var debs []Deb
	for line := range strings.SplitSeq(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) != 4 || !strings.HasPrefix(f[0], "'") {
			continue
		}
		file, err := url.PathUnescape(f[1])
		if err != nil {
			return nil, fmt.Errorf("apt file name %q: %w", f[1], err)
		}
		parts := strings.Split(strings.TrimSuffix(file, ".deb"), "_")
		if len(parts) != 3 || !strings.HasSuffix(file, ".deb") {
			return nil, fmt.Errorf("apt file name %q is not name_version_arch.deb", file)
		}
		var size int64
		if _, err := fmt.Sscan(f[2], &size); err != nil {
			return nil, fmt.Errorf("apt size %q for %s: %w", f[2], file, err)
		}
		sum, ok := strings.CutPrefix(f[3], "SHA256:")
		if !ok || len(sum) != 64 {
			return nil, fmt.Errorf("apt gave no SHA256 for %s (%q)", file, f[3])
		}
		debs = append(debs, Deb{Name: parts[0], Version: parts[1], Arch: parts[2], Filename: file, SHA256: sum, Size: size})
	}
	if len(debs) == 0 {
		return nil, fmt.Errorf("apt-get download --print-uris listed no package")
	}
	sort.Slice(debs, func(i, j int) bool { return debs[i].Name < debs[j].Name })
	return debs, nil
}

// download fetches the .debs not already in the download directory with
// the right checksum; apt verifies them against the signed indexes.
func (a *apt) download(ctx context.Context, debs []Deb) error {
	var missing []string
	var bytes int64
	for _, d := range debs {
		if ok, _ := fileHasSHA256(filepath.Join(a.debsDir(), d.Filename), d.SHA256); !ok {
			missing = append(missing, d.Name+"="+d.Version)
			bytes += d.Size
		}
	}
	if len(missing) == 0 {
		return nil
	}
	start := time.Now()
	a.logger.Info("downloading Debian packages", "arch", a.arch, "packages", len(missing), "MiB", fmt.Sprintf("%.1f", float64(bytes)/(1<<20)))
	if _, err := a.run(ctx, a.debsDir(), append(append(a.options(), "-q", "download"), missing...)...); err != nil {
		return fmt.Errorf("downloading Debian packages for %s: %w", a.arch, err)
	}
	for _, d := range debs {
		ok, err := fileHasSHA256(filepath.Join(a.debsDir(), d.Filename), d.SHA256)
		if err != nil {
			return fmt.Errorf("checking %s: %w", d.Filename, err)
		}
		if !ok {
			return fmt.Errorf("%s does not have the SHA-256 apt announced (%s)", d.Filename, d.SHA256)
		}
	}
	a.logger.Info("downloaded Debian packages", "arch", a.arch, "took", time.Since(start).Round(100*time.Millisecond))
	return nil
}

// prune removes downloaded .debs that are not in keep.
func (a *apt) prune(keep []Deb) {
	want := map[string]bool{}
	for _, d := range keep {
		want[d.Filename] = true
	}
	entries, _ := os.ReadDir(a.debsDir())
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".deb") && !want[e.Name()] {
			_ = os.Remove(filepath.Join(a.debsDir(), e.Name()))
		}
	}
}

func (a *apt) run(ctx context.Context, dir string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "apt-get", args...)
	cmd.Dir = dir
	// A fixed locale keeps apt's output parseable.
	cmd.Env = append(os.Environ(), "LC_ALL=C", "DEBIAN_FRONTEND=noninteractive")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("apt-get %s: %w: %s", lastArgs(args), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// lastArgs names the apt-get command without the -o options.
func lastArgs(args []string) string {
	var rest []string
	for i := 0; i < len(args); i++ {
		if args[i] == "-o" {
			i++
			continue
		}
		rest = append(rest, args[i])
	}
	return strings.Join(rest, " ")
}

func fileHasSHA256(path, want string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return false, err
	}
	return hex.EncodeToString(h.Sum(nil)) == want, nil
}
