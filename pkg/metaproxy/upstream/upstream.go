// Package upstream talks to the node's real instance metadata service on
// metaproxy's behalf: it keeps one IMDSv2 token (cached until shortly before
// it expires, not fetched per request) and proxies the harmless meta-data
// paths with a reverse proxy built once. Requests go out with a fresh header
// set (the pod's own token, X-Forwarded-For and everything else dropped) and
// never through an HTTP proxy from the environment.
package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

const (
	tokenPath      = "/latest/api/token"
	tokenHeader    = "X-Aws-Ec2-Metadata-Token"
	tokenTTLHeader = "X-Aws-Ec2-Metadata-Token-Ttl-Seconds"
)

// Config locates the real metadata service.
type Config struct {
	// Addr is host:port of the metadata service, e.g. 169.254.169.254:80.
	Addr string
	// TokenTTL is requested for metaproxy's own token (default 6h).
	TokenTTL time.Duration
	// Timeout bounds each upstream call (default 2s).
	Timeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Upstream proxies to the metadata service. Safe for concurrent use.
type Upstream struct {
	cfg     Config
	base    *url.URL
	client  *http.Client
	proxy   *httputil.ReverseProxy
	logger  *slog.Logger
	flights singleflight.Group

	mu      sync.Mutex
	token   string
	expires time.Time
}

type tokenKey struct{}

// New validates cfg and builds the proxy; it makes no request.
func New(cfg Config, logger *slog.Logger) (*Upstream, error) {
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return nil, fmt.Errorf("metadata address %q: %w", cfg.Addr, err)
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = 6 * time.Hour
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	transport := &http.Transport{
		Proxy:                 nil, // never via $HTTP_PROXY: the metadata service is link-local
		DialContext:           (&net.Dialer{Timeout: cfg.Timeout}).DialContext,
		ResponseHeaderTimeout: cfg.Timeout,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
	}
	u := &Upstream{
		cfg:    cfg,
		base:   &url.URL{Scheme: "http", Host: cfg.Addr},
		client: &http.Client{Transport: transport, Timeout: cfg.Timeout},
		logger: logger,
	}
	u.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u.base)
			pr.Out.URL.RawQuery = ""
			// Only our token goes up: the pod's headers are not forwarded,
			// nor its body or trailers (headers sent after a chunked body).
			pr.Out.Header = http.Header{}
			pr.Out.Trailer = nil
			pr.Out.Body, pr.Out.ContentLength, pr.Out.TransferEncoding = nil, 0, nil
			if tok, ok := pr.In.Context().Value(tokenKey{}).(string); ok {
				pr.Out.Header.Set(tokenHeader, tok)
			}
		},
		Transport: transport,
		ModifyResponse: func(resp *http.Response) error {
			if resp.StatusCode == http.StatusUnauthorized {
				u.invalidate() // the service restarted or rotated; fetch a new token next time
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			logger.Warn("metadata service request failed", "path", r.URL.Path, "err", err)
			http.Error(w, "metadata service unavailable", http.StatusBadGateway)
		},
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	return u, nil
}

// ServeHTTP proxies r, whose URL.Path the caller has already normalised and
// allowed, with metaproxy's own token.
func (u *Upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tok, err := u.Token(r.Context())
	if err != nil {
		u.logger.Warn("no metadata service token", "err", err)
		http.Error(w, "metadata service unavailable", http.StatusBadGateway)
		return
	}
	u.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tokenKey{}, tok)))
}

// Token returns the cached upstream token, fetching one when it has less than
// a tenth of its lifetime left.
func (u *Upstream) Token(ctx context.Context) (string, error) {
	u.mu.Lock()
	if u.token != "" && u.cfg.Now().Before(u.expires) {
		tok := u.token
		u.mu.Unlock()
		return tok, nil
	}
	u.mu.Unlock()
	ch := u.flights.DoChan("token", func() (any, error) { return u.fetchToken(context.WithoutCancel(ctx)) })
	select {
	case <-ctx.Done():
		return "", ctx.Err()
	case res := <-ch:
		if res.Err != nil {
			return "", res.Err
		}
		return res.Val.(string), nil
	}
}

func (u *Upstream) fetchToken(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, u.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u.base.JoinPath(tokenPath).String(), nil)
	if err != nil {
		return "", fmt.Errorf("building the metadata token request: %w", err)
	}
	ttl := int(u.cfg.TokenTTL / time.Second)
	req.Header.Set(tokenTTLHeader, strconv.Itoa(ttl))
	start := u.cfg.Now()
	resp, err := u.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("fetching a metadata token from %s: %w", u.cfg.Addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return "", fmt.Errorf("reading the metadata token from %s: %w", u.cfg.Addr, err)
	}
	if resp.StatusCode != http.StatusOK || len(body) == 0 {
		return "", fmt.Errorf("fetching a metadata token from %s: status %d", u.cfg.Addr, resp.StatusCode)
	}
	if s := resp.Header.Get(tokenTTLHeader); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 && n < ttl {
			ttl = n
		}
	}
	tok := string(body)
	u.mu.Lock()
	u.token = tok
	u.expires = start.Add(time.Duration(ttl) * time.Second * 9 / 10)
	u.mu.Unlock()
	return tok, nil
}

func (u *Upstream) invalidate() {
	u.mu.Lock()
	u.token = ""
	u.mu.Unlock()
}

// Check reports whether the metadata service answers, for readiness.
func (u *Upstream) Check(ctx context.Context) error {
	tok, err := u.Token(ctx)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.base.JoinPath("/latest/meta-data/").String(), nil)
	if err != nil {
		return fmt.Errorf("building the metadata check request: %w", err)
	}
	req.Header.Set(tokenHeader, tok)
	resp, err := u.client.Do(req)
	if err != nil {
		return fmt.Errorf("checking the metadata service at %s: %w", u.cfg.Addr, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode == http.StatusUnauthorized {
		u.invalidate()
	}
	if resp.StatusCode != http.StatusOK {
		return errors.New("metadata service answered " + resp.Status)
	}
	return nil
}
