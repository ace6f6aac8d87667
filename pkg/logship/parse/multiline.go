package parse

import "regexp"

// Multiline joins consecutive entries of one stream into one message: an
// entry matching Start begins a new message, any other entry continues the
// current one (a Java stack trace, say). It sits between a Parser and the
// record encoder and, like a Parser, is owned by one goroutine.
type Multiline struct {
	start    *regexp.Regexp
	maxBytes int
	emit     func(Entry)
	bufs     [2]joined
	// lastPos is the restart offset of the last entry handed on.
	lastPos int64
}

type joined struct {
	open     bool
	time     int64
	timeRaw  []byte
	buf      []byte
	startPos int64 // restart offset from before this message's first entry
	pos      int64 // Pos of its last entry
}

// NewMultiline returns a joiner that passes joined entries to emit.
func NewMultiline(start *regexp.Regexp, maxBytes int, emit func(Entry)) *Multiline {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	return &Multiline{start: start, maxBytes: maxBytes, emit: emit}
}

// Add takes the next entry from the parser.
func (m *Multiline) Add(e Entry) {
	j := &m.bufs[e.Stream]
	if e.Part || m.start.Match(e.Log) || !j.open {
		m.flush(e.Stream)
		if e.Part {
			// Oversized messages are already split; never join them.
			m.pass(e)
			return
		}
		j.open = true
		j.time = e.Time
		j.timeRaw = append(j.timeRaw[:0], e.TimeRaw...)
		j.buf = append(j.buf[:0], e.Log...)
		j.startPos = m.lastPos
		j.pos = e.Pos
		return
	}
	if len(j.buf)+1+len(e.Log) > m.maxBytes {
		m.flush(e.Stream)
		m.Add(e)
		return
	}
	j.buf = append(j.buf, '\n')
	j.buf = append(j.buf, e.Log...)
	j.pos = e.Pos
}

// Flush emits any message being joined; call it when the file has been idle
// for a while so a trailing stack trace is not held back forever.
func (m *Multiline) Flush() {
	m.flush(Stdout)
	m.flush(Stderr)
	// Quiet now: hold no buffers while idle.
	for i := range m.bufs {
		m.bufs[i].buf, m.bufs[i].timeRaw = nil, nil
	}
}

// Pending reports whether a message is being joined.
func (m *Multiline) Pending() bool { return m.bufs[0].open || m.bufs[1].open }

func (m *Multiline) flush(s Stream) {
	j := &m.bufs[s]
	if !j.open {
		return
	}
	j.open = false
	m.pass(Entry{Time: j.time, TimeRaw: j.timeRaw, Stream: s, Log: j.buf, Pos: j.pos})
	if cap(j.buf) > 64<<10 {
		j.buf = nil
	}
}

// pass hands e on with a Pos that never skips a message still open on the
// other stream.
func (m *Multiline) pass(e Entry) {
	other := &m.bufs[1-e.Stream]
	if other.open && other.startPos < e.Pos {
		e.Pos = other.startPos
	}
	m.lastPos = e.Pos
	m.emit(e)
}
