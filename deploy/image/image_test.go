package image

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"debug/buildinfo"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	corev1 "k8s.io/api/core/v1"

	"github.com/nodekit/nodekit/deploy"
	"github.com/nodekit/nodekit/deploy/image/debianbase"
	"github.com/nodekit/nodekit/deploy/image/xtables"
)

func TestMain(m *testing.M) {
	// The read-only sandbox of the iptables test re-runs this binary.
	if spec := os.Getenv(sandboxEnv); spec != "" {
		sandboxMain(spec)
		return
	}
	code := m.Run()
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// shared is the image every test checks, built once per test binary with
// a version of its own, so finding that version in the binaries proves
// they were built by this run from this tree.
var shared struct {
	once    sync.Once
	dir     string
	version string
	res     Result
	log     bytes.Buffer
	err     error
}

func builtImage(t *testing.T) Result {
	t.Helper()
	shared.once.Do(func() {
		shared.version = fmt.Sprintf("v0.0.0-imagetest.%d", time.Now().Unix())
		if shared.dir, shared.err = os.MkdirTemp("", "nodekit-imagetest-"); shared.err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		shared.res, shared.err = Build(ctx, Options{
			Version: shared.version,
			OutDir:  shared.dir,
			Logger:  slog.New(slog.NewTextHandler(&shared.log, nil)),
		})
	})
	t.Logf("image build log:\n%s", shared.log.String())
	if shared.err != nil {
		t.Fatalf("building the image: %v", shared.err)
	}
	return shared.res
}

// platformImages reads the built layout back: one image per platform.
func platformImages(t *testing.T, res Result) map[string]v1.Image {
	t.Helper()
	top, err := layout.ImageIndexFromPath(res.Layout)
	if err != nil {
		t.Fatal(err)
	}
	tm, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(tm.Manifests) != 1 {
		t.Fatalf("index.json has %d descriptors, want the one image index", len(tm.Manifests))
	}
	idx, err := top.ImageIndex(tm.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	return indexImages(t, idx)
}

func indexImages(t *testing.T, idx v1.ImageIndex) map[string]v1.Image {
	t.Helper()
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	imgs := map[string]v1.Image{}
	for _, d := range im.Manifests {
		if d.Platform == nil {
			t.Fatalf("index entry %s names no platform", d.Digest)
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		imgs[d.Platform.Architecture] = img
	}
	return imgs
}

func loadManifest(t *testing.T) *deploy.Manifest {
	t.Helper()
	repo, err := FindRepo()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(repo, "deploy", "nodekit.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := deploy.ParseManifest(data)
	if err != nil {
		t.Fatalf("parsing nodekit.yaml: %v", err)
	}
	return m
}

// TestArchive checks what containerd imports: an OCI layout whose
// index.json names the image (io.containerd.image.name) and points at an
// index of both platforms, every blob present with its digest.
func TestArchive(t *testing.T) {
	res := builtImage(t)
	if want := "localhost/nodekit:" + shared.version; res.Reference != want {
		t.Errorf("Reference = %q, want %q", res.Reference, want)
	}
	top, err := layout.ImageIndexFromPath(res.Layout)
	if err != nil {
		t.Fatal(err)
	}
	tm, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(tm.Manifests) != 1 {
		t.Fatalf("index.json has %d descriptors, want 1", len(tm.Manifests))
	}
	d := tm.Manifests[0]
	if d.MediaType != "application/vnd.oci.image.index.v1+json" {
		t.Errorf("index.json points at %s, want an OCI image index", d.MediaType)
	}
	if got := d.Annotations[AnnotationContainerdName]; got != res.Reference {
		t.Errorf("%s = %q, want %q", AnnotationContainerdName, got, res.Reference)
	}
	if got := d.Annotations[AnnotationRefName]; got != shared.version {
		t.Errorf("%s = %q, want the tag %q", AnnotationRefName, got, shared.version)
	}
	if d.Digest.String() != res.Digest {
		t.Errorf("index.json points at %s, Result.Digest is %s", d.Digest, res.Digest)
	}
	idx, err := top.ImageIndex(d.Digest)
	if err != nil {
		t.Fatal(err)
	}
	// Layer contents are checked by digest below (decompressing them here
	// again is slow under -race); the rest is validated in full.
	if err := validate.Index(idx, validate.Fast); err != nil {
		t.Errorf("the image index does not validate (manifests, configs, sizes): %v", err)
	}
	blobs, err := os.ReadDir(filepath.Join(res.Layout, "blobs", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blobs {
		data, err := os.ReadFile(filepath.Join(res.Layout, "blobs", "sha256", b.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != b.Name() {
			t.Errorf("blob %s has digest %x", b.Name(), sum)
		}
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var platforms []string
	for _, m := range im.Manifests {
		platforms = append(platforms, m.Platform.String())
		img, err := idx.Image(m.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.OS != m.Platform.OS || cf.Architecture != m.Platform.Architecture || cf.Variant != m.Platform.Variant {
			t.Errorf("index says %s, the image's config says %s/%s/%s", m.Platform, cf.OS, cf.Architecture, cf.Variant)
		}
	}
	slices.Sort(platforms)
	if want := []string{"linux/amd64", "linux/arm64/v8"}; !slices.Equal(platforms, want) {
		t.Errorf("platforms %v, want %v", platforms, want)
	}

	// The archive holds exactly the layout's files.
	f, err := os.Open(res.Archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	inTar := map[string][]byte{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("reading %s: %v", res.Archive, err)
		}
		if h.Typeflag == tar.TypeReg {
			b, _ := io.ReadAll(tr)
			inTar[h.Name] = b
		}
	}
	err = filepath.WalkDir(res.Layout, func(p string, de os.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(res.Layout, p)
		want, _ := os.ReadFile(p)
		if got, ok := inTar[rel]; !ok || !bytes.Equal(got, want) {
			t.Errorf("archive's %s differs from the layout's", rel)
		}
		delete(inTar, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for name := range inTar {
		t.Errorf("archive has %s, which the layout does not", name)
	}
	for _, name := range []string{"oci-layout", "index.json"} {
		if _, err := os.Stat(filepath.Join(res.Layout, name)); err != nil {
			t.Errorf("layout lacks %s", name)
		}
	}
}

// TestImageMatchesManifest checks the image against what deploy/nodekit.yaml
// expects of it, on both platforms.
func TestImageMatchesManifest(t *testing.T) {
	res := builtImage(t)
	m := loadManifest(t)
	for arch, img := range platformImages(t, res) {
		t.Run(arch, func(t *testing.T) {
			for _, problem := range manifestProblems(t, m, img, shared.version) {
				t.Error(problem)
			}
		})
	}
}

// manifestProblems lists every way img fails nodekit.yaml: its user,
// each container's command (a static binary for the image's architecture,
// built from this module's cmd/ of the same name with version), what
// metaproxy runs for --iptables, and where the containers mount things.
func manifestProblems(t *testing.T, m *deploy.Manifest, img v1.Image, version string) []string {
	t.Helper()
	var p []string
	bad := func(format string, a ...any) { p = append(p, fmt.Sprintf(format, a...)) }
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	fs := readImageFS(t, img)
	def := Nodekit()
	arch := cf.Architecture

	// The default user: distroless' nonroot, never root.
	if cf.Config.User != def.User {
		bad("image user %q, want %q", cf.Config.User, def.User)
	}
	if u, _, _ := strings.Cut(cf.Config.User, ":"); u == "" || u == "0" || u == "root" {
		bad("image user %q is root: a pod without runAsUser must not run as root", cf.Config.User)
	}
	if !slices.Equal(cf.Config.Entrypoint, def.Entrypoint) || len(cf.Config.Cmd) != 0 {
		bad("entrypoint %q cmd %q, want %q and none", cf.Config.Entrypoint, cf.Config.Cmd, def.Entrypoint)
	}
	pathEnv := ""
	for _, kv := range cf.Config.Env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathEnv = v
		}
	}
	if pathEnv != Path {
		bad("image PATH %q, want %q", pathEnv, Path)
	}
	users := accountIDs(fs, "/etc/passwd")
	groups := accountIDs(fs, "/etc/group")
	uid, gid, _ := strings.Cut(def.User, ":")
	if !users[uid] || !groups[gid] {
		bad("image user %s has no /etc/passwd or /etc/group entry", def.User)
	}

	byPath := map[string]Binary{}
	for _, b := range def.Binaries {
		byPath[b.Path] = b
	}
	check := func(who, cmd string) {
		b, ok := byPath[cmd]
		if !ok {
			bad("%s runs %s, which is not one of the image's binaries %v", who, cmd, def.Binaries)
			return
		}
		for _, problem := range binaryProblems(fs, b, arch, version) {
			bad("%s: %s", who, problem)
		}
	}
	check("entrypoint", cf.Config.Entrypoint[0])

	for _, c := range m.DaemonSet.Spec.Template.Spec.Containers {
		who := "container " + c.Name
		if len(c.Command) == 0 {
			bad("%s has no command: it would run the image's entrypoint %v", who, cf.Config.Entrypoint)
			continue
		}
		check(who, c.Command[0])
		if path.Base(c.Command[0]) != c.Name {
			bad("%s runs %s", who, c.Command[0])
		}
		if sc := c.SecurityContext; sc != nil {
			if sc.RunAsUser != nil && !users[fmt.Sprint(*sc.RunAsUser)] {
				bad("%s runs as uid %d, which the image's /etc/passwd lacks", who, *sc.RunAsUser)
			}
			if sc.RunAsGroup != nil && !groups[fmt.Sprint(*sc.RunAsGroup)] {
				bad("%s runs as gid %d, which the image's /etc/group lacks", who, *sc.RunAsGroup)
			}
		}
		if slices.Contains(c.Args, "--iptables") {
			for _, problem := range iptablesProblems(fs, pathEnv, arch) {
				bad("%s (--iptables): %s", who, problem)
			}
		}
		for _, problem := range mountProblems(m, c, fs) {
			bad("%s: %s", who, problem)
		}
	}
	return p
}

// binaryProblems checks one agent: an executable, static ELF for arch,
// built by Go from this module's package of its name, with version.
func binaryProblems(fs *imageFS, b Binary, arch, version string) []string {
	var p []string
	e, err := fs.file(b.Path)
	if err != nil {
		return []string{err.Error()}
	}
	if e.hdr.Mode&0o111 == 0 || e.hdr.Uid != 0 {
		p = append(p, fmt.Sprintf("%s: mode %o owner %d, want executable and root-owned", b.Path, e.hdr.Mode, e.hdr.Uid))
	}
	f, err := elf.NewFile(bytes.NewReader(e.data))
	if err != nil {
		return append(p, fmt.Sprintf("%s is not an ELF file: %v", b.Path, err))
	}
	if want := elfMachine(arch); f.Machine != want {
		p = append(p, fmt.Sprintf("%s is %s, want %s", b.Path, f.Machine, want))
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			p = append(p, fmt.Sprintf("%s is dynamically linked; the agents are static (CGO_ENABLED=0)", b.Path))
		}
	}
	bi, err := buildinfo.Read(bytes.NewReader(e.data))
	if err != nil {
		return append(p, fmt.Sprintf("%s has no Go build information: %v", b.Path, err))
	}
	if want := Module + "/cmd/" + b.Name(); bi.Path != want || bi.Main.Path != Module {
		p = append(p, fmt.Sprintf("%s was built from %s (module %s), want %s", b.Path, bi.Path, bi.Main.Path, want))
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if settings["GOARCH"] != arch || settings["CGO_ENABLED"] != "0" || settings["-trimpath"] != "true" {
		p = append(p, fmt.Sprintf("%s: GOARCH=%s CGO_ENABLED=%s -trimpath=%s, want %s, 0, true", b.Path, settings["GOARCH"], settings["CGO_ENABLED"], settings["-trimpath"], arch))
	}
	// -trimpath builds do not record -ldflags; the version they set is
	// in the binary's data.
	if !bytes.Contains(e.data, []byte(version)) {
		p = append(p, fmt.Sprintf("%s does not carry version %s", b.Path, version))
	}
	return p
}

// iptablesProblems checks what go-iptables finds in the image: iptables
// and ip6tables along PATH are the wrapper, and both backends it chooses
// between are there, for arch.
func iptablesProblems(fs *imageFS, pathEnv, arch string) []string {
	var p []string
	for _, cmd := range []string{"iptables", "ip6tables"} {
		found, err := fs.lookPath(pathEnv, cmd)
		if err != nil {
			p = append(p, err.Error())
			continue
		}
		if real, _, _ := fs.resolve(found); real != WrapperPath {
			p = append(p, fmt.Sprintf("%s along PATH is %s -> %s, want the wrapper %s", cmd, found, real, WrapperPath))
		}
	}
	for _, c := range xtables.Commands {
		if real, _, err := fs.resolve("/usr/sbin/" + c); err != nil || real != WrapperPath {
			p = append(p, fmt.Sprintf("/usr/sbin/%s -> %s (%v), want %s", c, real, err, WrapperPath))
		}
	}
	for _, bin := range []string{WrapperPath, "/usr/sbin/" + xtables.NFT.Multi(), "/usr/sbin/" + xtables.Legacy.Multi()} {
		e, err := fs.file(bin)
		if err != nil {
			p = append(p, err.Error())
			continue
		}
		f, err := elf.NewFile(bytes.NewReader(e.data))
		if err != nil || f.Machine != elfMachine(arch) || e.hdr.Mode&0o111 == 0 {
			p = append(p, fmt.Sprintf("%s is not an executable %s ELF file", bin, elfMachine(arch)))
		}
	}
	return p
}

// xtablesLock is the lock iptables-legacy takes, as compiled into the image.
var xtablesLockRE = regexp.MustCompile(`/[a-z/]*/xtables\.lock`)

// mountProblems checks a container's volume mounts against the image: a
// host file mounted where the image has a directory (or the reverse) fails
// at start; a mount over the image's programs hides them; and the
// iptables lock must be mounted where the image's iptables looks for it.
func mountProblems(m *deploy.Manifest, c corev1.Container, fs *imageFS) []string {
	var p []string
	volumes := map[string]corev1.Volume{}
	for _, v := range m.DaemonSet.Spec.Template.Spec.Volumes {
		volumes[v.Name] = v
	}
	for _, vm := range c.VolumeMounts {
		v, ok := volumes[vm.Name]
		if !ok || v.HostPath == nil {
			continue
		}
		for _, keep := range []string{BinDir, "/usr/sbin", "/usr/lib", "/etc/ssl"} {
			if keep == vm.MountPath || strings.HasPrefix(keep+"/", strings.TrimSuffix(vm.MountPath, "/")+"/") {
				p = append(p, fmt.Sprintf("mount %s at %s hides the image's %s", vm.Name, vm.MountPath, keep))
			}
		}
		wantFile := v.HostPath.Type != nil && (*v.HostPath.Type == corev1.HostPathFile || *v.HostPath.Type == corev1.HostPathFileOrCreate)
		if _, e, err := fs.resolve(vm.MountPath); err == nil {
			isDir := e.hdr.Typeflag == tar.TypeDir
			if wantFile && isDir {
				p = append(p, fmt.Sprintf("mount %s puts a file at %s, where the image has a directory", vm.Name, vm.MountPath))
			}
			if !wantFile && !isDir {
				p = append(p, fmt.Sprintf("mount %s puts a directory at %s, where the image has a file", vm.Name, vm.MountPath))
			}
		}
		if strings.HasSuffix(v.HostPath.Path, "xtables.lock") {
			e, err := fs.file("/usr/sbin/" + xtables.Legacy.Multi())
			if err != nil {
				p = append(p, err.Error())
				continue
			}
			lock := string(xtablesLockRE.Find(e.data))
			if lock != vm.MountPath || lock != v.HostPath.Path {
				p = append(p, fmt.Sprintf("the image's iptables locks %q; the manifest mounts host %s at %s", lock, v.HostPath.Path, vm.MountPath))
			}
		}
	}
	return p
}

func accountIDs(fs *imageFS, file string) map[string]bool {
	ids := map[string]bool{}
	e, err := fs.file(file)
	if err != nil {
		return ids
	}
	for line := range strings.SplitSeq(string(e.data), "\n") {
		if f := strings.Split(line, ":"); len(f) >= 3 {
			ids[f[2]] = true
		}
	}
	return ids
}

func elfMachine(arch string) elf.Machine {
	if arch == "arm64" {
		return elf.EM_AARCH64
	}
	return elf.EM_X86_64
}

// TestManifestProblemsCatches proves the checks above can fail: the same
// image against a manifest that runs a binary the image lacks, mounts the
// lock elsewhere, and runs as a user the image does not know; and against a
// version it was not built with.
func TestManifestProblemsCatches(t *testing.T) {
	res := builtImage(t)
	img := platformImages(t, res)["amd64"]
	m := loadManifest(t)
	for i := range m.DaemonSet.Spec.Template.Spec.Containers {
		c := &m.DaemonSet.Spec.Template.Spec.Containers[i]
		switch c.Name {
		case "metaproxy":
			for j := range c.VolumeMounts {
				if c.VolumeMounts[j].Name == "xtables-lock" {
					c.VolumeMounts[j].MountPath = "/var/run/xtables.lock.elsewhere"
				}
			}
		case "logship":
			c.Command = []string{BinDir + "/fluent-bit"}
		case "nodeexp":
			uid := int64(4242)
			c.SecurityContext.RunAsUser = &uid
		}
	}
	problems := strings.Join(manifestProblems(t, m, img, "v9.9.9-not-this-build"), "\n")
	for _, want := range []string{"xtables.lock", "fluent-bit", "uid 4242", "v9.9.9-not-this-build"} {
		if !strings.Contains(problems, want) {
			t.Errorf("no problem mentions %q; got:\n%s", want, problems)
		}
	}
}

// TestBaseLibraries checks, for both platforms, that every dynamically
// linked program in the image finds its loader and every library it
// needs inside the image: no maintainer script or ldconfig ran, so this is
// what proves the unpacked packages are complete.
func TestBaseLibraries(t *testing.T) {
	res := builtImage(t)
	for arch, img := range platformImages(t, res) {
		t.Run(arch, func(t *testing.T) {
			fs := readImageFS(t, img)
			triplet := map[string]string{"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu"}[arch]
			libDirs := []string{"/usr/lib/" + triplet, "/lib/" + triplet, "/usr/lib", "/lib"}
			dynamic := 0
			for p, e := range fs.files {
				if e.hdr.Typeflag != tar.TypeReg || len(e.data) < 4 || string(e.data[:4]) != "\x7fELF" {
					continue
				}
				f, err := elf.NewFile(bytes.NewReader(e.data))
				if err != nil {
					t.Errorf("%s: %v", p, err)
					continue
				}
				if f.Machine != elfMachine(arch) {
					t.Errorf("%s is %s in the %s image", p, f.Machine, arch)
				}
				for _, prog := range f.Progs {
					if prog.Type != elf.PT_INTERP {
						continue
					}
					dynamic++
					interp := make([]byte, prog.Filesz)
					if _, err := prog.ReadAt(interp, 0); err != nil {
						t.Errorf("%s: reading its loader: %v", p, err)
					}
					if _, err := fs.file(strings.TrimRight(string(interp), "\x00")); err != nil {
						t.Errorf("%s: its loader: %v", p, err)
					}
				}
				needed, err := f.ImportedLibraries()
				if err != nil {
					t.Errorf("%s: %v", p, err)
				}
				for _, lib := range needed {
					found := false
					for _, d := range libDirs {
						if _, err := fs.file(path.Join(d, lib)); err == nil {
							found = true
							break
						}
					}
					if !found {
						t.Errorf("%s needs %s, which is not in %v", p, lib, libDirs)
					}
				}
			}
			if dynamic < 3 {
				t.Errorf("found %d dynamically linked programs; want at least the two iptables backends and dash", dynamic)
			}
			if _, err := fs.file("/bin/sh"); err != nil {
				t.Errorf("/bin/sh: %v", err)
			}
		})
	}
}

// TestPackageDependencies checks the Debian packages in each base against
// their own Depends and Pre-Depends (from the image's status.d): each one
// is in the image or deliberately left out, with a reason.
func TestPackageDependencies(t *testing.T) {
	res := builtImage(t)
	leftOut := debianbase.LeftOut()
	for arch, img := range platformImages(t, res) {
		t.Run(arch, func(t *testing.T) {
			fs := readImageFS(t, img)
			have := map[string]bool{}
			var controls []map[string]string
			for _, p := range fs.under("/var/lib/dpkg/status.d") {
				e := fs.files[p]
				if e.hdr.Typeflag != tar.TypeReg {
					continue
				}
				c := controlFields(string(e.data))
				controls = append(controls, c)
				have[c["Package"]] = true
				for _, prov := range splitDeps(c["Provides"]) {
					have[prov[0]] = true
				}
			}
			if want := debianbase.Packages(); len(controls) != len(want) {
				t.Errorf("status.d lists %d packages, want %d (%v)", len(controls), len(want), want)
			}
			for _, c := range controls {
				for _, group := range splitDeps(c["Pre-Depends"] + ", " + c["Depends"]) {
					ok := false
					for _, alt := range group {
						ok = ok || have[alt] || leftOut[alt] != ""
					}
					if !ok {
						t.Errorf("%s depends on %s: neither in the image nor in debianbase.LeftOut", c["Package"], strings.Join(group, " | "))
					}
				}
			}
		})
	}
}

// controlFields parses a Debian control paragraph (continuation lines
// ignored).
func controlFields(s string) map[string]string {
	f := map[string]string{}
	for line := range strings.SplitSeq(s, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, " ") {
			f[k] = strings.TrimSpace(v)
		}
	}
	return f
}

// splitDeps reads "a (>= 1), b | c:any" into [[a] [b c]].
func splitDeps(s string) [][]string {
	var out [][]string
	for group := range strings.SplitSeq(s, ",") {
		var alts []string
		for alt := range strings.SplitSeq(group, "|") {
			name, _, _ := strings.Cut(strings.TrimSpace(alt), " ")
			name, _, _ = strings.Cut(name, ":")
			if name != "" {
				alts = append(alts, name)
			}
		}
		if len(alts) > 0 {
			out = append(out, alts)
		}
	}
	return out
}

// TestCABundle checks the certificates the agents' TLS to AWS relies on.
func TestCABundle(t *testing.T) {
	res := builtImage(t)
	for arch, img := range platformImages(t, res) {
		fs := readImageFS(t, img)
		e, err := fs.file("/etc/ssl/certs/ca-certificates.crt")
		if err != nil {
			t.Fatalf("%s: %v", arch, err)
		}
		n := bytes.Count(e.data, []byte("-----BEGIN CERTIFICATE-----"))
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(e.data) || n < 100 {
			t.Errorf("%s: the CA bundle holds %d certificates, want Debian's (over 100)", arch, n)
		}
	}
}

// TestMakefileLDFlags keeps `make build` and the image's binaries built
// with the same linker flags.
func TestMakefileLDFlags(t *testing.T) {
	repo, err := FindRepo()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(repo, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^LDFLAGS\s*:?=\s*(.*)$`)
	mm := re.FindSubmatch(data)
	if mm == nil {
		t.Fatal("Makefile has no LDFLAGS")
	}
	if got, want := strings.TrimSpace(string(mm[1])), DefaultLDFlags("$(VERSION)"); got != want {
		t.Errorf("Makefile LDFLAGS = %q, image.DefaultLDFlags gives %q", got, want)
	}
}

func TestTagFor(t *testing.T) {
	for in, want := range map[string]string{
		"v0.1.0":              "v0.1.0",
		"v0.1.0-3-gabc-dirty": "v0.1.0-3-gabc-dirty",
		"1.2+meta":            "1.2-meta",
		"":                    "dev",
		".hidden":             "hidden",
	} {
		if got := TagFor(in); got != want {
			t.Errorf("TagFor(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParsePlatform(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{"linux/amd64", "linux/amd64", false},
		{"linux/arm64", "linux/arm64/v8", false},
		{"linux/arm64/v8", "linux/arm64/v8", false},
		{"linux/s390x", "", true},
		{"windows/amd64", "", true},
	}
	for _, tc := range tests {
		p, err := ParsePlatform(tc.in)
		if (err != nil) != tc.wantErr || (err == nil && p.String() != tc.want) {
			t.Errorf("ParsePlatform(%q) = %v, %v; want %q (error %v)", tc.in, p, err, tc.want, tc.wantErr)
		}
	}
}
