//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"strings"
	"sync"
)

// output collects what an agent or command prints. Tests wait on what was
// printed (snapshot hands out a channel closed by the next write) instead
// of polling, since output arrives through pipes after the events it logs.
type output struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.changed != nil {
		close(o.changed)
		o.changed = nil
	}
	return o.buf.Write(p)
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// snapshot returns the output so far and a channel closed by the next write.
func (o *output) snapshot() (string, <-chan struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.changed == nil {
		o.changed = make(chan struct{})
	}
	return o.buf.String(), o.changed
}

// waitFor reports whether the output holds every string before ctx ends.
func (o *output) waitFor(ctx context.Context, want ...string) bool {
	for {
		s, next := o.snapshot()
		all := true
		for _, w := range want {
			all = all && strings.Contains(s, w)
		}
		if all {
			return true
		}
		select {
		case <-next:
		case <-ctx.Done():
			return false
		}
	}
}
