package collector

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nodekit/nodekit/pkg/nodeexp"
)

func TestParseMeminfo(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		want    []meminfoField
		wantErr bool
	}{
		{"kB converted, parentheses renamed", "MemTotal:       1000 kB\nActive(anon):     2 kB\n", []meminfoField{{"MemTotal_bytes", 1024000}, {"Active_anon_bytes", 2048}}, false},
		{"unitless hugepage counters keep their name", "HugePages_Total:       4\n", []meminfoField{{"HugePages_Total", 4}}, false},
		{"unknown unit", "MemTotal: 1 MB\n", nil, true},
		{"not a number", "MemTotal: x kB\n", nil, true},
		{"lines without a colon are skipped", "garbage\nMemFree: 1 kB\n", []meminfoField{{"MemFree_bytes", 1024}}, false},
		{"invalid metric characters skipped", "Mem-Total: 1 kB\n", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseMeminfo([]byte(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if !tc.wantErr && !equalFields(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func equalFields(a, b []meminfoField) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestParseNetStats(t *testing.T) {
	keep := newFieldFilter(regexp.MustCompile(`^(Tcp_InSegs|TcpExt_ListenDrops|Ip6_InOctets)$`))
	for _, tc := range []struct {
		name    string
		in      string
		want    int
		wantErr bool
	}{
		{"pairs of lines", "Tcp: RtoAlgorithm InSegs\nTcp: 1 42\nTcpExt: ListenDrops\nTcpExt: 3\n", 2, false},
		{"header without values", "Tcp: InSegs\n", 0, true},
		{"field count mismatch", "Tcp: InSegs OutSegs\nTcp: 1\n", 0, true},
		{"protocol mismatch", "Tcp: InSegs\nUdp: 1\n", 0, true},
		{"bad number", "Tcp: InSegs\nTcp: x\n", 0, true},
		{"empty", "", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseNetStats([]byte(tc.in), keep)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if len(got) != tc.want {
				t.Errorf("got %d stats %v, want %d", len(got), got, tc.want)
			}
		})
	}
	if got := parseSNMP6([]byte("Ip6InOctets 128\nIcmp6InMsgs 1\nbroken\nIp6InOctets x\n"), keep); len(got) != 1 || got[0].value != 128 || got[0].proto != "Ip6" {
		t.Errorf("parseSNMP6 = %v", got)
	}
}

func TestParseOSRelease(t *testing.T) {
	env := parseOSRelease([]byte("# comment\nNAME=\"Amazon Linux\"\nID=amzn\nVERSION_ID='2023'\nPRETTY_NAME=\"A \\\"quoted\\\" name\"\nbroken line\n=\n"))
	for k, want := range map[string]string{"NAME": "Amazon Linux", "ID": "amzn", "VERSION_ID": "2023", "PRETTY_NAME": `A "quoted" name`} {
		if env[k] != want {
			t.Errorf("%s = %q, want %q", k, env[k], want)
		}
	}
}

// TestGarbageNeverPanics feeds every file-based collector a tree of files
// full of junk: each may fail, none may panic.
func TestGarbageNeverPanics(t *testing.T) {
	junk := []string{"", "\x00\xff\xfe", "a b c\n1 2\n", strings.Repeat("9", 400), ":\n:\n", "cpu0 x y z\n"}
	for i, content := range junk {
		dir := t.TempDir()
		for _, f := range []string{"stat", "meminfo", "loadavg", "vmstat", "diskstats", "schedstat", "mdstat", "net/dev", "net/netstat", "net/snmp", "net/snmp6",
			"net/sockstat", "net/sockstat6", "net/softnet_stat", "net/arp", "net/udp", "net/udp6", "net/stat/nf_conntrack", "sys/fs/file-nr",
			"sys/net/netfilter/nf_conntrack_count", "sys/net/netfilter/nf_conntrack_max", "sys/kernel/random/entropy_avail", "sys/kernel/random/poolsize",
			"pressure/cpu", "pressure/io", "pressure/memory", "1/mountinfo"} {
			p := filepath.Join(dir, "proc", f)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		cfg := DefaultConfig()
		cfg.ProcPath = filepath.Join(dir, "proc")
		cfg.SysPath = filepath.Join(dir, "sys")
		cfg.RootPath = dir
		for name, f := range factories() {
			c, err := f(&cfg, discard())
			if err != nil {
				continue
			}
			ch := nodeexp.NewSink(10000)
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Errorf("junk %d: collector %s panicked: %v", i, name, r)
					}
				}()
				_ = c.Update(context.Background(), ch)
			}()
		}
	}
}

func TestTextfileErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bad.prom"), []byte("this is { not exposition\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ts.prom"), []byte("with_timestamp 1 1700000000000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ok.prom"), []byte("# TYPE ok_total counter\nok_total{a=\"1\"} 3\nok_total{b=\"2\"} 4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ignored.txt"), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.TextfileDirectories = []string{dir, filepath.Join(dir, "missing")}
	c, err := newTextfileCollector(&cfg, discard())
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(collectorAdapter{c})
	want := `
# HELP node_textfile_scrape_error 1 if there was an error opening or reading a file, 0 otherwise
# TYPE node_textfile_scrape_error gauge
node_textfile_scrape_error 1
# HELP ok_total Metric read from ` + filepath.Join(dir, "ok.prom") + `
# TYPE ok_total counter
ok_total{a="1",b=""} 3
ok_total{a="",b="2"} 4
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "node_textfile_scrape_error", "ok_total"); err != nil {
		t.Error(err)
	}
}
