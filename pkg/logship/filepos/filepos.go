// Package filepos names places in log files in a way that survives
// rotation: a file is known by its Identity (device, inode and a
// fingerprint of its first bytes), not by its path, because kubelet rotates
// by renaming 0.log to 0.log.<timestamp> while the runtime reopens a fresh
// 0.log, copytruncate rotation keeps the inode but restarts the content,
// and a reused inode number gets a new fingerprint. A Position is an offset
// in such a file: where a record ends, what a reader resumes from, what a
// checkpoint saves. tail produces them; ship carries them back with what
// CloudWatch accepted; checkpoint stores them.
package filepos

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// FingerprintBytes is how much of a file's head identifies it.
const FingerprintBytes = 512

// Identity tells files apart even when paths and inode numbers are reused.
type Identity struct {
	Dev uint64 `json:"dev"`
	Ino uint64 `json:"ino"`
	// FPLen bytes at the head of the file hash to FP (FNV-1a). FPLen grows
	// up to FingerprintBytes as a young file grows.
	FPLen int    `json:"fp_len"`
	FP    uint64 `json:"fp"`
}

func (id Identity) String() string {
	return fmt.Sprintf("%d:%d:%d:%x", id.Dev, id.Ino, id.FPLen, id.FP)
}

// SameFile reports whether id and other name the same inode.
func (id Identity) SameFile(other Identity) bool { return id.Dev == other.Dev && id.Ino == other.Ino }

// Identify computes f's identity from its inode and head.
func Identify(f *os.File) (Identity, error) {
	fi, err := f.Stat()
	if err != nil {
		return Identity{}, fmt.Errorf("stat %s: %w", f.Name(), err)
	}
	id := Inode(fi)
	id.FPLen, id.FP, err = fingerprint(f, FingerprintBytes)
	if err != nil {
		return Identity{}, fmt.Errorf("fingerprinting %s: %w", f.Name(), err)
	}
	return id, nil
}

// Position is an offset in a file known by its identity; Path is where
// the file was found (it may have been renamed since).
type Position struct {
	Path   string   `json:"path"`
	ID     Identity `json:"id"`
	Offset int64    `json:"offset"`
}

func fingerprint(f *os.File, n int) (int, uint64, error) {
	return fingerprintInto(f, make([]byte, n))
}

// HeadMatches reports whether f starts with the bytes id was taken from,
// reading them into head (at least id.FPLen long) so a caller checking
// often allocates nothing.
func (id Identity) HeadMatches(f *os.File, head []byte) (bool, error) {
	n, fp, err := fingerprintInto(f, head[:id.FPLen])
	if err != nil {
		return false, err
	}
	return n == id.FPLen && fp == id.FP, nil
}

// fingerprintInto hashes f's first len(buf) bytes, read into buf.
func fingerprintInto(f *os.File, buf []byte) (int, uint64, error) {
	got, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, 0, err
	}
	// FNV-1a, as hash/fnv computes it, without the allocation its
	// interface value costs on this per-poll path.
	h := uint64(14695981039346656037)
	for _, b := range buf[:got] {
		h ^= uint64(b)
		h *= 1099511628211
	}
	return got, h, nil
}

// Matches reports whether f is the file id was taken from: same inode and
// the same first id.FPLen bytes. A copy made by copytruncate matches with
// sameInode false.
func Matches(f *os.File, id Identity) (match, sameInode bool, err error) {
	fi, err := f.Stat()
	if err != nil {
		return false, false, fmt.Errorf("stat %s: %w", f.Name(), err)
	}
	sameInode = Inode(fi).SameFile(id)
	n, fp, err := fingerprint(f, id.FPLen)
	if err != nil {
		return false, sameInode, fmt.Errorf("fingerprinting %s: %w", f.Name(), err)
	}
	return n == id.FPLen && fp == id.FP, sameInode, nil
}
