package parse

import "encoding/binary"

// The header runtimes write is "<time> <stream> <tag> <msg>" with the time
// in one of a few shapes (see criFast); "2006-01-02T15:04:05" is the part
// the time cache holds, and " stdout F" what follows the time.
const (
	secondLen = 19
	streamTag = 9 // len(" stdout F")
)

// Words of the fixed parts of the header, as little-endian loads see them.
const (
	wordStdout = uint64('s') | uint64('t')<<8 | uint64('d')<<16 | uint64('o')<<24 | uint64('u')<<32 | uint64('t')<<40 | uint64(' ')<<48
	wordStderr = uint64('s') | uint64('t')<<8 | uint64('d')<<16 | uint64('e')<<24 | uint64('r')<<32 | uint64('r')<<40 | uint64(' ')<<48
	low7Bytes  = 1<<56 - 1
)

// criFast parses a CRI header whose first 19 bytes are the second the
// cache holds (consecutive lines nearly always share it), with word loads
// at known offsets instead of searching for spaces. The time shapes it
// reads are the ones runtimes write:
//
//	2006-01-02T15:04:05.123456789Z       containerd (most lines)
//	2006-01-02T15:04:05.1234567Z         containerd: RFC3339Nano drops trailing zeros
//	2006-01-02T15:04:05.123456789+00:00  CRI-O (conmon)
//
// It returns the time, stream and tag, and n, the timestamp's length: the
// timestamp is line[:n] and the message, if any, line[n+10:]. It answers
// only where parseCRIHeader with the same cache gives the same result, and
// otherwise returns ok false so the caller takes that general path (another
// second, a whole second with no fraction, lower-case z, tag extensions,
// anything malformed). FuzzCRIFastPath holds the two paths to that.
//
// It is the hot path of the read + parse benchmark: the general one costs
// two IndexByte calls, a prefix compare and a digit loop per line. Its
// results fit in registers: returning the slices too made it slower.
func (c *timeCache) criFast(line []byte) (t int64, s Stream, final bool, n int, ok bool) {
	if len(line) < 30 || !c.valid || line[secondLen] != '.' {
		return 0, 0, false, 0, false
	}
	if binary.LittleEndian.Uint64(line) != c.word0 || binary.LittleEndian.Uint64(line[8:]) != c.word1 || binary.LittleEndian.Uint32(line[15:]) != c.word2 {
		return 0, 0, false, 0, false
	}
	frac := binary.LittleEndian.Uint64(line[20:])
	var nanos int64
	switch {
	case line[29] == 'Z' && eightDigits(frac) && line[28]-'0' <= 9:
		nanos, n = int64(eightDigitsValue(frac))*10+int64(line[28]-'0'), 30
	case len(line) >= 35 && (line[29] == '+' || line[29] == '-') && eightDigits(frac) && line[28]-'0' <= 9:
		// A numeric zone: the cache holds the second as if it were UTC.
		oh, om := line[30]-'0', line[31]-'0'
		mh, mm := line[33]-'0', line[34]-'0'
		if line[32] != ':' || oh > 9 || om > 9 || mh > 9 || mm > 9 {
			return 0, 0, false, 0, false
		}
		h, m := int64(oh)*10+int64(om), int64(mh)*10+int64(mm)
		if h > 23 || m > 59 {
			return 0, 0, false, 0, false
		}
		off := (h*3600 + m*60) * 1e9
		if line[29] == '-' {
			off = -off
		}
		nanos, n = int64(eightDigitsValue(frac))*10+int64(line[28]-'0')-off, 35
	default:
		// Fewer than nine digits, then Z.
		d := 20
		for d < 29 && line[d]-'0' <= 9 {
			nanos = nanos*10 + int64(line[d]-'0')
			d++
		}
		if d == 20 || line[d] != 'Z' {
			return 0, 0, false, 0, false
		}
		for range 29 - d {
			nanos *= 10
		}
		n = d + 1
	}
	if len(line) < n+streamTag || line[n] != ' ' || len(line) > n+streamTag && line[n+streamTag] != ' ' {
		return 0, 0, false, 0, false
	}
	w := binary.LittleEndian.Uint64(line[n+1:])
	switch w & low7Bytes {
	case wordStdout:
	case wordStderr:
		s = Stderr
	default:
		return 0, 0, false, 0, false
	}
	switch byte(w >> 56) {
	case 'F':
		final = true
	case 'P':
	default:
		return 0, 0, false, 0, false
	}
	return c.secs*1e9 + nanos, s, final, n, true
}

// eightDigits reports whether all eight bytes of x are ASCII digits: a
// byte is a digit when its high nibble is 3 and adding 6 keeps it so.
func eightDigits(x uint64) bool {
	return (x&0xF0F0F0F0F0F0F0F0)|((x+0x0606060606060606)&0xF0F0F0F0F0F0F0F0)>>4 == 0x3333333333333333
}

// eightDigitsValue is the number eight ASCII digits spell, the first in
// x's lowest byte, combined pairwise in three multiplications instead of
// eight multiply-adds.
func eightDigitsValue(x uint64) uint32 {
	x -= 0x3030303030303030
	x = x*10 + x>>8 // each 16-bit lane's low byte: two digits
	x = ((x&0x000000FF000000FF)*(100+1000000<<32) + (x>>16&0x000000FF000000FF)*(1+10000<<32)) >> 32
	return uint32(x)
}
