package imds

import (
	"log/slog"
	"net"
	"net/netip"
	"sync"
)

// DefaultMaxConnsPerSource caps concurrent connections from one source IP.
// SDKs keep one or two; the benchmark's 16 keep-alive clients fit well within.
const DefaultMaxConnsPerSource = 64

// capListener closes connections from a source that already holds max, so
// one pod cannot use up metaproxy's descriptors and memory (and so every
// other pod's credentials) by opening connections without end.
type capListener struct {
	net.Listener
	max    int
	logger *slog.Logger

	mu     sync.Mutex
	open   map[netip.Addr]int
	warned map[netip.Addr]bool
}

func newCapListener(ln net.Listener, max int, logger *slog.Logger) *capListener {
	return &capListener{Listener: ln, max: max, logger: logger, open: map[netip.Addr]int{}, warned: map[netip.Addr]bool{}}
}

// Accept returns the next connection within its source's cap; refused ones
// are closed here and never reach the HTTP server.
func (l *capListener) Accept() (net.Conn, error) {
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ap, err := netip.ParseAddrPort(conn.RemoteAddr().String())
		if err != nil {
			return conn, nil // not TCP/IP: nothing to count by
		}
		src := ap.Addr().Unmap()
		l.mu.Lock()
		over := l.open[src] >= l.max
		warn := over && !l.warned[src]
		if over {
			l.warned[src] = true
		} else {
			l.open[src]++
		}
		l.mu.Unlock()
		if !over {
			return &countedConn{Conn: conn, release: func() { l.release(src) }}, nil
		}
		if warn {
			l.logger.Warn("closing metadata connections over the per-source cap", "ip", src.String(), "max", l.max)
		}
		conn.Close()
	}
}

func (l *capListener) release(src netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[src]--; l.open[src] <= 0 {
		delete(l.open, src)
		delete(l.warned, src)
	}
}

// countedConn gives its place back on the first Close.
type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
