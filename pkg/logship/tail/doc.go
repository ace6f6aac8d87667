// Package tail follows one container log file across rotations and hands
// out its complete lines with their file offsets.
//
// Files are known by their filepos.Identity, not by their path. A Follower
// reads a rotated file to its end before moving on, finds a copytruncate
// copy to read what the truncation took, and gives up a deleted file only
// after a bounded time.
package tail
