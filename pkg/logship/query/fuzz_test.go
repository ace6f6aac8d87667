package query

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
)

// FuzzParseTime: any --since/--start/--end text is an error or a time,
// never a panic.
func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"now", "now-1h", "1h30m", "-2d", "2026-11-21T12:00:00Z", "2026-11-21 12:00", "1763719200", "1.5w", "99999999999w", "now-"} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = parseTime(s, now)
		if d, err := parseDuration(s); err == nil && d <= 0 {
			t.Fatalf("parseDuration(%q) = %v, want a positive duration or an error", s, d)
		}
	})
}

// FuzzPrintEvent: whatever another writer put in the log group prints as
// one line per event in every format.
func FuzzPrintEvent(f *testing.F) {
	f.Add(`{"log":"hi\n","stream":"stdout","time":"2026-11-21T12:00:00.123456789Z","kubernetes":{"pod_name":"p","namespace_name":"n","container_name":"c","labels":{"a":"b"}}}`, "s")
	f.Add(`{"log":1,"kubernetes":[]}`, "")
	f.Add("plain text", "stream")
	f.Add(`{"time":"not a time"}`, "x")
	f.Fuzz(func(t *testing.T, msg, stream string) {
		ev := types.FilteredLogEvent{Message: aws.String(msg), LogStreamName: aws.String(stream),
			Timestamp: aws.Int64(1), IngestionTime: aws.Int64(2), EventId: aws.String("e")}
		for _, format := range []string{formatPlain, formatJSON, formatRaw} {
			var out strings.Builder
			p := newPrinter(&out, format)
			if err := p.print(decodeEvent(ev)); err != nil {
				t.Fatalf("%s: %v", format, err)
			}
			if err := p.flush(); err != nil {
				t.Fatal(err)
			}
			if format == formatJSON && strings.Count(out.String(), "\n") != 1 {
				t.Fatalf("-o json printed %q, want one line", out.String())
			}
		}
	})
}

// FuzzSelection: a selection that validates yields a pattern with no way
// out of its quoted values.
func FuzzSelection(f *testing.F) {
	f.Add("shop", "web-7f9c*", "app", "stdout", "timeout")
	f.Add("", "", "", "", `a" || $.x = "`)
	f.Fuzz(func(t *testing.T, ns, pod, container, stream, grep string) {
		s := selection{Namespace: ns, Pod: pod, Container: container, Stream: stream, Grep: grep}
		if s.validate() != nil {
			return
		}
		p := s.filterPattern()
		if want := 2 * (countNonEmpty(ns, pod, container, stream, grep)); strings.Count(p, `"`) != want {
			t.Fatalf("pattern %s has %d quotes, want %d", p, strings.Count(p, `"`), want)
		}
		_ = streamPrefix("{pod}_{namespace}_{container}-{container_id}", map[string]string{"{pod}": pod, "{namespace}": ns})
		_, _ = io.Discard.Write([]byte(p))
	})
}

func countNonEmpty(ss ...string) int {
	n := 0
	for _, s := range ss {
		if s != "" {
			n++
		}
	}
	return n
}
