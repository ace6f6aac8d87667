package record

import (
	"encoding/binary"
	"time"
	"unicode/utf8"
)

// A record travels to CloudWatch inside the JSON string of a PutLogEvents
// event's "message": a record is JSON, so the request body holds it escaped
// a second time. AppendWire writes that escaped form directly, escaping the
// log text for both levels in one pass and copying the constant parts of
// the record escaped once per Encoder, so the body is assembled by copying
// rather than by escaping every record again.

// wire holds an Encoder's constant record parts in their wire form.
type wire struct {
	headLog, headStream, headTime []byte
	// tail is `"` and the suffix: what follows the time.
	tail    []byte
	tailRaw int
}

func newWire(suffix []byte) wire {
	esc := func(s []byte) []byte {
		out, _ := AppendEscaped(nil, s, 1<<30)
		return out
	}
	tail := append([]byte{'"'}, suffix...)
	return wire{
		headLog: esc([]byte(headLog)), headStream: esc([]byte(headStream)), headTime: esc([]byte(headTime)),
		tail: esc(tail), tailRaw: len(tail),
	}
}

// WireTail is the wire form of the end every record of this Encoder
// shares: the closing quote of its time and the "kubernetes" object.
func (e *Encoder) WireTail() []byte { return e.wire.tail }

// AppendWire appends one or more records holding msg to dst, as each
// appears between the quotes of a JSON string in the request body (the
// record JSON-escaped), except for WireTail, which every record continues
// with and which the caller keeps once rather than per record; a msg too
// long for one record (maxBytes) is split on UTF-8 boundaries into ordered
// records. stream is "stdout" or "stderr"; timeRaw is the RFC 3339
// timestamp to show (formatted from now when empty). It calls emit with
// the bounds of what it wrote in dst and the size of the whole record as
// CloudWatch counts it (the UTF-8 bytes of the record itself, tail
// included, which is what the limits are about).
func (e *Encoder) AppendWire(dst []byte, msg []byte, stream string, timeRaw []byte, now func() time.Time, emit func(start, end, size int)) []byte {
	var tbuf [40]byte
	if len(timeRaw) == 0 || len(timeRaw) > len(tbuf) {
		timeRaw = now().UTC().AppendFormat(tbuf[:0], time.RFC3339Nano)
	}
	budget := e.budget(len(timeRaw))
	// stream and timeRaw need no escaping: the parser hands over
	// "stdout"/"stderr" and a timestamp of digits and punctuation; anything
	// else goes through the escaper like the log text.
	plain := isPlain(stream) && isPlain(timeRaw)
	for first := true; first || len(msg) > 0; first = false {
		start := len(dst)
		dst = append(dst, e.wire.headLog...)
		var n, raw int
		dst, n, raw = appendEscapedTwice(dst, msg, budget)
		msg = msg[n:]
		size := len(headLog) + raw + len(headStream) + len(stream) + len(headTime) + len(timeRaw) + e.wire.tailRaw
		dst = append(dst, e.wire.headStream...)
		if plain {
			dst = append(dst, stream...)
			dst = append(dst, e.wire.headTime...)
			dst = append(dst, timeRaw...)
		} else {
			// The record holds them unescaped, as given; the body holds
			// that record escaped.
			dst = appendBody(dst, []byte(stream))
			dst = append(dst, e.wire.headTime...)
			dst = appendBody(dst, timeRaw)
		}
		emit(start, len(dst), size)
	}
	return dst
}

// isPlain reports whether s needs no escaping inside a JSON string.
func isPlain[T string | []byte](s T) bool {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		if !plainWord(binary.LittleEndian.Uint64([]byte(s[i : i+8]))) {
			return false
		}
	}
	for ; i < len(s); i++ {
		if !safe[s[i]] {
			return false
		}
	}
	return true
}

// appendBody escapes raw record bytes for the body (one level).
func appendBody(dst, s []byte) []byte {
	dst, _ = AppendEscaped(dst, s, 1<<30)
	return dst
}

// twice maps a plain-ASCII byte that the record escapes with a short
// sequence to that sequence escaped again for the body.
var twice = func() (t [utf8.RuneSelf]string) {
	t['"'], t['\\'] = `\\\"`, `\\\\`
	t['\n'], t['\r'], t['\t'] = `\\n`, `\\r`, `\\t`
	return t
}()

// appendEscapedTwice appends src escaped as AppendEscaped would, then
// escaped once more for a JSON string, writing at most budget bytes of the
// once-escaped form. It returns how many bytes of src it consumed and the
// once-escaped length written (the record bytes CloudWatch counts).
func appendEscapedTwice(dst, src []byte, budget int) ([]byte, int, int) {
	raw, i := 0, 0
	for i < len(src) {
		// Copy the run of plain ASCII in one append: the same bytes at
		// both levels. Log text is mostly such runs: scan them a word at
		// a time.
		end := min(len(src), i+budget-raw)
		j := i
		for j+8 <= end && plainWord(binary.LittleEndian.Uint64(src[j:])) {
			j += 8
		}
		for j < end && safe[src[j]] {
			j++
		}
		dst = append(dst, src[i:j]...)
		raw += j - i
		i = j
		if i >= len(src) || raw >= budget {
			break
		}
		c := src[i]
		if c < utf8.RuneSelf {
			if esc := twice[c]; esc != "" {
				if raw+2 > budget {
					break
				}
				dst = append(dst, esc...)
				raw += 2
			} else {
				// \u00XX once, \\u00XX twice.
				if raw+6 > budget {
					break
				}
				dst = append(dst, '\\', '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
				raw += 6
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(src[i:])
		if r == utf8.RuneError && size == 1 {
			if raw+3 > budget {
				break
			}
			dst = append(dst, "\uFFFD"...)
			raw += 3
			i++
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			if raw+6 > budget {
				break
			}
			dst = append(dst, '\\', '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			raw += 6
			i += size
			continue
		}
		if raw+size > budget {
			break
		}
		dst = append(dst, src[i:i+size]...)
		raw += size
		i += size
	}
	return dst, i, raw
}

const (
	lows  = 0x0101010101010101
	highs = 0x8080808080808080
)

// plainWord reports whether none of the 8 bytes in w needs escaping: none
// is a control byte (< 0x20), '"', '\\' or non-ASCII (>= 0x80). The
// classic "has a zero byte" test, (x - lows) &^ x & highs, flags bytes
// below a bound or equal to a value; it may flag a byte next to a real
// match, never miss one, and a flagged word just takes the byte loop.
func plainWord(w uint64) bool {
	below := (w - 0x20*lows) &^ w
	quote := w ^ '"'*lows
	backslash := w ^ '\\'*lows
	return (below|(quote-lows)&^quote|(backslash-lows)&^backslash|w)&highs == 0
}
