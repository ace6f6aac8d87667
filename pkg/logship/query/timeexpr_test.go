package query

import (
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{"90s", 90 * time.Second, ""},
		{"15m", 15 * time.Minute, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"2d", 48 * time.Hour, ""},
		{"1w2d", 9 * 24 * time.Hour, ""},
		{"1.5h", 90 * time.Minute, ""},
		{"", 0, "empty duration"},
		{"5x", 0, "not a duration"},
		{"h", 0, "not a duration"},
		{"10", 0, "not a duration"},
		{"0s", 0, "must be positive"},
		{"-1h", 0, "not a duration"},
		{"99999999999w", 0, "too long"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseDuration(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseDuration(%q) = %v, %v; want error %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseTime(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in      string
		want    time.Time
		wantErr bool
	}{
		{"now", now, false},
		{"now-1h", now.Add(-time.Hour), false},
		{"now-2d", now.Add(-48 * time.Hour), false},
		{"-30m", now.Add(-30 * time.Minute), false},
		{"30m", now.Add(-30 * time.Minute), false},
		{"2026-11-21T10:00:00Z", time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC), false},
		{"2026-11-21T10:00:00.5+02:00", time.Date(2026, 11, 21, 8, 0, 0, 5e8, time.UTC), false},
		{"2026-11-21T10:00:05", time.Date(2026, 11, 21, 10, 0, 5, 0, time.UTC), false},
		{"2026-11-21T10:00", time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC), false},
		{"2026-11-21 10:00:05", time.Date(2026, 11, 21, 10, 0, 5, 0, time.UTC), false},
		{"2026-11-21", time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC), false},
		{"1763719200", time.Unix(1763719200, 0).UTC(), false},
		{"1763719200123", time.UnixMilli(1763719200123).UTC(), false},
		{"", time.Time{}, true},
		{"yesterday", time.Time{}, true},
		{"now-", time.Time{}, true},
		{"now-5x", time.Time{}, true},
		{"2026-13-01", time.Time{}, true},
		{"99999999999999999999", time.Time{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseTime(tt.in, now)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("parseTime(%q) = %v, want an error", tt.in, got)
				}
				return
			}
			if err != nil || !got.Equal(tt.want) {
				t.Fatalf("parseTime(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestResolveWindow(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name               string
		since, start, end  string
		follow             bool
		wantStart, wantEnd time.Time
		wantErr            string
	}{
		{name: "default", wantStart: now.Add(-time.Hour)},
		{name: "since", since: "2d", wantStart: now.Add(-48 * time.Hour)},
		{name: "start_end", start: "now-3h", end: "now-1h", wantStart: now.Add(-3 * time.Hour), wantEnd: now.Add(-time.Hour)},
		{name: "follow", since: "5m", follow: true, wantStart: now.Add(-5 * time.Minute)},
		{name: "since_and_start", since: "1h", start: "now", wantErr: "mutually exclusive"},
		{name: "end_with_follow", end: "now", follow: true, wantErr: "--end cannot be used with --follow"},
		{name: "end_before_start", start: "now-1h", end: "now-2h", wantErr: "before the start"},
		{name: "bad_since", since: "soon", wantErr: "invalid --since"},
		{name: "bad_end", end: "later", wantErr: "invalid --end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := resolveWindow(tt.since, tt.start, tt.end, time.Hour, tt.follow, now)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("resolveWindow = %+v, %v; want error %q", w, err, tt.wantErr)
				}
				return
			}
			if err != nil || !w.start.Equal(tt.wantStart) || !w.end.Equal(tt.wantEnd) {
				t.Fatalf("resolveWindow = %+v, %v; want start %v end %v", w, err, tt.wantStart, tt.wantEnd)
			}
		})
	}
}
