package record

import (
	"encoding/binary"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// checkWire encodes msg with appendRecords and AppendWire and checks that the wire
// form, unescaped, is the very same records, with the sizes CloudWatch
// counts.
func checkWire(t *testing.T, max int, msg []byte, stream, timeRaw string) int {
	t.Helper()
	e, err := New(meta, max)
	if err != nil {
		t.Fatal(err)
	}
	now := func() time.Time { return time.Date(2026, 11, 21, 10, 0, 0, 5, time.UTC) }
	var recs [][]byte
	var spans [][2]int
	buf := e.appendRecords([]byte("x"), msg, stream, []byte(timeRaw), now, func(s, en int) { spans = append(spans, [2]int{s, en}) })
	for _, sp := range spans {
		recs = append(recs, buf[sp[0]:sp[1]])
	}
	type wspan struct{ s, e, size int }
	var wspans []wspan
	wbuf := e.AppendWire([]byte("junk"), msg, stream, []byte(timeRaw), now, func(s, en, size int) { wspans = append(wspans, wspan{s, en, size}) })
	if len(wspans) != len(recs) {
		t.Fatalf("AppendWire wrote %d records, Append %d", len(wspans), len(recs))
	}
	for i, sp := range wspans {
		var got string
		whole := append(append([]byte{'"'}, wbuf[sp.s:sp.e]...), e.WireTail()...)
		if err := json.Unmarshal(append(whole, '"'), &got); err != nil {
			t.Fatalf("record %d: wire form is not a JSON string body: %v: %s", i, err, wbuf[sp.s:sp.e])
		}
		if got != string(recs[i]) {
			t.Fatalf("record %d differs:\nwire:   %s\nappend: %s", i, got, recs[i])
		}
		if sp.size != len(recs[i]) {
			t.Fatalf("record %d: size %d, want %d", i, sp.size, len(recs[i]))
		}
	}
	return len(recs)
}

func TestAppendWireIsAppendEscaped(t *testing.T) {
	tests := []struct {
		name, msg, stream, time string
		max                     int
	}{
		{"plain", "hello world", "stdout", "2026-11-21T10:00:00.1Z", 4096},
		{"escapes", "a\"b\\c\n\r\t\x01\x1f\u2028\u2029é😀", "stderr", "2026-11-21T10:00:00Z", 4096},
		{"invalid_utf8", "ok\xff\xfe end \xe2\x82", "stdout", "2026-11-21T10:00:00Z", 4096},
		{"empty", "", "stdout", "2026-11-21T10:00:00Z", 4096},
		{"missing_time", "x", "stdout", "", 4096},
		{"odd_stream", "x", "std\"out", "2026-11-21T10:00:00Z", 4096},
		{"split_quotes", strings.Repeat("\"0123456789", 500), "stdout", "2026-11-21T10:00:00Z", 1024},
		{"split_controls", strings.Repeat("\x01é😀\xff\u2028", 500), "stdout", "2026-11-21T10:00:00Z", 1024},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := checkWire(t, tc.max, []byte(tc.msg), tc.stream, tc.time)
			if strings.HasPrefix(tc.name, "split") && n < 2 {
				t.Fatalf("expected a split, got %d records", n)
			}
		})
	}
}

func FuzzAppendWire(f *testing.F) {
	f.Add([]byte("a\"\\\n\xff\u2028😀"), 1024)
	f.Fuzz(func(t *testing.T, msg []byte, max int) {
		if max < 1024 || max > 1<<16 || len(msg) > 1<<15 {
			return
		}
		checkWire(t, max, msg, "stdout", "2026-11-21T10:00:00.123456789Z")
	})
}

func BenchmarkAppendWire(b *testing.B) {
	e, err := New(meta, 1<<20)
	if err != nil {
		b.Fatal(err)
	}
	msg := []byte(strings.Repeat("x", 70))
	ts := []byte("2026-11-21T10:00:00.123456789Z")
	buf := make([]byte, 0, 1<<20)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		buf = e.AppendWire(buf[:0], msg, "stdout", ts, time.Now, func(int, int, int) {})
	}
}

// TestPlainWord checks the word-at-a-time scan against the byte table: a
// word it passes must hold only bytes that need no escaping, and a word of
// plain bytes with one byte of each value must be judged by that byte.
func TestPlainWord(t *testing.T) {
	word := func(b [8]byte) uint64 { return binary.LittleEndian.Uint64(b[:]) }
	for c := range 256 {
		for pos := range 8 {
			b := [8]byte{'a', 'Z', '0', ' ', '~', '{', ':', '/'}
			b[pos] = byte(c)
			if got := plainWord(word(b)); got != safe[c] {
				t.Fatalf("byte %#x at %d: plainWord %v, want %v", c, pos, got, safe[c])
			}
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 1 << 20 {
		w := rng.Uint64()
		if rng.IntN(2) == 0 {
			w &= 0x7f7f7f7f7f7f7f7f // ASCII, where the borrows matter
		}
		if !plainWord(w) {
			continue
		}
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], w)
		for _, c := range b {
			if !safe[c] {
				t.Fatalf("plainWord passed %q, which holds %#x", b, c)
			}
		}
	}
}
