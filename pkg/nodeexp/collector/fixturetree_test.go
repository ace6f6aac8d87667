package collector

import (
	"flag"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/test/fixturetree"
)

// unpackFixtureTree unpacks node_exporter's fixture tree for one test.
func unpackFixtureTree(t *testing.T) fixturetree.Tree {
	t.Helper()
	tree, err := fixturetree.Unpack(t.Context(), t.TempDir())
	if err != nil {
		t.Fatalf("node_exporter's fixture tree (from the Go module proxy): %v", err)
	}
	return tree
}

// nodeExporterOnlyArgs are given to node_exporter alone, with why.
var nodeExporterOnlyArgs = map[string]string{}

// treeLiveFamilies are families whose values come from the machine the test
// runs on, not from the tree, so only their names, types, help and label
// sets are compared (values move between the two scrapes or differ by
// reader), with the reason.
var treeLiveFamilies = map[string]string{
	"node_time_seconds":             "the clock",
	"node_time_zone_offset_seconds": "the clock",
	// statfs(2) of the mount points under --path.rootfs: "/" is this
	// machine's file system (the module cache's), whose usage moves.
	"node_filesystem_size_bytes":  "statfs(2) of this machine's file system",
	"node_filesystem_free_bytes":  "statfs(2) of this machine's file system",
	"node_filesystem_avail_bytes": "statfs(2) of this machine's file system",
	"node_filesystem_files":       "statfs(2) of this machine's file system",
	"node_filesystem_files_free":  "statfs(2) of this machine's file system",
}

// treeLivePrefixes are like treeLiveFamilies for every family of a prefix.
var treeLivePrefixes = map[string]string{
	"node_timex_": "adjtimex(2) of this machine: its estimates move between two calls",
}

// netdevNetlink: node_exporter's netdev collector asks this machine's
// kernel over netlink by default (the tree has no proc/net/dev for its
// other mode), and nodeexp, which reads /proc/net/dev only, finds none in
// the tree.
const netdevNetlink = "node_exporter reads this machine's interfaces over netlink; the tree has no proc/net/dev"

// absentFromTree are node_exporter families nodeexp does not serve from
// the fixture tree, with the reason. Each must really be absent from
// nodeexp's output.
var absentFromTree = map[string]string{
	"node_network_receive_bytes_total":       netdevNetlink,
	"node_network_receive_compressed_total":  netdevNetlink,
	"node_network_receive_drop_total":        netdevNetlink,
	"node_network_receive_errs_total":        netdevNetlink,
	"node_network_receive_fifo_total":        netdevNetlink,
	"node_network_receive_frame_total":       netdevNetlink,
	"node_network_receive_multicast_total":   netdevNetlink,
	"node_network_receive_nohandler_total":   netdevNetlink,
	"node_network_receive_packets_total":     netdevNetlink,
	"node_network_transmit_bytes_total":      netdevNetlink,
	"node_network_transmit_carrier_total":    netdevNetlink,
	"node_network_transmit_colls_total":      netdevNetlink,
	"node_network_transmit_compressed_total": netdevNetlink,
	"node_network_transmit_drop_total":       netdevNetlink,
	"node_network_transmit_errs_total":       netdevNetlink,
	"node_network_transmit_fifo_total":       netdevNetlink,
	"node_network_transmit_packets_total":    netdevNetlink,
}

// seriesValueExceptions are single series whose values differ, with why.
var seriesValueExceptions = map[string]string{
	`node_scrape_collector_success{collector="netdev"}`: netdevNetlink + " (node_exporter 1, nodeexp 0)",
}

// TestFixtureTreeSideBySide runs node_exporter v1.12.1 and nodeexp with all
// their default collectors on node_exporter's own fixture tree, with the
// same paths and collector flags, and compares every family node_exporter
// emits: type, help, every series' labels, and its value (except the
// families named above, with their reason).
func TestFixtureTreeSideBySide(t *testing.T) {
	bin := nodeExporterBinary(t)
	tree := unpackFixtureTree(t)
	args := tree.Args()
	neArgs := slices.Clone(args)
	for _, a := range slices.Sorted(maps.Keys(nodeExporterOnlyArgs)) {
		neArgs = append(neArgs, a)
	}
	want := scrapeNodeExporterWith(t, bin, neArgs)

	fs := flag.NewFlagSet("nodeexp", flag.ContinueOnError)
	cfg := DefaultConfig()
	cfg.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("nodeexp does not take node_exporter's flags: %v", err)
	}
	cs, err := New(cfg, discard())
	if err != nil {
		t.Fatal(err)
	}
	e, err := nodeexp.NewExporter(nodeexp.DefaultConfig(), cs, discard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	gathered, err := e.Gatherer(t.Context()).Gather()
	if err != nil {
		t.Fatalf("gathering from the fixture tree: %v", err)
	}
	got := map[string]*dto.MetricFamily{}
	for _, mf := range gathered {
		got[mf.GetName()] = mf
	}
	if dir := os.Getenv("NODEEXP_FIXTURE_DUMP"); dir != "" {
		dumpFamilies(t, filepath.Join(dir, "node_exporter.prom"), want)
		dumpFamilies(t, filepath.Join(dir, "nodeexp.prom"), got)
	}

	compared := 0
	for _, name := range slices.Sorted(maps.Keys(want)) {
		w := want[name]
		if !strings.HasPrefix(name, "node_") || name == "node_exporter_build_info" || name == "node_scrape_collector_duration_seconds" {
			continue
		}
		g, ok := got[name]
		if reason, absent := absentFromTree[name]; absent {
			if ok {
				t.Errorf("%s: listed as absent (%s) but nodeexp serves it", name, reason)
			}
			continue
		}
		if !ok {
			t.Errorf("%s: emitted by node_exporter, not by nodeexp", name)
			continue
		}
		compared++
		if g.GetType() != w.GetType() {
			t.Errorf("%s: type %v, node_exporter %v", name, g.GetType(), w.GetType())
		}
		if g.GetHelp() != w.GetHelp() {
			t.Errorf("%s: help %q, node_exporter %q", name, g.GetHelp(), w.GetHelp())
		}
		_, live := treeLiveFamilies[name]
		for p := range treeLivePrefixes {
			live = live || strings.HasPrefix(name, p)
		}
		gs, ws := seriesOf(g), seriesOf(w)
		for _, k := range slices.Sorted(maps.Keys(ws)) {
			gv, ok := gs[k]
			switch {
			case !ok:
				t.Errorf("%s%s: missing (node_exporter: %v)", name, k, ws[k])
			case !live && !sameValue(gv, ws[k]) && seriesValueExceptions[name+k] == "":
				t.Errorf("%s%s = %v, node_exporter %v", name, k, gv, ws[k])
			}
		}
		for _, k := range slices.Sorted(maps.Keys(gs)) {
			if _, ok := ws[k]; !ok {
				t.Errorf("%s%s: extra series (%v), node_exporter has none", name, k, gs[k])
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[name]; !ok && strings.HasPrefix(name, "node_") {
			t.Errorf("%s: emitted by nodeexp, not by node_exporter", name)
		}
	}
	t.Logf("compared %d families; %d named absent", compared, len(absentFromTree))
}

// seriesOf maps each series of a family, by its rendered labels, to its
// value.
func seriesOf(mf *dto.MetricFamily) map[string]float64 {
	out := map[string]float64{}
	for _, m := range mf.GetMetric() {
		var ls []string
		for _, l := range m.GetLabel() {
			ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
		}
		sort.Strings(ls)
		out["{"+strings.Join(ls, ",")+"}"] = m.GetGauge().GetValue() + m.GetCounter().GetValue() + m.GetUntyped().GetValue()
	}
	return out
}

func sameValue(a, b float64) bool {
	return a == b || math.IsNaN(a) && math.IsNaN(b)
}

func dumpFamilies(t *testing.T, path string, mfs map[string]*dto.MetricFamily) {
	t.Helper()
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(mfs)) {
		for k, v := range seriesOf(mfs[name]) {
			fmt.Fprintf(&b, "%s%s %v\n", name, k, v)
		}
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	slices.Sort(lines)
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}
