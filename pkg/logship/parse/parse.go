// Package parse turns the lines of a container log file into log entries.
//
// It understands the two formats a kubelet node writes: CRI
// ("<RFC3339Nano> <stdout|stderr> <P|F> <msg>") and docker json-file
// ({"log":...,"stream":...,"time":...}). The format is detected per file from
// its first line. Fragments (CRI "P" tags, docker "log" values without a
// trailing newline) are joined per stream until the final fragment, and a
// joined message that grows beyond Parser.MaxBytes is emitted as ordered parts
// rather than dropped, so memory stays bounded whatever a container writes.
//
// A Parser is not safe for concurrent use: one goroutine owns each file.
package parse

import (
	"bytes"
	"encoding/binary"
	"sync"
	"time"
)

// Format is the on-disk format of a container log file.
type Format uint8

// Formats a file can have. Unknown files are shipped line by line as they are.
const (
	Unknown Format = iota
	CRI
	Docker
)

func (f Format) String() string {
	switch f {
	case CRI:
		return "cri"
	case Docker:
		return "docker"
	default:
		return "unknown"
	}
}

// Stream is the container output a line was written to.
type Stream uint8

// Streams; Stdout is also used for lines whose stream cannot be read.
const (
	Stdout Stream = iota
	Stderr
)

func (s Stream) String() string {
	if s == Stderr {
		return "stderr"
	}
	return "stdout"
}

// Entry is one complete log message (or one ordered part of an oversized one).
// Log and Time alias buffers owned by the Parser and are valid only until the
// emit callback returns.
type Entry struct {
	// Time is the runtime's timestamp in Unix nanoseconds; 0 when the line
	// carried none the parser could read.
	Time int64
	// TimeRaw is the RFC 3339 timestamp as written by the runtime (empty when
	// Time is 0), kept verbatim so records show the runtime's own string.
	TimeRaw []byte
	Stream  Stream
	Log     []byte
	// Pos is the file offset a reader may restart from without losing this
	// entry or any fragment still being joined: the end of this entry's last
	// line, or the start of the oldest fragment still open on another stream.
	Pos int64
	// Part is true when Log is a piece of a message longer than MaxBytes; the
	// pieces are emitted in order and the last one has Part false.
	Part bool
}

// DefaultMaxBytes bounds a joined message; longer ones are emitted as parts.
const DefaultMaxBytes = 1 << 20

// Parser parses the lines of one file.
type Parser struct {
	format   Format
	maxBytes int
	emit     func(Entry)
	partial  [2]fragment
	errors   int
	scratch  []byte // unescaped docker "log" value
	times    timeCache
	// slowOnly turns criFast off, for tests comparing it with the
	// general path.
	slowOnly bool
}

// timeCache remembers the seconds of the last "2006-01-02T15:04:05" prefix:
// consecutive lines nearly always share it, so most timestamps cost only
// their fraction and zone.
type timeCache struct {
	prefix [19]byte
	// word0..2 are prefix as criFast loads it: bytes 0-7, 8-15, 15-18.
	word0, word1 uint64
	word2        uint32
	secs         int64 // Unix seconds of prefix, in UTC before any zone offset
	valid        bool
}

// parse is ParseTime with the cache; a nil cache parses in full.
func (c *timeCache) parse(b []byte) (int64, bool) {
	if c == nil || len(b) < 20 || b[19] != '.' && b[19] != 'Z' {
		return ParseTime(b)
	}
	if !c.valid || string(b[:19]) != string(c.prefix[:]) {
		// Parse the prefix alone (as UTC) and remember it.
		var tmp [20]byte
		copy(tmp[:], b[:19])
		tmp[19] = 'Z'
		t, ok := fastTime(tmp[:])
		if !ok {
			return ParseTime(b)
		}
		copy(c.prefix[:], b[:19])
		c.word0 = binary.LittleEndian.Uint64(c.prefix[:])
		c.word1 = binary.LittleEndian.Uint64(c.prefix[8:])
		c.word2 = binary.LittleEndian.Uint32(c.prefix[15:])
		c.secs, c.valid = t/1e9, true
	}
	rest := b[19:]
	var nanos int64
	if len(rest) == 11 && rest[0] == '.' && rest[10] == 'Z' {
		// What containerd writes: nine digits and Z. One pass, no
		// padding loop.
		for _, d := range rest[1:10] {
			d -= '0'
			if d > 9 {
				return 0, false
			}
			nanos = nanos*10 + int64(d)
		}
		return c.secs*1e9 + nanos, true
	}
	if rest[0] == '.' {
		n := 1
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		if n == 1 || n > 10 {
			return 0, false
		}
		for i := 1; i < 10; i++ {
			nanos *= 10
			if i < n {
				nanos += int64(rest[i] - '0')
			}
		}
		rest = rest[n:]
	}
	if len(rest) != 1 || (rest[0] != 'Z' && rest[0] != 'z') {
		return ParseTime(b) // numeric zone: the slow path handles it
	}
	return c.secs*1e9 + nanos, true
}

// joinBufferSize is the capacity of the buffers fragments are joined in:
// a runtime splits lines at 16 KiB, so most long lines fit.
const joinBufferSize = 64 << 10

// joinBuffers lends join buffers to Parsers, so that a file which once
// had a long line does not keep a buffer for it while idle, and files with
// many long lines do not allocate one per line. It is a sync.Pool (of
// *[]byte, so Put does not allocate): package-level, but it holds only
// spare capacity, nothing a Parser's output depends on.
var joinBuffers = sync.Pool{New: func() any {
	b := make([]byte, 0, joinBufferSize)
	return &b
}}

// fragment is a message being joined on one stream.
type fragment struct {
	open    bool
	start   int64 // file offset of the first line of the fragment
	time    int64
	timeRaw []byte
	// buf holds the message, in the buffer borrowed as bufp while the
	// fragment is open (it may outgrow it).
	buf  []byte
	bufp *[]byte
	// split is true once a part of this message was emitted.
	split bool
}

// New returns a parser for lines of the given format; Unknown means detect
// from the first line. emit is called for every complete entry.
func New(format Format, maxBytes int, emit func(Entry)) *Parser {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	return &Parser{format: format, maxBytes: maxBytes, emit: emit}
}

// Format reports the detected format (Unknown until the first line).
func (p *Parser) Format() Format { return p.format }

// Errors reports how many lines could not be parsed and were shipped raw.
func (p *Parser) Errors() int { return p.errors }

// Detect guesses a line's format.
func Detect(line []byte) Format {
	l := bytes.TrimLeft(line, " \t")
	if len(l) > 0 && l[0] == '{' {
		return Docker
	}
	if _, _, ok := parseCRIHeader(line, nil); ok {
		return CRI
	}
	return Unknown
}

// Line parses one line (without its newline) found at file offsets
// [start, end), end including the newline.
func (p *Parser) Line(line []byte, start, end int64) {
	if p.format == Unknown {
		f := Detect(line)
		if f == Unknown {
			// Leave detection open: one unreadable first line must not
			// make a whole CRI file raw.
			p.raw(line, start, end)
			return
		}
		p.format = f
	}
	switch p.format {
	case CRI:
		p.cri(line, start, end)
	case Docker:
		p.docker(line, start, end)
	}
}

// Flush emits every fragment still open, as at the end of a file that will
// never grow again. pos is the offset the file was read to.
func (p *Parser) Flush(pos int64) {
	for s := range p.partial {
		f := &p.partial[s]
		if f.open {
			p.emitFragment(Stream(s), pos, false)
		}
	}
}

// NextFile tells the parser that the file read so far was rotated away and
// the next one continues its streams: fragments still open are completed
// by lines of the next file (containerd splits the line it is writing when
// it reopens its log file). Their restart offset becomes the next file's
// start, as offsets are the next file's from now on: a restart before they
// complete loses their head, never a later line.
func (p *Parser) NextFile() {
	for s := range p.partial {
		if p.partial[s].open {
			p.partial[s].start = 0
		}
	}
}

// Pending reports whether any fragment is still open.
func (p *Parser) Pending() bool { return p.partial[0].open || p.partial[1].open }

func (p *Parser) raw(line []byte, start, end int64) {
	p.errors++
	for len(line) > p.maxBytes {
		// Not restartable in the middle: parts carry the line's start.
		p.emit(Entry{Stream: Stdout, Log: line[:p.maxBytes], Pos: p.safePos(start), Part: true})
		line = line[p.maxBytes:]
	}
	p.emit(Entry{Stream: Stdout, Log: line, Pos: p.safePos(end)})
}

// safePos is the restart offset after a line ending at end was consumed.
func (p *Parser) safePos(end int64) int64 {
	pos := end
	for i := range p.partial {
		if p.partial[i].open && p.partial[i].start < pos {
			pos = p.partial[i].start
		}
	}
	return pos
}

// add handles one fragment (final or not) of a message on stream s.
func (p *Parser) add(s Stream, t int64, traw, msg []byte, final bool, start, end int64) {
	f := &p.partial[s]
	if !f.open {
		if final && len(msg) <= p.maxBytes {
			// Fast path, the common case: a whole line, no copy.
			p.emit(Entry{Time: t, TimeRaw: traw, Stream: s, Log: msg, Pos: p.safePos(end)})
			return
		}
		f.open = true
		f.start = start
		f.time = t
		f.timeRaw = append(f.timeRaw[:0], traw...)
		f.bufp = joinBuffers.Get().(*[]byte)
		f.buf = (*f.bufp)[:0]
		f.split = false
	}
	for len(f.buf)+len(msg) > p.maxBytes {
		n := p.maxBytes - len(f.buf)
		f.buf = append(f.buf, msg[:n]...)
		msg = msg[n:]
		// The emitted part is not restartable on its own: the fragment
		// stays open from its original start, so a restart repeats the
		// parts rather than losing the message's head.
		p.emitPart(s)
	}
	f.buf = append(f.buf, msg...)
	if final {
		p.emitFragment(s, end, true)
	}
}

func (p *Parser) emitPart(s Stream) {
	f := &p.partial[s]
	f.split = true
	p.emit(Entry{Time: f.time, TimeRaw: f.timeRaw, Stream: s, Log: f.buf, Pos: p.safePos(f.start), Part: true})
	f.buf = f.buf[:0]
}

func (p *Parser) emitFragment(s Stream, end int64, final bool) {
	f := &p.partial[s]
	f.open = false
	defer f.release()
	if !final && len(f.buf) == 0 && f.split {
		return
	}
	e := Entry{Time: f.time, TimeRaw: f.timeRaw, Stream: s, Log: f.buf, Pos: p.safePos(end)}
	p.emit(e)
	f.split = false
}

// release gives the join buffer back once the message is emitted (Entry.Log
// is valid only until emit returns); one it outgrew is left to the
// collector.
func (f *fragment) release() {
	if f.bufp != nil {
		joinBuffers.Put(f.bufp)
	}
	f.buf, f.bufp = nil, nil
}

// cri parses "<time> <stream> <tag> <msg>".
func (p *Parser) cri(line []byte, start, end int64) {
	if t, s, final, n, ok := p.times.criFast(line); ok && !p.slowOnly {
		var msg []byte
		if len(line) > n+streamTag {
			msg = line[n+streamTag+1:]
		}
		if final && !p.partial[0].open && !p.partial[1].open && len(msg) <= p.maxBytes {
			// A whole line and nothing being joined: what add would
			// do, without its arguments spilled to the stack.
			p.emit(Entry{Time: t, TimeRaw: line[:n], Stream: s, Log: msg, Pos: end})
			return
		}
		p.add(s, t, line[:n], msg, final, start, end)
		return
	}
	hdr, rest, ok := parseCRIHeader(line, &p.times)
	if !ok {
		p.raw(line, start, end)
		return
	}
	p.add(hdr.stream, hdr.time, hdr.timeRaw, rest, hdr.final, start, end)
}

type criHeader struct {
	time    int64
	timeRaw []byte
	stream  Stream
	final   bool
}

func parseCRIHeader(line []byte, tc *timeCache) (criHeader, []byte, bool) {
	var h criHeader
	i := bytes.IndexByte(line, ' ')
	if i <= 0 {
		return h, nil, false
	}
	t, ok := tc.parse(line[:i])
	if !ok {
		return h, nil, false
	}
	h.time, h.timeRaw = t, line[:i]
	rest := line[i+1:]
	switch {
	case bytes.HasPrefix(rest, []byte("stdout ")):
		h.stream, rest = Stdout, rest[7:]
	case bytes.HasPrefix(rest, []byte("stderr ")):
		h.stream, rest = Stderr, rest[7:]
	default:
		return h, nil, false
	}
	// The tag is "P" or "F", possibly followed by ":"-separated extensions.
	j := bytes.IndexByte(rest, ' ')
	tag := rest
	if j >= 0 {
		tag, rest = rest[:j], rest[j+1:]
	} else {
		rest = nil
	}
	if len(tag) == 0 {
		return h, nil, false
	}
	switch tag[0] {
	case 'P':
		h.final = false
	case 'F':
		h.final = true
	default:
		return h, nil, false
	}
	if len(tag) > 1 && tag[1] != ':' {
		return h, nil, false
	}
	return h, rest, true
}

// docker parses {"log":"...","stream":"...","time":"..."}.
func (p *Parser) docker(line []byte, start, end int64) {
	d, ok := p.parseDocker(line)
	if !ok {
		p.raw(line, start, end)
		return
	}
	msg := d.log
	final := len(msg) > 0 && msg[len(msg)-1] == '\n'
	if final {
		msg = msg[:len(msg)-1]
		if len(msg) > 0 && msg[len(msg)-1] == '\r' {
			msg = msg[:len(msg)-1]
		}
	}
	t, ok := p.times.parse(d.time)
	if !ok {
		t, d.time = 0, nil
	}
	p.add(d.stream, t, d.time, msg, final, start, end)
}

// ParseTime parses an RFC 3339 timestamp to Unix nanoseconds. The layouts
// runtimes write ("2006-01-02T15:04:05.999999999Z" or with a numeric zone)
// are read without allocating; anything else goes through time.Parse.
func ParseTime(b []byte) (int64, bool) {
	if t, ok := fastTime(b); ok {
		return t, true
	}
	if len(b) < 20 || len(b) > 40 {
		return 0, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(b))
	if err != nil {
		return 0, false
	}
	return t.UnixNano(), true
}

func digits(b []byte, n int) (int, bool) {
	if len(b) < n {
		return 0, false
	}
	v := 0
	for i := 0; i < n; i++ {
		c := b[i] - '0'
		if c > 9 {
			return 0, false
		}
		v = v*10 + int(c)
	}
	return v, true
}

func fastTime(b []byte) (int64, bool) {
	// 2006-01-02T15:04:05[.fraction](Z|+hh:mm)
	if len(b) < 20 || b[4] != '-' || b[7] != '-' || (b[10] != 'T' && b[10] != 't') || b[13] != ':' || b[16] != ':' {
		return 0, false
	}
	year, ok1 := digits(b, 4)
	month, ok2 := digits(b[5:], 2)
	day, ok3 := digits(b[8:], 2)
	hour, ok4 := digits(b[11:], 2)
	minute, ok5 := digits(b[14:], 2)
	sec, ok6 := digits(b[17:], 2)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || month < 1 || month > 12 || day < 1 || day > daysIn(month, year) || hour > 23 || minute > 59 || sec > 59 {
		return 0, false
	}
	rest := b[19:]
	var nanos int64
	if len(rest) > 0 && rest[0] == '.' {
		rest = rest[1:]
		n := 0
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		if n == 0 || n > 9 {
			return 0, false
		}
		for i := 0; i < 9; i++ {
			nanos *= 10
			if i < n {
				nanos += int64(rest[i] - '0')
			}
		}
		rest = rest[n:]
	}
	var offset int64
	switch {
	case len(rest) == 1 && (rest[0] == 'Z' || rest[0] == 'z'):
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, ok1 := digits(rest[1:], 2)
		om, ok2 := digits(rest[4:], 2)
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return 0, false
		}
		offset = int64(oh*3600 + om*60)
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return 0, false
	}
	days := daysFromCivil(year, month, day)
	secs := days*86400 + int64(hour*3600+minute*60+sec) - offset
	return secs*1e9 + nanos, true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil is Howard Hinnant's algorithm: days since 1970-01-01.
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era = (y - 399) / 400
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}

// CountLines counts the log lines in data, whole physical lines (the last
// perhaps without its newline), as a Parser of them emits them: a message
// the runtime split (CRI "P" parts, docker json-file parts without the
// final newline) counts once, at its last part, and a line longer than
// maxBytes once. A message whose last part is not in data does not count:
// its end is elsewhere. It is how logship counts the lines it lost.
func CountLines(data []byte, maxBytes int) int {
	n := 0
	p := New(Unknown, maxBytes, func(e Entry) {
		if !e.Part {
			n++
		}
	})
	for len(data) > 0 {
		line, rest, _ := bytes.Cut(data, []byte{'\n'})
		p.Line(line, 0, 0)
		data = rest
	}
	return n
}
