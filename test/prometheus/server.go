// Package prometheus runs Debian's Prometheus server (package prometheus,
// installed by `make deps`) inside a test's network namespace, configured
// as the Prometheus Operator would configure it from deploy/monitoring
// (FromServiceMonitor), and queries it through its HTTP API. It listens
// only inside that namespace and scrapes only what the test names.
package prometheus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"sigs.k8s.io/yaml"
)

// Namespace runs commands and dials inside a network namespace
// (sandbox.Node does).
type Namespace interface {
	Command(ctx context.Context, name string, args ...string) *exec.Cmd
	HTTPClient() *http.Client
}

// Options say where and how the server runs.
type Options struct {
	// Netns is where the server runs and listens.
	Netns Namespace
	// ListenAddr is host:port inside Netns.
	ListenAddr string
	// Dir holds the configuration, the rule files and the TSDB.
	Dir string
	// Config is written to Dir/prometheus.yml.
	Config Config
	// Files are written to Dir (rule files named in Config.RuleFiles).
	Files map[string][]byte
}

// Server is a running Prometheus.
type Server struct {
	url  string
	api  v1.API
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	out  lockedBuffer

	closeOnce sync.Once
	closeErr  error
}

// Binary finds Debian's prometheus server or $PROMETHEUS.
func Binary() (string, error) {
	if p := os.Getenv("PROMETHEUS"); p != "" {
		return p, nil
	}
	p, err := exec.LookPath("prometheus")
	if err != nil {
		return "", fmt.Errorf("prometheus not found: run `make deps` (Debian package prometheus) or set PROMETHEUS")
	}
	return p, nil
}

// Start writes the configuration, checks it with promtool when that is on
// PATH, starts the server and waits until it is ready.
func Start(ctx context.Context, o Options) (_ *Server, err error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	cfg, err := yaml.Marshal(o.Config)
	if err != nil {
		return nil, fmt.Errorf("encoding prometheus.yml: %w", err)
	}
	cfgPath := filepath.Join(o.Dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		return nil, err
	}
	for name, data := range o.Files {
		if err := os.WriteFile(filepath.Join(o.Dir, name), data, 0o644); err != nil {
			return nil, err
		}
	}
	if promtool, err := exec.LookPath("promtool"); err == nil {
		if out, err := exec.CommandContext(ctx, promtool, "check", "config", cfgPath).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("promtool check config: %w\n%s\n%s", err, out, cfg)
		}
	}

	s := &Server{url: "http://" + o.ListenAddr, done: make(chan struct{})}
	s.cmd = o.Netns.Command(context.WithoutCancel(ctx), bin,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(o.Dir, "data"),
		"--web.listen-address="+o.ListenAddr,
		"--log.level=warn",
	)
	s.cmd.Dir = o.Dir
	s.cmd.Stdout, s.cmd.Stderr = &s.out, &s.out
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting prometheus: %w", err)
	}
	go func() {
		s.err = s.cmd.Wait()
		close(s.done)
	}()
	defer func() {
		if err != nil {
			err = errors.Join(err, s.Close())
		}
	}()

	client, err := api.NewClient(api.Config{Address: s.url, Client: o.Netns.HTTPClient()})
	if err != nil {
		return nil, fmt.Errorf("prometheus API client: %w", err)
	}
	s.api = v1.NewAPI(client)
	if err := s.waitReady(ctx, o.Netns.HTTPClient()); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Server) waitReady(ctx context.Context, c *http.Client) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/-/ready", nil)
		if err != nil {
			return err
		}
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-s.done:
			return fmt.Errorf("prometheus exited before it was ready: %v\n%s", s.err, s.Output())
		case <-ctx.Done():
			return fmt.Errorf("prometheus not ready: %w\n%s", ctx.Err(), s.Output())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// API is the server's HTTP API.
func (s *Server) API() v1.API { return s.api }

// URL is the server's base URL, reachable inside its namespace.
func (s *Server) URL() string { return s.url }

// Output is what the server logged (warnings and errors), its last 8 KiB.
func (s *Server) Output() string { return s.out.String() }

// Close stops the server (SIGTERM, then SIGKILL after 10 s).
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		select {
		case <-s.done:
		default:
			_ = s.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-s.done:
			case <-time.After(10 * time.Second):
				_ = s.cmd.Process.Kill()
				<-s.done
				s.closeErr = errors.New("prometheus did not stop within 10 s of SIGTERM")
				return
			}
		}
		var exit *exec.ExitError
		if s.err != nil && !(errors.As(s.err, &exit) && exit.ExitCode() == 0) {
			if errors.As(s.err, &exit) && exit.Sys().(syscall.WaitStatus).Signaled() {
				return
			}
			s.closeErr = fmt.Errorf("prometheus exited with %w\n%s", s.err, s.Output())
		}
	})
	return s.closeErr
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 64<<10 {
		rest := b.buf.Bytes()[b.buf.Len()-8<<10:]
		b.buf = *bytes.NewBuffer(append([]byte(nil), rest...))
	}
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	if len(s) > 8<<10 {
		return "..." + s[len(s)-8<<10:]
	}
	return s
}
