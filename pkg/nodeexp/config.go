package nodeexp

import (
	"errors"
	"flag"
	"time"
)

// Config holds the exporter's own settings; the collectors have theirs.
type Config struct {
	// ScrapeTimeout bounds a scrape when Prometheus sends no timeout header,
	// and caps it when it does. 0 means no bound of its own.
	ScrapeTimeout time.Duration
	// ScrapeTimeoutOffset is subtracted from Prometheus' timeout header.
	ScrapeTimeoutOffset time.Duration
}

// DefaultConfig returns the defaults of the command line.
func DefaultConfig() Config {
	return Config{ScrapeTimeout: 10 * time.Second, ScrapeTimeoutOffset: 500 * time.Millisecond}
}

// RegisterFlags binds the exporter's flags to c.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.ScrapeTimeout, "collector.scrape-timeout", c.ScrapeTimeout, "Deadline for all collectors of one scrape when Prometheus sends no X-Prometheus-Scrape-Timeout-Seconds header, and the cap when it does (0: header only).")
	fs.DurationVar(&c.ScrapeTimeoutOffset, "collector.scrape-timeout-offset", c.ScrapeTimeoutOffset, "Subtracted from X-Prometheus-Scrape-Timeout-Seconds so the response reaches Prometheus in time.")
}

// Validate checks the durations.
func (c *Config) Validate() error {
	if c.ScrapeTimeout < 0 || c.ScrapeTimeoutOffset < 0 {
		return errors.New("--collector.scrape-timeout and --collector.scrape-timeout-offset must not be negative")
	}
	return nil
}
