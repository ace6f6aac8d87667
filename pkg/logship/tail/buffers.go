package tail

import "sync"

// idleBuffer is the read buffer a file borrows for its first read after
// a wait: enough for what a quiet container writes between two polls.
const idleBuffer = 16 << 10

// bufferPool lends read buffers to Followers. A Follower holds one only
// while it has bytes to hand out or a partial line to keep, so the many
// caught-up files of a node hold none, and the few busy ones reuse what
// others gave back instead of each keeping its own.
//
// It is a sync.Pool per size (first reads, busy reads): what nobody
// borrows again is freed by the garbage collector, which is what an idle
// node wants. Buffers grown past the busy size for a very long line are
// not kept.
type bufferPool struct {
	small, large sync.Pool // of *[]byte, so Put does not allocate
}

// get returns a buffer of exactly n bytes, and the holder to give back.
// busy is the size a busy Follower reads with: anything longer (a very
// long line) is allocated for the occasion.
func (p *bufferPool) get(n, busy int) *[]byte {
	var sp *sync.Pool
	switch {
	case n <= idleBuffer:
		sp = &p.small
	case n <= busy:
		sp = &p.large
	}
	if sp != nil {
		if b, ok := sp.Get().(*[]byte); ok {
			if len(*b) == n {
				return b
			}
			// Another size (Followers with other configs share the
			// pool): let the collector have it.
		}
	}
	b := make([]byte, n)
	return &b
}

// put gives b back, but not a buffer grown beyond busy for a long line.
func (p *bufferPool) put(b *[]byte, busy int) {
	switch n := len(*b); {
	case n <= idleBuffer:
		p.small.Put(b)
	case n <= busy:
		p.large.Put(b)
	}
}
