// Package creds is metaproxy's STS credential cache. Credentials are keyed by
// (role ARN, external ID, session name); the cache prefetches them for pods it
// is told about (Track), refreshes them well before they expire, joins
// concurrent fetches of one key (singleflight), caps the STS call rate, backs
// off with jitter after errors and throttling, and keeps serving cached
// credentials while STS or the API server is unavailable. It only ever serves
// credentials with at least MinRemaining left, because SDKs such as botocore
// refuse credentials inside their own 10–15 minute refresh window.
//
// Cache methods are safe for concurrent use. Run drives prefetch and refresh
// and must be running for Track to have an effect; Get works without it.
package creds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"

	"github.com/nodekit/nodekit/pkg/awscfg"
)

// AssumeRoler is the one STS call the cache makes; *sts.Client satisfies it.
type AssumeRoler interface {
	AssumeRole(ctx context.Context, in *sts.AssumeRoleInput, optFns ...func(*sts.Options)) (*sts.AssumeRoleOutput, error)
}

// Key identifies one set of credentials.
type Key struct {
	RoleARN     string
	ExternalID  string
	SessionName string
}

func (k Key) flight() string { return k.RoleARN + "\x00" + k.ExternalID + "\x00" + k.SessionName }

// Credentials are temporary AWS credentials as STS returned them.
type Credentials struct {
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
	Expiration      time.Time
	// LastUpdated is when metaproxy obtained them.
	LastUpdated time.Time
}

// ErrBackoff: the last STS call for this key failed and the next is not due yet.
var ErrBackoff = errors.New("STS backoff in progress")

// Config tunes the cache. Zero fields take the defaults shown.
type Config struct {
	// SessionDuration is requested from STS (default 1h, at least MinRemaining+5m).
	SessionDuration time.Duration
	// MinRemaining: credentials with less left are never served (default 15m).
	MinRemaining time.Duration
	// Rate and Burst cap STS calls across all keys (default 10/s, burst 20).
	Rate  rate.Limit
	Burst int
	// BackoffMax caps the wait after failed STS calls (default 5m); the
	// backoff is the SDK's (see awscfg.Backoff): retry n waits a random
	// time below 2^n seconds.
	BackoffMax time.Duration
	// FetchTimeout bounds one AssumeRole call including retries (default 10s).
	FetchTimeout time.Duration
	// ScanInterval is how often Run looks for credentials due for refresh (default 5s).
	ScanInterval time.Duration
	// ProbeInterval: while a key has no servable credentials its pods are
	// refused, so a pod's request calls STS despite the backoff once this
	// long has passed since the last call for the key (default 5s). A
	// recovered STS is then used within seconds, not after a backoff grown
	// over a long outage to minutes; the rate limit still bounds STS calls.
	ProbeInterval time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (c *Config) setDefaults() error {
	if c.SessionDuration == 0 {
		c.SessionDuration = time.Hour
	}
	if c.MinRemaining == 0 {
		c.MinRemaining = 15 * time.Minute
	}
	if c.SessionDuration < c.MinRemaining+5*time.Minute || c.SessionDuration > 12*time.Hour {
		return fmt.Errorf("session duration %v must be between %v and 12h (credentials with less than %v left are not served)", c.SessionDuration, c.MinRemaining+5*time.Minute, c.MinRemaining)
	}
	if c.Rate == 0 {
		c.Rate = 10
	}
	if c.Burst == 0 {
		c.Burst = 20
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = 5 * time.Minute
	}
	if c.FetchTimeout == 0 {
		c.FetchTimeout = 10 * time.Second
	}
	if c.ScanInterval == 0 {
		c.ScanInterval = 5 * time.Second
	}
	if c.ProbeInterval == 0 {
		c.ProbeInterval = 5 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Cache holds credentials per Key.
type Cache struct {
	cfg     Config
	sts     AssumeRoler
	logger  *slog.Logger
	metrics *metrics
	limiter *rate.Limiter
	backoff *awscfg.Backoff
	flights singleflight.Group
	kick    chan struct{}

	mu       sync.Mutex
	entries  map[Key]*entry
	owners   map[string]Key // owner (pod UID) -> key it wants
	inflight map[Key]bool   // background fetches started by Run
}

type entry struct {
	creds    *Credentials
	refs     int // owners tracking this key
	lastUsed time.Time
	failures int
	retryAt  time.Time
	lastErr  error
	failedAt time.Time // of the last failed STS call
}

// New validates cfg and builds a cache; it starts nothing.
func New(cfg Config, client AssumeRoler, reg prometheus.Registerer, logger *slog.Logger) (*Cache, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if client == nil {
		return nil, errors.New("credential cache needs an STS client")
	}
	c := &Cache{
		cfg:      cfg,
		sts:      client,
		logger:   logger,
		limiter:  rate.NewLimiter(cfg.Rate, cfg.Burst),
		backoff:  awscfg.NewBackoff(cfg.BackoffMax),
		kick:     make(chan struct{}, 1),
		entries:  map[Key]*entry{},
		owners:   map[string]Key{},
		inflight: map[Key]bool{},
	}
	m, err := newMetrics(reg, c)
	if err != nil {
		return nil, err
	}
	c.metrics = m
	return c, nil
}

// servable reports whether creds may be handed out at now.
func (c *Cache) servable(cr *Credentials, now time.Time) bool {
	return cr != nil && cr.Expiration.Sub(now) >= c.cfg.MinRemaining
}

// refreshDue: refresh once half the servable part of the lifetime has passed,
// leaving the other half for retries before the credentials become unservable.
func (c *Cache) refreshDue(cr *Credentials, now time.Time) bool {
	if cr == nil {
		return true
	}
	lifetime := cr.Expiration.Sub(cr.LastUpdated)
	return cr.Expiration.Sub(now) < c.cfg.MinRemaining+(lifetime-c.cfg.MinRemaining)/2
}

// Get returns credentials for key with at least MinRemaining left, from the
// cache when possible, else from STS (joining a fetch already in flight).
func (c *Cache) Get(ctx context.Context, key Key) (Credentials, error) {
	now := c.cfg.Now()
	c.mu.Lock()
	e := c.entry(key)
	e.lastUsed = now
	if c.servable(e.creds, now) {
		cr := *e.creds
		c.mu.Unlock()
		c.metrics.cache.WithLabelValues("hit").Inc()
		c.metrics.remaining.Observe(cr.Expiration.Sub(now).Seconds())
		return cr, nil
	}
	if e.lastErr != nil && now.Before(e.retryAt) && now.Sub(e.failedAt) < c.cfg.ProbeInterval {
		err := e.lastErr
		c.mu.Unlock()
		c.metrics.cache.WithLabelValues("backoff").Inc()
		return Credentials{}, fmt.Errorf("credentials for %s: %w (last error: %w)", key.RoleARN, ErrBackoff, err)
	}
	c.mu.Unlock()
	c.metrics.cache.WithLabelValues("miss").Inc()

	ch := c.flights.DoChan(key.flight(), func() (any, error) {
		// A fetch serves every waiting caller, so one caller going away must
		// not cancel it.
		return c.fetchIfNeeded(context.WithoutCancel(ctx), key)
	})
	select {
	case <-ctx.Done():
		return Credentials{}, fmt.Errorf("waiting for credentials for %s: %w", key.RoleARN, ctx.Err())
	case res := <-ch:
		if res.Err != nil {
			return Credentials{}, res.Err
		}
		cr := res.Val.(Credentials)
		c.metrics.remaining.Observe(cr.Expiration.Sub(c.cfg.Now()).Seconds())
		return cr, nil
	}
}

// entry returns key's entry, creating it. c.mu must be held.
func (c *Cache) entry(key Key) *entry {
	e, ok := c.entries[key]
	if !ok {
		e = &entry{}
		c.entries[key] = e
	}
	return e
}

// fetchIfNeeded returns credentials a flight that just ended stored, so a
// caller that missed the cache an instant before does not call STS again.
func (c *Cache) fetchIfNeeded(ctx context.Context, key Key) (Credentials, error) {
	c.mu.Lock()
	if e := c.entries[key]; e != nil && c.servable(e.creds, c.cfg.Now()) {
		cr := *e.creds
		c.mu.Unlock()
		return cr, nil
	}
	c.mu.Unlock()
	return c.fetch(ctx, key)
}

// fetch calls STS once (after the rate limiter) and records the outcome.
func (c *Cache) fetch(ctx context.Context, key Key) (Credentials, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.FetchTimeout)
	defer cancel()
	if err := c.limiter.Wait(ctx); err != nil {
		return Credentials{}, fmt.Errorf("waiting for the STS rate limit for %s: %w", key.RoleARN, err)
	}
	in := &sts.AssumeRoleInput{
		RoleArn:         aws.String(key.RoleARN),
		RoleSessionName: aws.String(key.SessionName),
		DurationSeconds: aws.Int32(int32(c.cfg.SessionDuration / time.Second)),
	}
	if key.ExternalID != "" {
		in.ExternalId = aws.String(key.ExternalID)
	}
	start := time.Now() // wall time for the latency metric, whatever the injected clock
	out, err := c.sts.AssumeRole(ctx, in)
	c.metrics.stsLatency.Observe(time.Since(start).Seconds())
	now := c.cfg.Now()
	if err == nil && (out == nil || out.Credentials == nil || out.Credentials.Expiration == nil) {
		err = errors.New("STS answered without credentials")
	}
	if err != nil {
		class := awscfg.Classify(err)
		c.mu.Lock()
		e := c.entry(key)
		e.failures++
		wait := c.backoff.Delay(e.failures, err)
		e.retryAt, e.lastErr, e.failedAt = now.Add(wait), err, now
		c.mu.Unlock()
		c.metrics.sts.WithLabelValues(string(class)).Inc()
		c.metrics.backoffs.Inc()
		c.logger.Warn("assuming role failed; backing off", "role", key.RoleARN, "session", key.SessionName, "class", class, "retry_in", wait, "err", err)
		return Credentials{}, fmt.Errorf("assuming role %s: %w", key.RoleARN, err)
	}
	cr := Credentials{
		AccessKeyID:     aws.ToString(out.Credentials.AccessKeyId),
		SecretAccessKey: aws.ToString(out.Credentials.SecretAccessKey),
		SessionToken:    aws.ToString(out.Credentials.SessionToken),
		Expiration:      out.Credentials.Expiration.UTC(),
		LastUpdated:     now.UTC(),
	}
	c.metrics.sts.WithLabelValues("success").Inc()
	c.mu.Lock()
	e := c.entry(key)
	e.creds, e.failures, e.lastErr, e.retryAt = &cr, 0, nil, time.Time{}
	c.mu.Unlock()
	if !c.servable(&cr, now) {
		c.logger.Error("STS returned credentials too short-lived to serve", "role", key.RoleARN, "expiration", cr.Expiration, "min_remaining", c.cfg.MinRemaining)
		return Credentials{}, fmt.Errorf("credentials for %s expire at %v, less than %v away", key.RoleARN, cr.Expiration, c.cfg.MinRemaining)
	}
	c.logger.Debug("assumed role", "role", key.RoleARN, "session", key.SessionName, "expiration", cr.Expiration)
	return cr, nil
}

// Track records that owner (a pod UID) uses key, replacing what it used
// before, so its credentials are prefetched now and kept fresh while tracked.
func (c *Cache) Track(owner string, key Key) {
	c.mu.Lock()
	old, had := c.owners[owner]
	if had && old == key {
		c.mu.Unlock()
		return
	}
	if had {
		c.release(old)
	}
	c.owners[owner] = key
	e := c.entry(key)
	e.refs++
	e.lastUsed = c.cfg.Now()
	due := c.refreshDue(e.creds, c.cfg.Now())
	c.mu.Unlock()
	if due {
		select {
		case c.kick <- struct{}{}:
		default:
		}
	}
}

// Untrack forgets owner; its credentials stay cached until they go unused.
func (c *Cache) Untrack(owner string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if key, ok := c.owners[owner]; ok {
		delete(c.owners, owner)
		c.release(key)
	}
}

func (c *Cache) release(key Key) {
	if e, ok := c.entries[key]; ok && e.refs > 0 {
		e.refs--
	}
}

// Run prefetches and refreshes credentials until ctx ends, then waits for the
// fetches it started.
func (c *Cache) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	ticker := time.NewTicker(c.cfg.ScanInterval)
	defer ticker.Stop()
	for {
		for _, key := range c.scan() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.refresh(ctx, key)
			}()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		case <-c.kick:
		}
	}
}

// refresh fetches key through the same single flight as Get.
func (c *Cache) refresh(ctx context.Context, key Key) {
	defer func() {
		c.mu.Lock()
		delete(c.inflight, key)
		c.mu.Unlock()
	}()
	ch := c.flights.DoChan(key.flight(), func() (any, error) { return c.fetch(ctx, key) })
	select {
	case <-ctx.Done():
	case <-ch: // errors are logged and counted by fetch
	}
}

// scan drops entries nobody uses any more and returns the keys due for a
// fetch, marking them in flight.
func (c *Cache) scan() []Key {
	now := c.cfg.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	var due []Key
	for key, e := range c.entries {
		idle := now.Sub(e.lastUsed) > c.cfg.SessionDuration
		if e.refs == 0 && idle {
			delete(c.entries, key)
			continue
		}
		if c.inflight[key] || now.Before(e.retryAt) || !c.refreshDue(e.creds, now) {
			continue
		}
		c.inflight[key] = true
		due = append(due, key)
	}
	return due
}

// Lookup returns cached credentials without calling STS, for tests and status.
func (c *Cache) Lookup(key Key) (Credentials, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || e.creds == nil {
		return Credentials{}, false
	}
	return *e.creds, true
}

func (c *Cache) stats() (entries, backingOff int) {
	now := c.cfg.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.entries {
		if e.lastErr != nil && now.Before(e.retryAt) {
			backingOff++
		}
	}
	return len(c.entries), backingOff
}
