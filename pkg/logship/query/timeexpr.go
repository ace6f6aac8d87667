package query

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// durationUnits are Go's units plus days and weeks, which SREs type more
// often than "48h".
var durationUnits = map[string]time.Duration{
	"ns": time.Nanosecond, "us": time.Microsecond, "µs": time.Microsecond, "ms": time.Millisecond,
	"s": time.Second, "m": time.Minute, "h": time.Hour, "d": 24 * time.Hour, "w": 7 * 24 * time.Hour,
}

var durationPartRE = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h|d|w)`)

// parseDuration accepts positive durations such as "90s", "15m", "1h30m",
// "2d" or "1w": Go's syntax plus d (24h) and w (7d).
func parseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, fmt.Errorf("empty duration")
	}
	var total float64
	for rest := s; rest != ""; {
		m := durationPartRE.FindStringSubmatch(rest)
		if m == nil {
			return 0, fmt.Errorf("%q is not a duration like 30m, 1h or 2d", s)
		}
		n, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not a duration like 30m, 1h or 2d", s)
		}
		total += n * float64(durationUnits[m[2]])
		rest = rest[len(m[0]):]
	}
	if total <= 0 {
		return 0, fmt.Errorf("duration %q must be positive", s)
	}
	if total > math.MaxInt64 {
		return 0, fmt.Errorf("duration %q is too long", s)
	}
	return time.Duration(total), nil
}

// absoluteLayouts are tried in order; layouts without a zone are UTC, which
// is what CloudWatch shows.
var absoluteLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05",
	"2006-01-02T15:04",
	"2006-01-02 15:04:05",
	"2006-01-02 15:04",
	"2006-01-02",
}

// parseTime reads a --start or --end expression relative to now:
//
//	now, now-1h, now-2d           relative to now
//	1h, -1h                       that long ago
//	2026-11-21T12:00:00Z          RFC 3339 (any offset)
//	2026-11-21T12:00[:05], 2026-11-21 12:00[:05], 2026-11-21   UTC
//	1763726400, 1763726400000     Unix seconds or milliseconds
func parseTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return time.Time{}, fmt.Errorf("empty time")
	case s == "now":
		return now, nil
	case strings.HasPrefix(s, "now-"):
		d, err := parseDuration(s[len("now-"):])
		if err != nil {
			return time.Time{}, fmt.Errorf("time %q: %w", s, err)
		}
		return now.Add(-d), nil
	case strings.HasPrefix(s, "-"):
		d, err := parseDuration(s[1:])
		if err != nil {
			return time.Time{}, fmt.Errorf("time %q: %w", s, err)
		}
		return now.Add(-d), nil
	}
	if isDigits(s) {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("time %q: %w", s, err)
		}
		// Thirteen digits and more are milliseconds (CloudWatch's own
		// unit); fewer are seconds.
		if len(s) >= 13 {
			return time.UnixMilli(n).UTC(), nil
		}
		return time.Unix(n, 0).UTC(), nil
	}
	if d, err := parseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	for _, layout := range absoluteLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time: want now, now-1h, 1h (ago), RFC 3339 (2026-11-21T12:00:00Z), 2026-11-21 12:00 (UTC) or Unix seconds", s)
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// window is the time range a query covers. end is zero for "up to now and
// onwards" (--follow, or no --end).
type window struct {
	start, end time.Time
}

// resolveWindow turns --since/--start/--end into a window.
func resolveWindow(since, start, end string, defaultSince time.Duration, follow bool, now time.Time) (window, error) {
	var w window
	if since != "" && start != "" {
		return w, fmt.Errorf("--since and --start are mutually exclusive")
	}
	if follow && end != "" {
		return w, fmt.Errorf("--end cannot be used with --follow")
	}
	switch {
	case since != "":
		d, err := parseDuration(since)
		if err != nil {
			return w, fmt.Errorf("invalid --since: %w", err)
		}
		w.start = now.Add(-d)
	case start != "":
		t, err := parseTime(start, now)
		if err != nil {
			return w, fmt.Errorf("invalid --start: %w", err)
		}
		w.start = t
	default:
		w.start = now.Add(-defaultSince)
	}
	if end != "" {
		t, err := parseTime(end, now)
		if err != nil {
			return w, fmt.Errorf("invalid --end: %w", err)
		}
		if t.Before(w.start) {
			return w, fmt.Errorf("--end %s is before the start %s", t.UTC().Format(time.RFC3339), w.start.UTC().Format(time.RFC3339))
		}
		w.end = t
	}
	return w, nil
}
