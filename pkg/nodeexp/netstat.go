package nodeexp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// netstatCollector reports the protocol counters of /proc/net/netstat,
// /proc/net/snmp and /proc/net/snmp6 matching --collector.netstat.fields as
// node_netstat_<Protocol>_<Field> (untyped, as node_exporter does).
// procfs only parses these per process into fixed structs, and the field set
// grows with every kernel, so they are parsed generically here.
type netstatCollector struct {
	series   seriesCache // label pairs of the series, across scrapes
	procPath string
	fields   *fieldFilter
	descs    descCache
}

func newNetstatCollector(cfg *Config, _ *slog.Logger) (Collector, error) {
	fields, err := compileFieldFilter("netstat", cfg.NetstatFields)
	if err != nil {
		return nil, err
	}
	return &netstatCollector{procPath: cfg.ProcPath, fields: fields}, nil
}

type netStat struct {
	proto, field string
	value        float64
}

func (c *netstatCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	var all []netStat
	for _, f := range []string{"net/netstat", "net/snmp"} {
		b, err := os.ReadFile(filepath.Join(c.procPath, f))
		if err != nil {
			return fmt.Errorf("couldn't get %s: %w", f, err)
		}
		st, err := parseNetStats(b, c.fields)
		if err != nil {
			return fmt.Errorf("couldn't parse %s: %w", f, err)
		}
		all = append(all, st...)
	}
	// snmp6 is missing when IPv6 is disabled; that is not an error.
	b, err := os.ReadFile(filepath.Join(c.procPath, "net/snmp6"))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("couldn't get SNMP6 stats: %w", err)
	default:
		all = append(all, parseSNMP6(b, c.fields)...)
	}
	for _, s := range all {
		d := c.descs.get("node_netstat_"+s.proto+"_"+s.field, "Statistic "+s.proto+s.field+".")
		c.series.send(ch, d, prometheus.UntypedValue, s.value)
	}
	return nil
}

// parseNetStats parses the pairs of "Proto: names..." / "Proto: values..."
// lines of /proc/net/netstat and /proc/net/snmp.
func parseNetStats(b []byte, keep *fieldFilter) ([]netStat, error) {
	var out []netStat
	var key []byte // "<proto>_<field>", reused
	for len(b) > 0 {
		var namesLine, valuesLine []byte
		namesLine, b = cutLine(b)
		if len(bytes.TrimSpace(namesLine)) == 0 {
			continue
		}
		names := bytes.Fields(namesLine)
		if len(b) == 0 {
			return nil, fmt.Errorf("header line %q without values", names)
		}
		valuesLine, b = cutLine(b)
		values := bytes.Fields(valuesLine)
		if len(names) == 0 || len(names) != len(values) || !bytes.Equal(names[0], values[0]) {
			return nil, fmt.Errorf("field count mismatch for %q", names)
		}
		proto := bytes.TrimSuffix(names[0], []byte(":"))
		var protoStr string // allocated once per protocol with a kept field
		for i := 1; i < len(names); i++ {
			key = append(append(append(key[:0], proto...), '_'), names[i]...)
			if !keep.keepBytes(key) {
				continue
			}
			v, err := strconv.ParseFloat(string(values[i]), 64)
			if err != nil {
				return nil, fmt.Errorf("invalid value %q for %s %s: %w", values[i], proto, names[i], err)
			}
			if protoStr == "" {
				protoStr = string(proto)
			}
			out = append(out, netStat{proto: protoStr, field: string(names[i]), value: v})
		}
	}
	return out, nil
}

// cutLine returns the first line of b (without its newline) and the rest.
func cutLine(b []byte) (line, rest []byte) {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return b[:i], b[i+1:]
	}
	return b, nil
}

// parseSNMP6 parses "Ip6InReceives  1" lines: the protocol is everything up
// to and including the first "6".
func parseSNMP6(b []byte, keep *fieldFilter) []netStat {
	var out []netStat
	var key []byte
	for len(b) > 0 {
		var line []byte
		line, b = cutLine(b)
		f := bytes.Fields(line)
		if len(f) < 2 {
			continue
		}
		i := bytes.IndexByte(f[0], '6')
		if i < 0 {
			continue
		}
		proto, field := f[0][:i+1], f[0][i+1:]
		key = append(append(append(key[:0], proto...), '_'), field...)
		if !keep.keepBytes(key) {
			continue
		}
		v, err := strconv.ParseFloat(string(f[1]), 64)
		if err != nil {
			continue
		}
		out = append(out, netStat{proto: string(proto), field: string(field), value: v})
	}
	return out
}
