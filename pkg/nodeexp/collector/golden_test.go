package collector

import (
	"bytes"
	"context"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"golang.org/x/sys/unix"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/podnames"
	"github.com/nodekit/nodekit/pkg/nodeexp/podstats"
)

var update = flag.Bool("update", false, "rewrite testdata/golden.prom from the current output")

const fixtures = "testdata/fixtures"

// fixtureConfig points every collector at the fixture trees. The textfile
// fixtures are copied with a pinned mtime, so node_textfile_mtime_seconds
// is stable without touching the checked-in files.
func fixtureConfig(t testing.TB) Config {
	t.Helper()
	cfg := DefaultConfig()
	cfg.ProcPath = filepath.Join(fixtures, "proc")
	cfg.SysPath = filepath.Join(fixtures, "sys")
	cfg.RootPath = filepath.Join(fixtures, "root")
	cfg.UdevDataPath = filepath.Join(fixtures, "udev")
	cfg.TextfileDirectories = []string{pinnedTextfiles(t)}
	cfg.Statfs = fixtureStatfs(cfg.RootPath)
	return cfg
}

// pinnedTextfiles copies the textfile fixtures into a directory of the
// test's own, with the mtime the golden file expects, and returns it.
func pinnedTextfiles(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(fixtures, "textfile")
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	pinned := time.Unix(1700000000, 0)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, e.Name())
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(dst, pinned, pinned); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// fixtureStatfs answers statfs for the fixture's mountinfo: fixed sizes, and
// ESTALE for the NFS mount, like a server that went away.
func fixtureStatfs(root string) StatfsFunc {
	return func(path string, buf *unix.Statfs_t) error {
		mp := "/" + strings.TrimPrefix(strings.TrimPrefix(path, root), "/")
		if mp == "/mnt/nfs" {
			return unix.ESTALE
		}
		*buf = unix.Statfs_t{Bsize: 4096, Blocks: 1000, Bfree: 600, Bavail: 500, Files: 100, Ffree: 40}
		if mp == "/" {
			buf.Blocks = 66053021
		}
		return nil
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// newFixtureExporter builds the full default collector set plus the pod
// collector on the fixtures, with the syscall-based collectors faked so the
// output is the same on every machine. reg (may be nil) gets the
// exporter's own metrics.
func newFixtureExporter(t testing.TB, reg prometheus.Registerer) *nodeexp.Exporter {
	t.Helper()
	return newFixtureExporterFrom(t, fixtureConfig(t), reg)
}

func newFixtureExporterFrom(t testing.TB, cfg Config, reg prometheus.Registerer) *nodeexp.Exporter {
	t.Helper()
	cs, err := New(cfg, discard())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	// The kubelet's pod log directories name three of the four pods.
	pods := podnames.New(filepath.Join(cfg.RootPath, "var/log/pods"))
	cs["pods"] = podstats.New(podstats.Config{CgroupRoot: filepath.Join(cfg.SysPath, "fs/cgroup")}, pods, discard())
	fakeSyscalls(cs)
	e, err := nodeexp.NewExporter(nodeexp.DefaultConfig(), cs, discard(), reg)
	if err != nil {
		t.Fatalf("NewExporter: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// newExporter builds the collectors of cfg into an exporter.
func newExporter(t testing.TB, cfg Config) *nodeexp.Exporter {
	t.Helper()
	cs, err := New(cfg, discard())
	if err != nil {
		t.Fatal(err)
	}
	e, err := nodeexp.NewExporter(nodeexp.DefaultConfig(), cs, discard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// fakeSyscalls replaces the clock, adjtimex, uname and SELinux state of
// the collectors that use them, so their output is the same on every
// machine.
func fakeSyscalls(cs map[string]nodeexp.Collector) {
	if c, ok := cs["time"].(*timeCollector); ok {
		c.clock = func() time.Time { return time.Unix(1700000000, 500000000).UTC() }
	}
	if c, ok := cs["timex"].(*timexCollector); ok {
		c.adjtimex = func(tx *unix.Timex) (int, error) {
			*tx = unix.Timex{Offset: -1500, Freq: 655360, Maxerror: 16000, Esterror: 8000, Status: 0x2001, Constant: 2, Tick: 10000, Tai: 37}
			return 0, nil
		}
	}
	if c, ok := cs["selinux"].(*selinuxCollector); ok {
		// No selinuxfs: the golden file must not depend on the machine.
		c.sysMount, c.filesystems = "/nonexistent/selinuxfs", "/nonexistent/filesystems"
	}
	if c, ok := cs["uname"].(*unameCollector); ok {
		c.uname = func(u *unix.Utsname) error {
			copy(u.Sysname[:], "Linux")
			copy(u.Release[:], "6.1.0-test")
			copy(u.Version[:], "#1 SMP")
			copy(u.Machine[:], "x86_64")
			copy(u.Nodename[:], "node-a")
			copy(u.Domainname[:], "(none)")
			return nil
		}
	}
}

// exposition renders families as text, without the scrape durations (which
// differ on every run).
func exposition(t testing.TB, mfs []*dto.MetricFamily) []byte {
	t.Helper()
	var buf bytes.Buffer
	for _, mf := range mfs {
		if mf.GetName() == "node_scrape_collector_duration_seconds" {
			continue
		}
		if _, err := expfmt.MetricFamilyToText(&buf, mf); err != nil {
			t.Fatalf("encoding %s: %v", mf.GetName(), err)
		}
	}
	return buf.Bytes()
}

func TestGoldenFixtures(t *testing.T) {
	cfg := fixtureConfig(t)
	e := newFixtureExporterFrom(t, cfg, nil)
	mfs, err := e.Gatherer(context.Background()).Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	got := textfileAsCheckedIn(cfg, exposition(t, mfs))
	golden := filepath.Join("testdata", "golden.prom")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("reading golden file (run with -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("exposition differs from %s (run go test -update and review the diff):\n%s", golden, lineDiff(string(want), string(got)))
	}
}

// textfileAsCheckedIn names the textfile fixtures in b by their checked-in
// path rather than by the copy the test read.
func textfileAsCheckedIn(cfg Config, b []byte) []byte {
	return bytes.ReplaceAll(b, []byte(`file="`+cfg.TextfileDirectories[0]), []byte(`file="`+filepath.Join(fixtures, "textfile")))
}

// lineDiff lists the lines only in want (-) or only in got (+).
func lineDiff(want, got string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	w, g := in(want), in(got)
	var b strings.Builder
	for _, l := range strings.Split(want, "\n") {
		if !g[l] {
			b.WriteString("- " + l + "\n")
		}
	}
	for _, l := range strings.Split(got, "\n") {
		if !w[l] {
			b.WriteString("+ " + l + "\n")
		}
	}
	return b.String()
}

// blockingStatfs is a statfs that never returns until release is closed,
// like a hard NFS mount whose server is gone.
type blockingStatfs struct {
	entered chan string
	release chan struct{}
}

func (b *blockingStatfs) statfs(path string, buf *unix.Statfs_t) error {
	b.entered <- path
	<-b.release
	*buf = unix.Statfs_t{Bsize: 4096, Blocks: 1}
	return nil
}

func TestScrapeDeadlineWithHungStatfs(t *testing.T) {
	hung := &blockingStatfs{entered: make(chan string, 16), release: make(chan struct{})}
	defer close(hung.release)
	cfg := fixtureConfig(t)
	cfg.Statfs = hung.statfs
	cfg.MountTimeout = time.Hour // only the scrape deadline can end the wait
	cfg.Collectors = map[string]bool{"timex": false, "time": false, "uname": false}
	cs, err := New(cfg, discard())
	if err != nil {
		t.Fatal(err)
	}
	e, err := nodeexp.NewExporter(nodeexp.DefaultConfig(), cs, discard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	srv := httptest.NewServer(e.Handler(nil, nil))
	defer srv.Close()

	req, err := http.NewRequest(http.MethodGet, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", "0.7")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	// The response is complete while every statfs is still blocked: the
	// release channel has not been closed yet.
	select {
	case <-hung.release:
		t.Fatal("statfs was released before the scrape returned")
	default:
	}
	if len(hung.entered) == 0 {
		t.Fatal("statfs was never called")
	}
	out := string(body)
	for _, want := range []string{
		`node_scrape_collector_success{collector="filesystem"} 0`,
		`node_scrape_collector_success{collector="meminfo"} 1`,
		`node_memory_MemTotal_bytes `,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("scrape output lacks %q", want)
		}
	}
}

func TestStuckMountReportedAsDeviceError(t *testing.T) {
	hung := &blockingStatfs{entered: make(chan string, 16), release: make(chan struct{})}
	cfg := fixtureConfig(t)
	real := fixtureStatfs(cfg.RootPath)
	// Only /mnt/nfs hangs; the others answer at once.
	cfg.Statfs = func(path string, buf *unix.Statfs_t) error {
		if strings.HasSuffix(path, "/mnt/nfs") {
			return hung.statfs(path, buf)
		}
		return real(path, buf)
	}
	cfg.MountTimeout = 50 * time.Millisecond
	c, err := newFilesystemCollector(&cfg, discard())
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(collectorAdapter{c})
	want := `
# HELP node_filesystem_device_error Whether an error occurred while getting statistics for the given device.
# TYPE node_filesystem_device_error gauge
node_filesystem_device_error{device="/dev/vda",device_error="",fstype="ext4",mountpoint="/"} 0
node_filesystem_device_error{device="/dev/vdb",device_error="",fstype="ext4",mountpoint="/var/lib/kubelet"} 0
node_filesystem_device_error{device="/dev/vdc",device_error="",fstype="ext4",mountpoint="/mnt/read only"} 0
node_filesystem_device_error{device="nfs.example:/export",device_error="mountpoint timeout",fstype="nfs4",mountpoint="/mnt/nfs"} 1
node_filesystem_device_error{device="tmpfs",device_error="",fstype="tmpfs",mountpoint="/run"} 0
`
	// Twice: the first scrape times the mount out, the second finds it
	// marked stuck and does not call statfs again.
	for i := range 2 {
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "node_filesystem_device_error"); err != nil {
			t.Fatalf("scrape %d: %v", i, err)
		}
	}
	if n := len(hung.entered); n != 1 {
		t.Errorf("hung statfs called %d times, want 1", n)
	}
	// Once the call returns, the mount point is monitored again.
	recovered := make(chan string, 16)
	fc := c.(*filesystemCollector)
	fc.mu.Lock()
	fc.statDone = func(mp string) { recovered <- mp }
	fc.mu.Unlock()
	close(hung.release)
	for mp := range recovered {
		if mp == "/mnt/nfs" {
			break
		}
	}
	fc.mu.Lock()
	stuck := fc.stuck["/mnt/nfs"]
	fc.mu.Unlock()
	if stuck {
		t.Error("mount point still marked stuck after statfs returned")
	}
}

// collectorAdapter runs one Collector as a prometheus.Collector.
type collectorAdapter struct{ c nodeexp.Collector }

func (collectorAdapter) Describe(chan<- *prometheus.Desc) {}
func (a collectorAdapter) Collect(ch chan<- prometheus.Metric) {
	sink := nodeexp.NewSink(0)
	_ = a.c.Update(context.Background(), sink)
	for _, m := range sink.Metrics() {
		ch <- m
	}
}

// The handler keeps its working storage from one scrape to the next: the
// fixtures must give the same text every time, the same as the registry
// writes, and through the text writer (no fallback counted).
func TestHandlerRepeatsScrapesIdentically(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := fixtureConfig(t)
	e := newFixtureExporterFrom(t, cfg, reg)
	srv := httptest.NewServer(e.Handler(nil, nil))
	defer srv.Close()
	withoutDurations := func(b []byte) string {
		var out []string
		for l := range strings.SplitSeq(string(b), "\n") {
			if !strings.Contains(l, "node_scrape_collector_duration_seconds") {
				out = append(out, l)
			}
		}
		return strings.Join(out, "\n")
	}
	want, err := os.ReadFile(filepath.Join("testdata", "golden.prom"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		resp, err := srv.Client().Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := withoutDurations(textfileAsCheckedIn(cfg, body)); got != withoutDurations(want) {
			t.Fatalf("scrape %d differs from the golden exposition:\n%s", i, lineDiff(withoutDurations(want), got))
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if v := m.GetCounter().GetValue(); mf.GetName() == "nodeexp_exposition_fallbacks_total" && v != 0 {
				t.Errorf("the fixtures were written by the registry, not the text writer: %v", m)
			}
		}
	}
}
