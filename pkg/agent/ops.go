package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// OpsConfig configures the operations server.
type OpsConfig struct {
	// Addr is where /healthz, /readyz and /metrics are served.
	Addr string
	// EnablePprof adds /debug/pprof/; off by default so profiles are never
	// exposed by accident.
	EnablePprof bool
	// ShutdownTimeout bounds the graceful shutdown of the server.
	ShutdownTimeout time.Duration
}

// Ops is the operations HTTP server. Handlers and readiness conditions may
// be added until Run is called.
type Ops struct {
	cfg    OpsConfig
	logger *slog.Logger
	mux    *http.ServeMux

	mu         sync.Mutex
	conditions []namedCondition
}

type namedCondition struct {
	name string
	cond Condition
}

// NewOps builds the ops server. reg receives the Go and process collectors and
// is what /metrics serves.
func NewOps(cfg OpsConfig, reg *prometheus.Registry, logger *slog.Logger) *Ops {
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 5 * time.Second
	}
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	o := &Ops{cfg: cfg, logger: logger, mux: http.NewServeMux()}
	o.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	o.mux.HandleFunc("GET /readyz", o.serveReady)
	o.mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelError)}))
	if cfg.EnablePprof {
		o.mux.HandleFunc("/debug/pprof/", pprof.Index)
		o.mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		o.mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		o.mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		o.mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return o
}

// Check registers a readiness condition: /readyz calls cond at each
// request and answers 200 only while every condition holds, listing each
// with its reason. cond must be cheap and safe for concurrent use (see
// Condition).
func (o *Ops) Check(name string, cond Condition) {
	o.mu.Lock()
	o.conditions = append(o.conditions, namedCondition{name, cond})
	o.mu.Unlock()
}

// Handle adds a handler to the ops server.
func (o *Ops) Handle(pattern string, h http.Handler) { o.mux.Handle(pattern, h) }

// Handler is the ops server's handler, for tests and for embedding.
func (o *Ops) Handler() http.Handler { return o.mux }

// Ready reports whether every readiness condition holds.
func (o *Ops) Ready() bool {
	ok, _ := o.readiness()
	return ok
}

func (o *Ops) readiness() (bool, []string) {
	o.mu.Lock()
	conds := slices.Clone(o.conditions)
	o.mu.Unlock()
	ready := true
	var lines []string
	for _, c := range conds {
		ok, why := c.cond()
		if ok {
			lines = append(lines, "[+] "+c.name+" ok")
			continue
		}
		ready = false
		lines = append(lines, "[-] "+c.name+" not ready: "+why)
	}
	sort.Strings(lines)
	return ready, lines
}

func (o *Ops) serveReady(w http.ResponseWriter, _ *http.Request) {
	ready, lines := o.readiness()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	fmt.Fprintln(w, strings.Join(lines, "\n"))
	if ready {
		fmt.Fprintln(w, "ready")
	}
}

// Run listens on cfg.Addr and serves until ctx ends, then shuts down within
// cfg.ShutdownTimeout.
func (o *Ops) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", o.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listening for ops endpoints on %s: %w", o.cfg.Addr, err)
	}
	return o.Serve(ctx, ln)
}

// Serve is Run on a listener the caller made.
func (o *Ops) Serve(ctx context.Context, ln net.Listener) error {
	o.logger.Info("serving ops endpoints", "addr", ln.Addr().String(), "pprof", o.cfg.EnablePprof)
	return ServeHTTP(ctx, ln, o.mux, o.cfg.ShutdownTimeout)
}

// ServeHTTP serves h on ln with safe timeouts until ctx ends, then shuts the
// server down gracefully within shutdownTimeout.
func ServeHTTP(ctx context.Context, ln net.Listener, h http.Handler, shutdownTimeout time.Duration) error {
	return Serve(ctx, ln, NewHTTPServer(h), shutdownTimeout)
}

// Serve runs srv on ln until ctx ends, then shuts it down gracefully within
// shutdownTimeout; for servers that need settings NewHTTPServer does not give.
func Serve(ctx context.Context, ln net.Listener, srv *http.Server, shutdownTimeout time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("shutting down server on %s: %w", ln.Addr(), err)
	}
	return nil
}

// NewHTTPServer returns an http.Server with timeouts that keep slow or
// hostile clients from holding connections forever.
func NewHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
}
