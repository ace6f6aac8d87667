package record

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var meta = Kubernetes{
	PodName: "web-1", NamespaceName: "shop", PodID: "uid-1", Host: "node-a",
	ContainerName: "app", DockerID: "abc123", ContainerImage: "nginx:1", Labels: map[string]string{"app": "web", "tier": "front"},
}

type decoded struct {
	Log        string     `json:"log"`
	Stream     string     `json:"stream"`
	Time       string     `json:"time"`
	Kubernetes Kubernetes `json:"kubernetes"`
}

func encodeAll(t *testing.T, max int, msg []byte, timeRaw string) []decoded {
	t.Helper()
	e, err := New(meta, max)
	if err != nil {
		t.Fatal(err)
	}
	type span struct{ s, e int }
	var spans []span
	now := func() time.Time { return time.Date(2026, 11, 21, 10, 0, 0, 5, time.UTC) }
	buf := e.appendRecords([]byte("junk-before"), msg, "stderr", []byte(timeRaw), now, func(s, en int) { spans = append(spans, span{s, en}) })
	var recs []decoded
	for _, sp := range spans {
		rec := buf[sp.s:sp.e]
		if len(rec) > max {
			t.Fatalf("record of %d bytes over %d", len(rec), max)
		}
		if !utf8.Valid(rec) {
			t.Fatalf("record is not valid UTF-8: %q", rec)
		}
		var d decoded
		if err := json.Unmarshal(rec, &d); err != nil {
			t.Fatalf("record is not JSON: %v: %s", err, rec)
		}
		recs = append(recs, d)
	}
	return recs
}

func TestRecords(t *testing.T) {
	tests := []struct {
		name    string
		max     int
		msg     string
		timeRaw string
		want    []string
	}{
		{"plain", 4096, "hello world", "2026-11-21T10:00:00.1Z", []string{"hello world"}},
		{"escapes", 4096, "a\"b\\c\n\t\x01\u2028é", "2026-11-21T10:00:00Z", []string{"a\"b\\c\n\t\x01\u2028é"}},
		{"invalid_utf8_replaced", 4096, "ok\xff\xfe end \xe2\x82", "2026-11-21T10:00:00Z", []string{"ok\uFFFD\uFFFD end \uFFFD\uFFFD"}},
		{"empty", 4096, "", "2026-11-21T10:00:00Z", []string{""}},
		{"missing_time_uses_now", 4096, "x", "", []string{"x"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			recs := encodeAll(t, tc.max, []byte(tc.msg), tc.timeRaw)
			if len(recs) != len(tc.want) {
				t.Fatalf("got %d records, want %d", len(recs), len(tc.want))
			}
			for i, r := range recs {
				if r.Log != tc.want[i] {
					t.Errorf("log %d = %q, want %q", i, r.Log, tc.want[i])
				}
				if r.Stream != "stderr" || r.Kubernetes.PodName != "web-1" || r.Kubernetes.Labels["tier"] != "front" {
					t.Errorf("record fields wrong: %+v", r)
				}
				wantTime := tc.timeRaw
				if wantTime == "" {
					wantTime = "2026-11-21T10:00:00.000000005Z"
				}
				if r.Time != wantTime {
					t.Errorf("time = %q, want %q", r.Time, wantTime)
				}
			}
		})
	}
}

func TestSplitKeepsOrderAndLimit(t *testing.T) {
	for _, unit := range []string{"a", "é", "😀", "\x01", "\"", "\xff"} {
		t.Run(strings.ToValidUTF8(unit, "invalid"), func(t *testing.T) {
			msg := strings.Repeat(unit+"0123456789", 3000)
			recs := encodeAll(t, 1024, []byte(msg), "2026-11-21T10:00:00Z")
			var joined strings.Builder
			for _, r := range recs {
				joined.WriteString(r.Log)
			}
			if want := replaceInvalid(msg); joined.String() != want {
				t.Fatalf("parts do not join back (%d vs %d bytes)", joined.Len(), len(want))
			}
			if len(recs) < 2 {
				t.Fatalf("expected a split, got %d records", len(recs))
			}
		})
	}
}

func TestNewRejectsTinyLimit(t *testing.T) {
	if _, err := New(meta, 200); err == nil {
		t.Fatal("want error for a limit smaller than the metadata")
	}
}

func FuzzAppendEscaped(f *testing.F) {
	f.Add([]byte("a\"\\\n\xff\u2028😀"), 7)
	f.Fuzz(func(t *testing.T, src []byte, budget int) {
		if budget < 6 || budget > 1<<16 {
			return
		}
		var all []byte
		rest := src
		for len(rest) > 0 {
			out, n := AppendEscaped(nil, rest, budget)
			if len(out) > budget || n == 0 {
				t.Fatalf("budget %d: wrote %d, consumed %d", budget, len(out), n)
			}
			all = append(all, out...)
			rest = rest[n:]
		}
		var s string
		if err := json.Unmarshal(append(append([]byte{'"'}, all...), '"'), &s); err != nil {
			t.Fatalf("not a JSON string body: %v", err)
		}
		if !utf8.ValidString(s) || (utf8.Valid(src) && !bytes.Equal([]byte(s), src)) {
			t.Fatalf("round trip: %q -> %q", src, s)
		}
	})
}

// appendRecords is the plain form of AppendWire, the tests' reference: it
// appends one or more records holding msg to dst and calls emit with each
// record's bounds in dst ([start, end)); a msg too long for one record is
// split on UTF-8 boundaries into ordered records. stream is "stdout" or
// "stderr"; timeRaw is the RFC 3339 timestamp to show (formatted from now
// when empty).
func (e *Encoder) appendRecords(dst []byte, msg []byte, stream string, timeRaw []byte, now func() time.Time, emit func(start, end int)) []byte {
	var tbuf [40]byte
	if len(timeRaw) == 0 || len(timeRaw) > len(tbuf) {
		timeRaw = now().UTC().AppendFormat(tbuf[:0], time.RFC3339Nano)
	}
	budget := e.budget(len(timeRaw))
	for first := true; first || len(msg) > 0; first = false {
		start := len(dst)
		dst = append(dst, headLog...)
		var n int
		dst, n = AppendEscaped(dst, msg, budget)
		msg = msg[n:]
		dst = append(dst, headStream...)
		dst = append(dst, stream...)
		dst = append(dst, headTime...)
		dst = append(dst, timeRaw...)
		dst = append(dst, '"')
		dst = append(dst, e.suffix...)
		emit(start, len(dst))
	}
	return dst
}

// replaceInvalid replaces each invalid byte (not each run) with U+FFFD.
func replaceInvalid(s string) string {
	var b strings.Builder
	for _, r := range s {
		b.WriteRune(r)
	}
	return b.String()
}

// BenchmarkAppendEscapedRecord escapes an encoded record, as the request
// body does for every event: long plain runs between quotes.
func BenchmarkAppendEscapedRecord(b *testing.B) {
	rec := []byte(`{"log":"GET /api/v1/items/00001234 200 12ms user=alice ua=curl/8.5 ref=-","stream":"stdout","time":"2026-11-21T10:00:00.123456789Z","kubernetes":{"pod_name":"web-1","namespace_name":"shop","pod_id":"0b5e7f0e-8f0a-4f7e-9a57-2f5b2c1f8c11","host":"ip-10-0-0-1.ec2.internal","container_name":"app","docker_id":"4f5d8c3a9b2e","container_image":"registry/app:1.2.3","labels":{"app":"web","pod-template-hash":"5d8c9b7f4"}}}`)
	buf := make([]byte, 0, 4096)
	b.SetBytes(int64(len(rec)))
	for b.Loop() {
		buf, _ = AppendEscaped(buf[:0], rec, 1<<30)
	}
}
