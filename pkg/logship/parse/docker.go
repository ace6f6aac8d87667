package parse

import (
	"bytes"
	"unicode/utf8"
)

type dockerLine struct {
	log    []byte
	stream Stream
	time   []byte
}

// parseDocker reads one json-file line. It is a small purpose-built scanner
// rather than encoding/json because it runs for every line: the "log" value
// is unescaped into p.scratch and the other fields alias the line. Unknown
// fields are skipped; any syntax error makes the line raw.
func (p *Parser) parseDocker(line []byte) (dockerLine, bool) {
	var d dockerLine
	i := skipSpace(line, 0)
	if i >= len(line) || line[i] != '{' {
		return d, false
	}
	i++
	seenLog := false
	for {
		i = skipSpace(line, i)
		if i >= len(line) {
			return d, false
		}
		if line[i] == '}' {
			return d, seenLog && skipSpace(line, i+1) == len(line)
		}
		if line[i] == ',' {
			i++
			i = skipSpace(line, i)
		}
		key, next, ok := rawString(line, i)
		if !ok {
			return d, false
		}
		i = skipSpace(line, next)
		if i >= len(line) || line[i] != ':' {
			return d, false
		}
		i = skipSpace(line, i+1)
		switch string(key) {
		case "log":
			var ok bool
			p.scratch, i, ok = unescape(p.scratch[:0], line, i)
			if !ok {
				return d, false
			}
			d.log = p.scratch
			seenLog = true
		case "stream":
			v, next, ok := rawString(line, i)
			if !ok {
				return d, false
			}
			if string(v) == "stderr" {
				d.stream = Stderr
			}
			i = next
		case "time":
			v, next, ok := rawString(line, i)
			if !ok {
				return d, false
			}
			d.time = v
			i = next
		default:
			next, ok := skipValue(line, i)
			if !ok {
				return d, false
			}
			i = next
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// rawString returns the bytes of a JSON string starting at b[i] without
// unescaping (used for keys and values that never need escapes).
func rawString(b []byte, i int) ([]byte, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, i, false
	}
	// Keys and short values end within a few bytes: a byte loop is
	// cheapest there.
	j := i + 1
	for end := min(len(b), j+16); j < end; j++ {
		switch b[j] {
		case '\\':
			return rawStringEscaped(b, i, j)
		case '"':
			return b[i+1 : j], j + 1, true
		}
	}
	// Longer ones (timestamps) rarely hold an escape: find the closing
	// quote with IndexByte and make sure no backslash comes before it.
	if q := bytes.IndexByte(b[j:], '"'); q >= 0 && bytes.IndexByte(b[j:j+q], '\\') < 0 {
		return b[i+1 : j+q], j + q + 1, true
	}
	return rawStringEscaped(b, i, j)
}

// rawStringEscaped finishes rawString from b[j] byte by byte, skipping
// escaped bytes.
func rawStringEscaped(b []byte, i, j int) ([]byte, int, bool) {
	for ; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return b[i+1 : j], j + 1, true
		}
	}
	return nil, i, false
}

// skipValue skips a JSON value of any type (strings, numbers, literals,
// nested objects and arrays) starting at b[i].
func skipValue(b []byte, i int) (int, bool) {
	if i >= len(b) {
		return i, false
	}
	if b[i] == '"' {
		_, next, ok := rawString(b, i)
		return next, ok
	}
	depth := 0
	for ; i < len(b); i++ {
		switch b[i] {
		case '"':
			_, next, ok := rawString(b, i)
			if !ok {
				return i, false
			}
			i = next - 1
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i, true
			}
			depth--
			if depth == 0 {
				return i + 1, true
			}
		case ',':
			if depth == 0 {
				return i, true
			}
		}
	}
	return i, depth == 0
}

func hexVal(c byte) (rune, bool) {
	switch {
	case c >= '0' && c <= '9':
		return rune(c - '0'), true
	case c >= 'a' && c <= 'f':
		return rune(c - 'a' + 10), true
	case c >= 'A' && c <= 'F':
		return rune(c - 'A' + 10), true
	}
	return 0, false
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		v, ok := hexVal(c)
		if !ok {
			return 0, false
		}
		r = r<<4 | v
	}
	return r, true
}

// unescape appends the decoded JSON string at b[i] to dst.
func unescape(dst, b []byte, i int) ([]byte, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return dst, i, false
	}
	i++
	for i < len(b) {
		// Copy the run of plain bytes up to the first quote or backslash
		// in one append (two IndexByte calls beat a byte loop on all but
		// the shortest runs).
		j := len(b)
		if q := bytes.IndexByte(b[i:], '"'); q >= 0 {
			j = i + q
		}
		if k := bytes.IndexByte(b[i:j], '\\'); k >= 0 {
			j = i + k
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
