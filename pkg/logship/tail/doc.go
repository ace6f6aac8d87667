// Package tail follows one container log file across rotations and hands
// out its complete lines with their file offsets.
//
// Files are known by their filepos.Identity, not by their path. A Follower
// reads a rotated file to its end before moving on and finds a copytruncate
// copy to read what the truncation took. A Keeper opens every file that
// appears at a busy Follower's path as soon as it appears, so a file the
// kubelet compresses and deletes behind a slow reader is still read to its
// end; it lets go of deleted files only beyond a bound on their disk space
// and age, and reports exactly what was never read of them.
package tail
