package parse

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

type got struct {
	Time   int64
	Stream Stream
	Log    string
	Pos    int64
	Part   bool
}

// feed runs lines through a parser, computing file offsets as a reader would.
func feed(t testing.TB, format Format, max int, lines ...string) ([]got, *Parser) {
	t.Helper()
	var out []got
	p := New(format, max, func(e Entry) {
		out = append(out, got{e.Time, e.Stream, string(e.Log), e.Pos, e.Part})
	})
	var off int64
	for _, l := range lines {
		end := off + int64(len(l)) + 1
		p.Line([]byte(l), off, end)
		off = end
	}
	return out, p
}

func ts(s string) int64 {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UnixNano()
}

func TestParse(t *testing.T) {
	const t1 = "2026-11-21T10:00:00.123456789Z"
	const t2 = "2026-11-21T10:00:01Z"
	frag := strings.Repeat("a", 16384)
	tests := []struct {
		name   string
		format Format
		max    int
		lines  []string
		want   []got
	}{
		{
			name:  "cri_full_lines",
			lines: []string{t1 + " stdout F hello world", t2 + " stderr F oops"},
			want: []got{
				{ts(t1), Stdout, "hello world", 1, false},
				{ts(t2), Stderr, "oops", 2, false},
			},
		},
		{
			name:  "cri_empty_message",
			lines: []string{t1 + " stdout F ", t1 + " stdout F"},
			want:  []got{{ts(t1), Stdout, "", 1, false}, {ts(t1), Stdout, "", 2, false}},
		},
		{
			name:  "cri_16k_fragments_join_to_40k",
			lines: []string{t1 + " stdout P " + frag, t2 + " stdout P " + frag, t2 + " stdout F " + frag[:8192]},
			want:  []got{{ts(t1), Stdout, frag + frag + frag[:8192], 3, false}},
		},
		{
			name: "cri_interleaved_streams_keep_restart_before_open_fragment",
			lines: []string{
				t1 + " stdout P first-", // 0..48
				t1 + " stderr F err",    // 48..92
				t1 + " stdout F second", // 92..138
			},
			want: []got{
				{ts(t1), Stderr, "err", 0, false},
				{ts(t1), Stdout, "first-second", 3, false},
			},
		},
		{
			name:  "cri_tag_extensions",
			lines: []string{t1 + " stdout F:x msg"},
			want:  []got{{ts(t1), Stdout, "msg", 1, false}},
		},
		{
			name:  "cri_numeric_zone",
			lines: []string{"2026-11-21T12:00:00.5+02:00 stdout F z"},
			want:  []got{{ts("2026-11-21T10:00:00.5Z"), Stdout, "z", 1, false}},
		},
		{
			name:   "cri_garbage_line_is_raw",
			format: CRI,
			lines:  []string{"not a cri line", t1 + " stdbad F x"},
			want:   []got{{0, Stdout, "not a cri line", 1, false}, {0, Stdout, t1 + " stdbad F x", 2, false}},
		},
		{
			name:  "cri_over_limit_split_in_order",
			max:   10,
			lines: []string{t1 + " stdout P 0123456", t1 + " stdout F 789abcdefghijklmnopq"},
			want: []got{
				{ts(t1), Stdout, "0123456789", 0, true},
				{ts(t1), Stdout, "abcdefghij", 0, true},
				{ts(t1), Stdout, "klmnopq", 2, false},
			},
		},
		{
			name:  "docker_lines",
			lines: []string{`{"log":"hello\n","stream":"stdout","time":"` + t1 + `"}`, `{"log":"e \"q\" \u00e9\t\n","stream":"stderr","time":"` + t2 + `"}`},
			want:  []got{{ts(t1), Stdout, "hello", 1, false}, {ts(t2), Stderr, "e \"q\" é\t", 2, false}},
		},
		{
			name: "docker_no_newline_joined",
			lines: []string{
				`{"log":"part1 ","stream":"stdout","time":"` + t1 + `"}`,
				`{"log":"part2\n","stream":"stdout","time":"` + t2 + `"}`,
			},
			want: []got{{ts(t1), Stdout, "part1 part2", 2, false}},
		},
		{
			name:  "docker_field_order_and_extra_fields",
			lines: []string{`{"time":"` + t1 + `","attrs":{"a":[1,{"b":"}"}]},"stream":"stderr","log":"x\n"}`},
			want:  []got{{ts(t1), Stderr, "x", 1, false}},
		},
		{
			name:  "docker_surrogate_pairs",
			lines: []string{`{"log":"\ud83d\ude00 \ud800\n","stream":"stdout","time":"` + t1 + `"}`},
			want:  []got{{ts(t1), Stdout, "😀 \uFFFD", 1, false}},
		},
		{
			name:   "docker_broken_json_is_raw",
			format: Docker,
			lines:  []string{`{"log":"unterminated`},
			want:   []got{{0, Stdout, `{"log":"unterminated`, 1, false}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, _ := feed(t, tc.format, tc.max, tc.lines...)
			// want[i].Pos counts lines: the end of line N (0 is the file start).
			ends := []int64{0}
			for _, l := range tc.lines {
				ends = append(ends, ends[len(ends)-1]+int64(len(l))+1)
			}
			for i := range tc.want {
				tc.want[i].Pos = ends[tc.want[i].Pos]
			}
			if len(out) != len(tc.want) {
				t.Fatalf("got %d entries, want %d: %+v", len(out), len(tc.want), trim(out))
			}
			for i := range out {
				if out[i] != tc.want[i] {
					t.Errorf("entry %d:\n got %+v\nwant %+v", i, trim(out[i:i+1]), trim(tc.want[i:i+1]))
				}
			}
		})
	}
}

func trim(gs []got) []got {
	out := append([]got(nil), gs...)
	for i := range out {
		if len(out[i].Log) > 80 {
			out[i].Log = fmt.Sprintf("%s...(%d bytes)", out[i].Log[:40], len(out[i].Log))
		}
	}
	return out
}

func TestTwoMegabyteLineSplitsIntoOrderedParts(t *testing.T) {
	const t1 = "2026-11-21T10:00:00Z"
	var want bytes.Buffer
	var lines []string
	for i := 0; want.Len() < 2<<20; i++ {
		frag := strings.Repeat(string(rune('a'+i%26)), 16384)
		want.WriteString(frag)
		lines = append(lines, t1+" stdout P "+frag)
	}
	lines = append(lines, t1+" stdout F end")
	want.WriteString("end")
	out, _ := feed(t, Unknown, 1<<20, lines...)
	var joined bytes.Buffer
	for i, g := range out {
		if len(g.Log) > 1<<20 {
			t.Fatalf("part %d is %d bytes, over the limit", i, len(g.Log))
		}
		if g.Part != (i < len(out)-1) {
			t.Fatalf("part %d: Part=%v", i, g.Part)
		}
		joined.WriteString(g.Log)
	}
	if len(out) != 3 {
		t.Errorf("got %d parts, want 3", len(out))
	}
	if !bytes.Equal(joined.Bytes(), want.Bytes()) {
		t.Fatalf("parts do not join back to the line (%d vs %d bytes)", joined.Len(), want.Len())
	}
}

func TestFlushEmitsOpenFragments(t *testing.T) {
	out, p := feed(t, Unknown, 0, "2026-11-21T10:00:00Z stdout P tail-without-end")
	if len(out) != 0 || !p.Pending() {
		t.Fatalf("fragment emitted early: %+v", out)
	}
	var flushed []string
	p.emit = func(e Entry) { flushed = append(flushed, string(e.Log)) }
	p.Flush(100)
	if len(flushed) != 1 || flushed[0] != "tail-without-end" {
		t.Fatalf("flush gave %q", flushed)
	}
}

func TestParseTime(t *testing.T) {
	for _, s := range []string{
		"2026-11-21T10:00:00Z", "2026-11-21T10:00:00.1Z", "2024-02-29T23:59:59.999999999Z",
		"1969-12-31T23:59:59.5Z", "2026-11-21T10:00:00.123-07:30", "0001-01-01T00:00:00Z",
	} {
		want, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := ParseTime([]byte(s))
		if !ok || got != want.UnixNano() {
			t.Errorf("ParseTime(%q) = %d, %v; want %d", s, got, ok, want.UnixNano())
		}
	}
	for _, s := range []string{"", "2026-13-01T00:00:00Z", "2023-02-29T00:00:00Z", "2026-11-21 10:00:00Z", "2026-11-21T10:00:00.Z", "2026-11-21T10:00:00+0200"} {
		if _, ok := ParseTime([]byte(s)); ok {
			t.Errorf("ParseTime(%q) accepted", s)
		}
	}
}

func TestMultiline(t *testing.T) {
	var out []got
	m := NewMultiline(regexp.MustCompile(`^\d{4}-`), 0, func(e Entry) {
		out = append(out, got{e.Time, e.Stream, string(e.Log), e.Pos, e.Part})
	})
	p := New(CRI, 0, m.Add)
	lines := []string{
		"2026-11-21T10:00:00Z stdout F 2026-11-21 ERROR boom",
		"2026-11-21T10:00:00Z stdout F \tat com.x.Y(Y.java:1)",
		"2026-11-21T10:00:00Z stdout F \tat com.x.Z(Z.java:2)",
		"2026-11-21T10:00:01Z stdout F 2026-11-21 INFO next",
	}
	var off int64
	for _, l := range lines {
		p.Line([]byte(l), off, off+int64(len(l))+1)
		off += int64(len(l)) + 1
	}
	if len(out) != 1 || out[0].Log != "2026-11-21 ERROR boom\n\tat com.x.Y(Y.java:1)\n\tat com.x.Z(Z.java:2)" {
		t.Fatalf("joined: %+v", out)
	}
	if !m.Pending() {
		t.Fatal("last message should still be open")
	}
	m.Flush()
	if len(out) != 2 || out[1].Log != "2026-11-21 INFO next" || out[1].Pos != off {
		t.Fatalf("after flush: %+v", out)
	}
}

// checkEntries is the fuzz oracle: bounded sizes and restart offsets that
// never move backwards nor beyond the input.
func checkEntries(t *testing.T, format Format, data []byte) {
	const max = 64
	var last int64
	var total int64
	p := New(format, max, func(e Entry) {
		if len(e.Log) > max {
			t.Fatalf("entry of %d bytes over limit %d", len(e.Log), max)
		}
		if e.Pos < last || e.Pos > total {
			t.Fatalf("pos %d after %d (input %d)", e.Pos, last, total)
		}
		last = e.Pos
	})
	var off int64
	for _, l := range bytes.Split(data, []byte("\n")) {
		total = off + int64(len(l)) + 1
		p.Line(l, off, total)
		off = total
	}
	p.Flush(total)
}

func FuzzCRI(f *testing.F) {
	f.Add([]byte("2026-11-21T10:00:00Z stdout P abc\n2026-11-21T10:00:00Z stderr F x\n2026-11-21T10:00:00Z stdout F def"))
	f.Add([]byte("2026-11-21T10:00:00.999+01:00 stdout F:y " + strings.Repeat("z", 200)))
	f.Fuzz(func(t *testing.T, data []byte) { checkEntries(t, CRI, data) })
}

func FuzzDocker(f *testing.F) {
	f.Add([]byte(`{"log":"a\u00e9\ud83d\ude00","stream":"stderr","time":"2026-11-21T10:00:00Z"}` + "\n" + `{"log":"b\n","stream":"stderr","time":"2026-11-21T10:00:00Z"}`))
	f.Add([]byte(`{"x":{"y":[1,2,{"z":"}"}]},"log":"\\\"\n"}`))
	f.Fuzz(func(t *testing.T, data []byte) { checkEntries(t, Docker, data) })
}

func BenchmarkParseCRI(b *testing.B) {
	line := []byte("2026-11-21T10:00:00.123456789Z stdout F " + strings.Repeat("x", 70))
	p := New(CRI, 0, func(Entry) {})
	b.SetBytes(int64(len(line) + 1))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		p.Line(line, int64(i), int64(i+1))
	}
}

func BenchmarkParseDocker(b *testing.B) {
	line := []byte(`{"log":"` + strings.Repeat("x", 70) + `\n","stream":"stdout","time":"2026-11-21T10:00:00.123456789Z"}`)
	p := New(Docker, 0, func(Entry) {})
	b.SetBytes(int64(len(line) + 1))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		p.Line(line, int64(i), int64(i+1))
	}
}

func TestEightDigits(t *testing.T) {
	tests := []struct {
		in   string
		ok   bool
		want uint32
	}{
		{"00000000", true, 0},
		{"12345678", true, 12345678},
		{"99999999", true, 99999999},
		{"09080706", true, 9080706},
		{"1234567/", false, 0},
		{"1234567:", false, 0},
		{"a2345678", false, 0},
		{"\xf9\xff\xff\xff\xff\xff\xff\xff", false, 0},
		{"123 5678", false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			x := binary.LittleEndian.Uint64([]byte(tt.in))
			if got := eightDigits(x); got != tt.ok {
				t.Fatalf("eightDigits(%q) = %v", tt.in, got)
			}
			if tt.ok {
				if got := eightDigitsValue(x); got != tt.want {
					t.Fatalf("eightDigitsValue(%q) = %d, want %d", tt.in, got, tt.want)
				}
			}
		})
	}
}

// TestCRIFastPathTaken checks the fast path answers for the line shapes
// runtimes write once the cache holds their second (else the benchmark
// figure would measure the general path) and leaves other shapes alone.
func TestCRIFastPathTaken(t *testing.T) {
	const t1 = "2026-11-21T10:00:00.123456789Z"
	tests := []struct {
		line string
		fast bool
	}{
		{t1 + " stdout F hello", true},
		{t1 + " stderr P hello", true},
		{t1 + " stdout F", true},
		{t1 + " stdout F ", true},
		{"2026-11-21T10:00:00.12345678Z stdout F hello", true}, // containerd drops trailing zeros
		{"2026-11-21T10:00:00.1Z stdout F hello", true},
		{"2026-11-21T10:00:00.123456789+01:00 stdout F hello", true}, // CRI-O
		{"2026-11-21T10:00:00.123456789-00:30 stderr F", true},
		{t1 + " stdout F:x hello", false},
		{t1 + " stdout X hello", false},
		{t1 + " stdin  F hello", false},
		{"2026-11-21T10:00:01.123456789Z stdout F hello", false}, // another second
		{"2026-11-21T10:00:00Z stdout F hello", false},
		{"2026-11-21T10:00:00.Z stdout F hello", false},
		{"2026-11-21T10:00:00.123456789z stdout F hello", false},
		{"2026-11-21T10:00:00.12345678xZ stdout F hello", false},
		{"2026-11-21T10:00:00.123456789+24:00 stdout F hello", false},
		{"2026-11-21T10:00:00.123456789+0100 stdout F hello", false},
		{"2026-11-21T10:00:00.1234567+01:00 stdout F hello", false},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			var c timeCache
			if _, ok := c.parse([]byte(t1)); !ok {
				t.Fatal("priming the cache failed")
			}
			_, _, _, _, ok := c.criFast([]byte(tt.line))
			if ok != tt.fast {
				t.Fatalf("criFast took %v, want %v", ok, tt.fast)
			}
		})
	}
}

// parseAll runs data's lines through a parser and records every entry.
func parseAll(format Format, slow bool, data []byte) []Entry {
	var out []Entry
	p := New(format, 64, func(e Entry) {
		e.TimeRaw = bytes.Clone(e.TimeRaw)
		e.Log = bytes.Clone(e.Log)
		out = append(out, e)
	})
	p.slowOnly = slow
	var off int64
	for _, l := range bytes.Split(data, []byte("\n")) {
		end := off + int64(len(l)) + 1
		p.Line(l, off, end)
		off = end
	}
	p.Flush(off)
	return out
}

// FuzzCRIFastPath is the differential test of criFast: every entry the
// parser emits must be the same with the fast path on and off.
func FuzzCRIFastPath(f *testing.F) {
	const t1 = "2026-11-21T10:00:00.123456789Z"
	f.Add([]byte(t1 + " stdout F hello\n" + t1 + " stderr P a\n" + t1 + " stderr F b\n2026-11-21T10:00:00.023456789Z stdout F x"))
	f.Add([]byte(t1 + " stdout F\n" + t1 + " stdout F \n" + t1 + " stdout F:x y\n2026-11-21T10:00:01.000000000Z stdout P z"))
	f.Add([]byte(t1 + " stdout F " + strings.Repeat("x", 100) + "\n" + t1 + " stdout P " + strings.Repeat("y", 70)))
	f.Add([]byte("2026-11-21T10:00:00Z stdout F a\n2026-11-21T10:00:00.999999999Z stdout F b\n2026-11-21T10:00:00.99999999:Z stdout F c"))
	f.Add([]byte(t1 + " stdout F a\n2026-11-21T10:00:00.1234567Z stdout F b\n2026-11-21T10:00:00.1Z stderr P c\n2026-11-21T10:00:00.12Z stderr F"))
	f.Add([]byte(t1 + " stdout F a\n2026-11-21T10:00:00.123456789+01:30 stdout F b\n2026-11-21T10:00:00.000000001-23:59 stderr F c\n2026-11-21T10:00:00.123456789+23:60 stdout F d"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, slow := parseAll(CRI, false, data), parseAll(CRI, true, data)
		if len(fast) != len(slow) {
			t.Fatalf("fast path emitted %d entries, general path %d", len(fast), len(slow))
		}
		for i := range fast {
			a, b := fast[i], slow[i]
			if a.Time != b.Time || !bytes.Equal(a.TimeRaw, b.TimeRaw) || a.Stream != b.Stream || !bytes.Equal(a.Log, b.Log) || a.Pos != b.Pos || a.Part != b.Part {
				t.Fatalf("entry %d: fast path %+v, general path %+v", i, a, b)
			}
		}
	})
}

// TestJoinedMessageLeavesNoBuffer: once a joined message is emitted the
// parser holds no join buffer (an idle file must not keep one), and two
// parsers sharing the pool keep their messages apart.
func TestJoinedMessageLeavesNoBuffer(t *testing.T) {
	const t1 = "2026-11-21T10:00:00.123456789Z"
	var logs []string
	emit := func(e Entry) { logs = append(logs, string(e.Log)) }
	a, b := New(CRI, 0, emit), New(CRI, 0, emit)
	fa, fb := strings.Repeat("a", 16384), strings.Repeat("b", 16384)
	steps := []struct {
		p    *Parser
		line string
	}{
		{a, t1 + " stdout P " + fa},
		{b, t1 + " stdout P " + fb},
		{a, t1 + " stdout F " + fa},
		{b, t1 + " stdout F " + fb},
		{a, t1 + " stderr P x"},
	}
	for i, st := range steps {
		st.p.Line([]byte(st.line), int64(i), int64(i+1))
	}
	a.Flush(int64(len(steps)))
	if want := []string{fa + fa, fb + fb, "x"}; fmt.Sprint(logs) != fmt.Sprint(want) {
		t.Fatalf("got %d messages (the first starting %.20q), want 32 KiB of a, 32 KiB of b, then x", len(logs), logs)
	}
	for _, p := range []*Parser{a, b} {
		for s := range p.partial {
			if p.partial[s].buf != nil || p.partial[s].bufp != nil {
				t.Fatalf("stream %d kept a %d-byte join buffer", s, cap(p.partial[s].buf))
			}
		}
	}
	m := NewMultiline(regexp.MustCompile(`^\S`), 0, emit)
	m.Add(Entry{Stream: Stdout, Log: []byte("start")})
	m.Add(Entry{Stream: Stdout, Log: []byte(" more")})
	m.Flush()
	if m.bufs[0].buf != nil || m.bufs[1].buf != nil {
		t.Fatal("an idle multiline joiner kept its buffer after Flush")
	}
}

// BenchmarkParseCRIJoin is the long-line path: a 40 KB line the runtime
// split into 16 KiB fragments, joined back.
func BenchmarkParseCRIJoin(b *testing.B) {
	const t1 = "2026-11-21T10:00:00.123456789Z"
	frag := strings.Repeat("x", 16384)
	lines := [][]byte{[]byte(t1 + " stdout P " + frag), []byte(t1 + " stdout P " + frag), []byte(t1 + " stdout F " + frag[:8192])}
	p := New(CRI, 0, func(Entry) {})
	b.SetBytes(int64(len(lines[0]) + len(lines[1]) + len(lines[2]) + 3))
	b.ReportAllocs()
	var off int64
	for b.Loop() {
		for _, l := range lines {
			p.Line(l, off, off+int64(len(l))+1)
			off += int64(len(l)) + 1
		}
	}
}

// BenchmarkParseCRIRuntimes is the header shapes runtimes write besides
// BenchmarkParseCRI's: containerd's trimmed fraction, CRI-O's zone.
func BenchmarkParseCRIRuntimes(b *testing.B) {
	for _, bm := range []struct{ name, time string }{
		{"containerd_trimmed", "2026-11-21T10:00:00.1234567Z"},
		{"crio", "2026-11-21T10:00:00.123456789+00:00"},
	} {
		b.Run(bm.name, func(b *testing.B) {
			line := []byte(bm.time + " stdout F " + strings.Repeat("x", 70))
			p := New(CRI, 0, func(Entry) {})
			b.SetBytes(int64(len(line) + 1))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				p.Line(line, int64(i), int64(i+1))
			}
		})
	}
}

// FuzzParseTime holds the hand-written timestamp parsers to time.Parse:
// whatever fastTime accepts, time.Parse accepts with the same instant, and
// the cached parse (primed with another timestamp of the same second or
// not) agrees with ParseTime.
func FuzzParseTime(f *testing.F) {
	for _, s := range []string{
		"2026-11-21T10:00:00.123456789Z", "2026-11-21T10:00:00Z", "2024-02-29T23:59:59.5+01:00",
		"1969-12-31T23:59:59.999999999-23:59", "0001-01-01T00:00:00z", "2026-11-21t10:00:00.1Z",
		"2026-11-21T10:00:00.1234567890Z", "2026-11-21T24:00:00Z", "2026-11-21T10:00:00+24:00",
	} {
		f.Add([]byte(s), []byte("2026-11-21T10:00:00.5Z"))
	}
	f.Fuzz(func(t *testing.T, b, prime []byte) {
		if got, ok := fastTime(b); ok {
			// RFC 3339 allows a lower-case t and z; time.Parse does not,
			// and fastTime does on purpose.
			std := bytes.Clone(b)
			if std[10] == 't' {
				std[10] = 'T'
			}
			if std[len(std)-1] == 'z' {
				std[len(std)-1] = 'Z'
			}
			want, err := time.Parse(time.RFC3339Nano, string(std))
			if err != nil {
				t.Fatalf("fastTime accepted %q (%d), time.Parse did not: %v", b, got, err)
			}
			// Unix nanoseconds only hold the years 1678-2262.
			if y := want.Year(); y > 1678 && y < 2262 && got != want.UnixNano() {
				t.Fatalf("fastTime(%q) = %d, time.Parse says %d", b, got, want.UnixNano())
			}
		}
		if y, ok := digits(b, 4); !ok || y <= 1678 || y >= 2262 {
			return // beyond Unix nanoseconds: any int64 is as wrong as another
		}
		want, wantOK := ParseTime(b)
		for _, p := range [][]byte{prime, b} {
			var c timeCache
			c.parse(p)
			if got, ok := c.parse(b); ok && (!wantOK || got != want) {
				t.Fatalf("cached parse of %q (primed with %q) = %d, ParseTime = %d, %v", b, p, got, want, wantOK)
			}
		}
	})
}

// rawStringRef and unescapeRef are the byte-at-a-time scanners rawString
// and unescape replaced, kept as the oracle of FuzzDockerStrings.
func rawStringRef(b []byte, i int) ([]byte, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, i, false
	}
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return b[i+1 : j], j + 1, true
		}
	}
	return nil, i, false
}

func unescapeRef(dst, b []byte, i int) ([]byte, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return dst, i, false
	}
	i++
	for i < len(b) {
		// Copy the run of plain bytes in one append.
		j := i
		for j < len(b) && b[j] != '"' && b[j] != '\\' {
			j++
		}
		dst = append(dst, b[i:j]...)
		i = j
		if i >= len(b) {
			break
		}
		if b[i] == '"' {
			return dst, i + 1, true
		}
		// Backslash escape.
		if i+1 >= len(b) {
			return dst, i, false
		}
		c := b[i+1]
		i += 2
		switch c {
		case '"', '\\', '/':
			dst = append(dst, c)
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, ok := hex4(b[i:])
			if !ok {
				return dst, i, false
			}
			i += 4
			if r >= 0xD800 && r < 0xDC00 {
				// High surrogate: combine with a following low one.
				if i+6 <= len(b) && b[i] == '\\' && b[i+1] == 'u' {
					if lo, ok := hex4(b[i+2:]); ok && lo >= 0xDC00 && lo < 0xE000 {
						r = (r-0xD800)<<10 + (lo - 0xDC00) + 0x10000
						i += 6
					} else {
						r = utf8.RuneError
					}
				} else {
					r = utf8.RuneError
				}
			} else if r >= 0xDC00 && r < 0xE000 {
				r = utf8.RuneError
			}
			dst = utf8.AppendRune(dst, r)
		default:
			return dst, i, false
		}
	}
	return dst, i, false
}

// FuzzDockerStrings is the differential test of the IndexByte scans in
// rawString and unescape: same bytes, same end, same verdict as the byte
// loops, from every start offset.
func FuzzDockerStrings(f *testing.F) {
	f.Add([]byte(`"log"`))
	f.Add([]byte(`"a\\"b\"" "x\n\u00e9\ud83d\ude00\ud800z" "2026-11-21T10:00:00.123456789Z"`))
	f.Add([]byte(`"` + strings.Repeat("x", 40) + `\"` + strings.Repeat("y", 20) + `"`))
	f.Add([]byte(`"unterminated \`))
	f.Fuzz(func(t *testing.T, b []byte) {
		for i := range b {
			got, gotNext, gotOK := rawString(b, i)
			want, wantNext, wantOK := rawStringRef(b, i)
			if !bytes.Equal(got, want) || gotNext != wantNext || gotOK != wantOK {
				t.Fatalf("rawString(%q, %d) = %q, %d, %v; byte loop: %q, %d, %v", b, i, got, gotNext, gotOK, want, wantNext, wantOK)
			}
			gotU, gotNext, gotOK := unescape(nil, b, i)
			wantU, wantNext, wantOK := unescapeRef(nil, b, i)
			if !bytes.Equal(gotU, wantU) || gotNext != wantNext || gotOK != wantOK {
				t.Fatalf("unescape(%q, %d) = %q, %d, %v; byte loop: %q, %d, %v", b, i, gotU, gotNext, gotOK, wantU, wantNext, wantOK)
			}
		}
	})
}

// TestCountLines: lost lines are counted as the parser would have emitted
// them: one per message, at its end.
func TestCountLines(t *testing.T) {
	const ts = "2026-11-21T10:00:00.123456789Z"
	long := strings.Repeat("x", 3000)
	tests := []struct {
		name string
		data string
		want int
	}{
		{"empty", "", 0},
		{"cri_whole_lines", ts + " stdout F a\n" + ts + " stderr F b\n", 2},
		{"cri_split_message_counts_once", ts + " stdout P a\n" + ts + " stdout P b\n" + ts + " stdout F c\n", 1},
		{"cri_interleaved_streams", ts + " stdout P a\n" + ts + " stderr F b\n" + ts + " stdout F c\n", 2},
		{"cri_message_ending_elsewhere_does_not_count", ts + " stdout F a\n" + ts + " stdout P b\n", 1},
		{"cri_end_of_a_message_begun_elsewhere_counts", ts + " stdout F end\n", 1},
		{"cri_last_line_without_newline", ts + " stdout F a\n" + ts + " stdout F b", 2},
		{"cri_longer_than_max_counts_once", ts + " stdout F " + long + "\n", 1},
		{"docker_lines", `{"log":"a\n","stream":"stdout","time":"` + ts + `"}` + "\n" + `{"log":"b","stream":"stdout","time":"` + ts + `"}` + "\n" + `{"log":"c\n","stream":"stdout","time":"` + ts + `"}` + "\n", 2},
		{"raw_lines", "not a log line\nnor this\n", 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := CountLines([]byte(tc.data), 1024); got != tc.want {
				t.Fatalf("CountLines = %d, want %d", got, tc.want)
			}
		})
	}
}

// TestNextFileJoinsALineSplitByRotation: containerd reopening its log
// file splits the lines being written, the heads as partial lines at the
// end of the old file and the rest in the new one; they are joined, and
// restart offsets are the new file's from then on.
func TestNextFileJoinsALineSplitByRotation(t *testing.T) {
	const t1 = "2026-12-06T11:26:30.215294015Z"
	var out []got
	p := New(Unknown, 0, func(e Entry) { out = append(out, got{e.Time, e.Stream, string(e.Log), e.Pos, e.Part}) })
	old := []string{t1 + " stdout F whole", t1 + " stdout P storm b9", t1 + " stderr P storm b99b2742 e"}
	var off int64
	for _, l := range old {
		p.Line([]byte(l), off, off+int64(len(l))+1)
		off += int64(len(l)) + 1
	}
	p.NextFile()
	fresh := []string{t1 + " stdout F 9b2742 out 6985", t1 + " stdout F next", t1 + " stderr F rr 8349"}
	off = 0
	var ends []int64
	for _, l := range fresh {
		p.Line([]byte(l), off, off+int64(len(l))+1)
		off += int64(len(l)) + 1
		ends = append(ends, off)
	}
	want := []got{
		{ts(t1), Stdout, "whole", int64(len(old[0]) + 1), false},
		// stderr's head is still open: restarting from the new file's
		// start is the safe offset.
		{ts(t1), Stdout, "storm b99b2742 out 6985", 0, false},
		{ts(t1), Stdout, "next", 0, false},
		{ts(t1), Stderr, "storm b99b2742 err 8349", ends[2], false},
	}
	if fmt.Sprint(out) != fmt.Sprint(want) {
		t.Fatalf("got  %+v\nwant %+v", out, want)
	}
	if p.Pending() {
		t.Fatal("a fragment is still open")
	}
}
