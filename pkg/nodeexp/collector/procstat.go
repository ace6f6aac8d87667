package collector

import (
	"fmt"
	"strconv"

	"github.com/prometheus/procfs"
)

// procStat holds the lines of /proc/stat the cpu and stat collectors
// report. procfs.FS.Stat parses every line, each cpu line through
// fmt.Sscanf and every per-IRQ count of the intr line, for two collectors
// per scrape; this parser reads only what they report, with the same
// results (TestProcStatMatchesProcfs), from a buffer the caller reuses.
type procStat struct {
	cpu                                            map[int64]procfs.CPUStat
	intr, ctxt, btime, processes, running, blocked uint64
	// softirq holds the softirq line's counts per vector, in the order
	// of softirqVectors.
	softirq [10]uint64
}

// softirqVectors name the columns of /proc/stat's softirq line after its
// total.
var softirqVectors = [10]string{"hi", "timer", "net_tx", "net_rx", "block", "block_iopoll", "tasklet", "sched", "hrtimer", "rcu"}

// userHZ is the unit of /proc/stat's cpu times, as procfs assumes.
const userHZ = 100

func parseProcStat(b []byte) (procStat, error) {
	st := procStat{cpu: make(map[int64]procfs.CPUStat)}
	var fields [12][]byte
	for len(b) > 0 {
		var line []byte
		line, b = cutLine(b)
		f := fields[:0]
		for rest := line; ; {
			var field []byte
			var ok bool
			if field, rest, ok = nextField(rest); !ok {
				break
			}
			if len(f) < cap(f) {
				f = append(f, field)
			}
		}
		if len(f) < 2 {
			continue
		}
		var dst *uint64
		switch key := string(f[0]); key {
		case "btime":
			dst = &st.btime
		case "intr":
			dst = &st.intr
		case "ctxt":
			dst = &st.ctxt
		case "processes":
			dst = &st.processes
		case "procs_running":
			dst = &st.running
		case "procs_blocked":
			dst = &st.blocked
		case "softirq":
			for i := range min(len(f)-2, len(st.softirq)) {
				n, err := strconv.ParseUint(string(f[i+2]), 10, 64)
				if err != nil {
					return procStat{}, fmt.Errorf("couldn't parse %q (softirq): %w", line, err)
				}
				st.softirq[i] = n
			}
			continue
		default:
			if len(key) < 3 || key[:3] != "cpu" {
				continue
			}
			var v [10]float64
			for i := range min(len(f)-1, len(v)) {
				x, err := strconv.ParseFloat(string(f[i+1]), 64)
				if err != nil {
					return procStat{}, fmt.Errorf("couldn't parse %q (cpu): %w", line, err)
				}
				v[i] = x / userHZ
			}
			if key == "cpu" {
				continue // the total; not reported
			}
			id, err := strconv.ParseInt(key[3:], 10, 64)
			if err != nil {
				return procStat{}, fmt.Errorf("couldn't parse %q (cpu/cpuid): %w", line, err)
			}
			st.cpu[id] = procfs.CPUStat{User: v[0], Nice: v[1], System: v[2], Idle: v[3], Iowait: v[4],
				IRQ: v[5], SoftIRQ: v[6], Steal: v[7], Guest: v[8], GuestNice: v[9]}
			continue
		}
		n, err := strconv.ParseUint(string(f[1]), 10, 64)
		if err != nil {
			return procStat{}, fmt.Errorf("couldn't parse %q (%s): %w", f[1], f[0], err)
		}
		*dst = n
	}
	return st, nil
}
