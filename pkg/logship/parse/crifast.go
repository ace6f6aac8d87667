package parse

import "encoding/binary"

// criFastLen is the length of the header containerd and CRI-O write on
// nearly every line: "2006-01-02T15:04:05.000000000Z stdout F" (a
// nine-digit fraction and Z, so every field sits at a fixed offset).
const criFastLen = 39

// Words of the fixed parts of that header, as little-endian loads see them.
const (
	wordStdout = uint64('s') | uint64('t')<<8 | uint64('d')<<16 | uint64('o')<<24 | uint64('u')<<32 | uint64('t')<<40 | uint64(' ')<<48
	wordStderr = uint64('s') | uint64('t')<<8 | uint64('d')<<16 | uint64('e')<<24 | uint64('r')<<32 | uint64('r')<<40 | uint64(' ')<<48
	low7Bytes  = 1<<56 - 1
)

// criFast parses that header with fixed-offset checks, when its first 19
// bytes are the second the cache holds (consecutive lines nearly always
// share it): the timestamp is line[:30] and the message line[40:], if any. It answers only where parseCRIHeader with the same cache would
// give the same result, and otherwise returns ok false so the caller takes
// the general path: another second, another fraction width, a numeric zone,
// a tag with ":" extensions. FuzzCRIFastPath holds the two paths to that.
//
// It is the hot path of the read + parse benchmark: the general one costs
// two IndexByte calls, a prefix compare and a digit loop per line. Its
// results fit in registers: returning the slices too made it slower.
func (c *timeCache) criFast(line []byte) (t int64, s Stream, final, ok bool) {
	if len(line) < criFastLen || !c.valid {
		return 0, 0, false, false
	}
	if len(line) > criFastLen && line[criFastLen] != ' ' {
		return 0, 0, false, false
	}
	if binary.LittleEndian.Uint64(line) != c.word0 || binary.LittleEndian.Uint64(line[8:]) != c.word1 || binary.LittleEndian.Uint32(line[15:]) != c.word2 {
		return 0, 0, false, false
	}
	if line[19] != '.' || line[29] != 'Z' || line[30] != ' ' {
		return 0, 0, false, false
	}
	frac := binary.LittleEndian.Uint64(line[20:])
	last := line[28] - '0'
	if !eightDigits(frac) || last > 9 {
		return 0, 0, false, false
	}
	w := binary.LittleEndian.Uint64(line[31:])
	switch w & low7Bytes {
	case wordStdout:
	case wordStderr:
		s = Stderr
	default:
		return 0, 0, false, false
	}
	switch byte(w >> 56) {
	case 'F':
		final = true
	case 'P':
	default:
		return 0, 0, false, false
	}
	return c.secs*1e9 + int64(eightDigitsValue(frac))*10 + int64(last), s, final, true
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
