package filepos

import (
	"os"
	"syscall"
)

// Inode is the identity of fi's inode alone (no fingerprint): enough for
// SameFile.
func Inode(fi os.FileInfo) Identity {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return StatInode(st)
	}
	return Identity{}
}

// StatInode is Inode from a stat result, for callers that stat without
// allocating.
func StatInode(st *syscall.Stat_t) Identity {
	return Identity{Dev: uint64(st.Dev), Ino: st.Ino}
}
