package collector

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
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

	// mu guards the read buffer and, by "<proto>_<field>", the descriptor
	// of every field seen before (nil: filtered out), so that a scrape
	// parses only numbers: building each field's name and help again was
	// most of the collector's allocations.
	mu   sync.Mutex
	buf  []byte
	key  []byte
	seen map[string]*constmetric.Desc
}

func newNetstatCollector(cfg *Config, _ *slog.Logger) (nodeexp.Collector, error) {
	fields, err := compileFieldFilter("netstat", cfg.NetstatFields)
	if err != nil {
		return nil, err
	}
	return &netstatCollector{procPath: cfg.ProcPath, fields: fields, seen: map[string]*constmetric.Desc{}}, nil
}

type netStat struct {
	proto, field string
	value        float64
}

type netstatSample struct {
	desc *constmetric.Desc
	v    float64
}

func (c *netstatCollector) Update(_ context.Context, ch *nodeexp.Sink) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []netstatSample
	for _, f := range []string{"net/netstat", "net/snmp"} {
		var err error
		c.buf, err = readFileInto(filepath.Join(c.procPath, f), c.buf)
		if err != nil {
			return fmt.Errorf("couldn't get %s: %w", f, err)
		}
		n := len(out)
		if out, err = c.pairs(out); err != nil {
			// Something unusual: parseNetStats decides, as it did
			// before this fast path.
			st, err := parseNetStats(c.buf, c.fields)
			if err != nil {
				return fmt.Errorf("couldn't parse %s: %w", f, err)
			}
			out = out[:n]
			for _, s := range st {
				out = append(out, netstatSample{c.desc(s.proto, s.field), s.value})
			}
		}
	}
	// snmp6 is missing when IPv6 is disabled; that is not an error.
	var err error
	c.buf, err = readFileInto(filepath.Join(c.procPath, "net/snmp6"), c.buf)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("couldn't get SNMP6 stats: %w", err)
	default:
		for _, s := range parseSNMP6(c.buf, c.fields) {
			out = append(out, netstatSample{c.desc(s.proto, s.field), s.value})
		}
	}
	for _, s := range out {
		c.series.send(ch, s.desc, prometheus.UntypedValue, s.v)
	}
	return nil
}

// desc returns the descriptor of a kept field. Called with mu held.
func (c *netstatCollector) desc(proto, field string) *constmetric.Desc {
	return c.descs.get("node_netstat_"+proto+"_"+field, "Statistic "+proto+field+".")
}

// pairs appends the kept fields of the "Proto: names..." / "Proto:
// values..." line pairs in c.buf to out, as parseNetStats reads them.
// Called with mu held.
func (c *netstatCollector) pairs(out []netstatSample) ([]netstatSample, error) {
	for b := c.buf; len(b) > 0; {
		var names, values []byte
		names, b = cutLine(b)
		if len(bytes.TrimSpace(names)) == 0 {
			continue
		}
		if len(b) == 0 {
			return out, errors.New("header line without values")
		}
		values, b = cutLine(b)
		proto, names, ok1 := bytes.Cut(names, []byte(": "))
		vproto, values, ok2 := bytes.Cut(values, []byte(": "))
		if !ok1 || !ok2 || !bytes.Equal(proto, vproto) {
			return out, errors.New("field count mismatch")
		}
		for {
			var name, value []byte
			name, names, ok1 = nextField(names)
			value, values, ok2 = nextField(values)
			if ok1 != ok2 {
				return out, errors.New("field count mismatch")
			}
			if !ok1 {
				break
			}
			c.key = append(append(append(c.key[:0], proto...), '_'), name...)
			d, seen := c.seen[string(c.key)]
			if !seen {
				if c.fields.keepBytes(c.key) {
					d = c.desc(string(proto), string(name))
				}
				c.seen[string(c.key)] = d
			}
			if d == nil {
				continue
			}
			v, err := strconv.ParseFloat(string(value), 64)
			if err != nil {
				return out, err
			}
			out = append(out, netstatSample{d, v})
		}
	}
	return out, nil
}

// nextField returns the first space-separated field of b and the rest.
func nextField(b []byte) (field, rest []byte, ok bool) {
	b = bytes.TrimLeft(b, " ")
	if len(b) == 0 {
		return nil, nil, false
	}
	if i := bytes.IndexByte(b, ' '); i >= 0 {
		return b[:i], b[i+1:], true
	}
	return b, nil, true
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
