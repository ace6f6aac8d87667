package logship

import (
	"errors"
	"flag"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/nodekit/nodekit/pkg/logship/batch"
	"github.com/nodekit/nodekit/pkg/logship/naming"
	"github.com/nodekit/nodekit/pkg/logship/tail"
)

// Config is logship's configuration; RegisterFlags binds it to flags.
type Config struct {
	ContainersDir string
	StateDir      string
	ClusterName   string
	NodeName      string
	// LogGroup and LogStream are templates over {cluster}, {node},
	// {namespace}, {pod}, {container}, {container_id}.
	LogGroup      string
	LogStream     string
	RetentionDays int
	// IncludeNamespaces, when not empty, is the only namespaces shipped;
	// ExcludeNamespaces are never shipped.
	IncludeNamespaces []string
	ExcludeNamespaces []string
	// Multiline maps "namespace" or "namespace/container" to the pattern a
	// message's first line matches.
	Multiline     map[string]*regexp.Regexp
	MultilineWait time.Duration
	BatchWait     time.Duration
	MaxBuffer     int64
	MaxEventBytes int
	Rescan        time.Duration
	MetadataWait  time.Duration
	// MaxBackoff caps the wait between retries of a failing CloudWatch
	// call.
	MaxBackoff time.Duration
	Tail       tail.Config
}

// DefaultConfig returns the defaults the flags show.
func DefaultConfig() Config {
	return Config{
		ContainersDir: "/var/log/containers",
		StateDir:      "/var/lib/logship",
		LogGroup:      naming.DefaultGroup,
		LogStream:     naming.DefaultStream,
		MultilineWait: 2 * time.Second,
		BatchWait:     time.Second,
		MaxBuffer:     4 << 20,
		MaxEventBytes: batch.MaxMessage,
		Rescan:        10 * time.Second,
		MetadataWait:  5 * time.Second,
		MaxBackoff:    30 * time.Second,
		Tail:          tail.DefaultConfig(),
	}
}

// listFlag is a comma-separated, repeatable string list.
type listFlag struct{ dst *[]string }

func (l listFlag) String() string {
	if l.dst == nil {
		return ""
	}
	return strings.Join(*l.dst, ",")
}

func (l listFlag) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l.dst = append(*l.dst, v)
		}
	}
	return nil
}

// multilineFlag parses "namespace[/container]=regexp", repeatable.
type multilineFlag struct{ dst *map[string]*regexp.Regexp }

func (m multilineFlag) String() string {
	if m.dst == nil {
		return ""
	}
	var parts []string
	for k, v := range *m.dst {
		parts = append(parts, k+"="+v.String())
	}
	return strings.Join(parts, " ")
}

func (m multilineFlag) Set(s string) error {
	key, expr, ok := strings.Cut(s, "=")
	if !ok || key == "" || expr == "" {
		return fmt.Errorf("multiline %q is not namespace[/container]=regexp", s)
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return fmt.Errorf("multiline pattern for %s: %w", key, err)
	}
	if *m.dst == nil {
		*m.dst = map[string]*regexp.Regexp{}
	}
	(*m.dst)[key] = re
	return nil
}

// RegisterFlags binds c to fs; call it on a Config from DefaultConfig.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.ContainersDir, "containers-dir", c.ContainersDir, "directory of the kubelet's container log symlinks (<pod>_<namespace>_<container>-<id>.log)")
	fs.StringVar(&c.StateDir, "state-dir", c.StateDir, "directory for checkpoints (the offset CloudWatch accepted per file); nothing a restart cannot rebuild")
	fs.StringVar(&c.ClusterName, "cluster-name", c.ClusterName, "cluster name, used by {cluster} in --log-group and --log-stream")
	fs.StringVar(&c.LogGroup, "log-group", c.LogGroup, "log group name template over {cluster}, {node}, {namespace}, {pod}, {container}, {container_id}")
	fs.StringVar(&c.LogStream, "log-stream", c.LogStream, "log stream name template (same placeholders as --log-group); one stream per container")
	fs.IntVar(&c.RetentionDays, "retention-days", c.RetentionDays, "retention set on log groups logship creates (0 = never expire; CloudWatch's allowed values only)")
	fs.Var(listFlag{&c.IncludeNamespaces}, "include-namespaces", "comma-separated namespaces to ship (default: all); repeatable")
	fs.Var(listFlag{&c.ExcludeNamespaces}, "exclude-namespaces", "comma-separated namespaces never shipped; repeatable. Pods opt out with the annotation nodekit.io/logship: \"false\"")
	fs.Var(multilineFlag{&c.Multiline}, "multiline", "namespace[/container]=regexp: join lines into one event until a line matches regexp (e.g. Java stack traces); repeatable")
	fs.DurationVar(&c.MultilineWait, "multiline-wait", c.MultilineWait, "how long an idle multiline message waits for more lines")
	fs.DurationVar(&c.BatchWait, "batch-wait", c.BatchWait, "how long a batch waits to fill before it is sent")
	fs.Int64Var(&c.MaxBuffer, "max-buffer-bytes", c.MaxBuffer, "records held in memory across all streams; reading pauses above it (never drops)")
	fs.IntVar(&c.MaxEventBytes, "max-event-bytes", c.MaxEventBytes, "largest CloudWatch event message; longer lines are split into ordered parts")
	fs.DurationVar(&c.Rescan, "rescan-interval", c.Rescan, "periodic rescan of --containers-dir, a safety net for missed file events")
	fs.DurationVar(&c.MetadataWait, "metadata-wait", c.MetadataWait, "how long a new container's lines wait for its pod's metadata before shipping without labels")
	fs.DurationVar(&c.Tail.PollInterval, "poll-interval", c.Tail.PollInterval, "how often a file at its end is checked for growth and rotation")
	fs.DurationVar(&c.Tail.MaxHold, "max-deleted-hold", c.Tail.MaxHold, "how long a log file the kubelet deleted (rotated away, compressed) is kept open to be read to its end; after that it is let go and its unread lines are counted lost (logship_lost_lines_total)")
	fs.Int64Var(&c.Tail.MaxDeletedBytes, "max-deleted-bytes", c.Tail.MaxDeletedBytes, "disk space of log files the kubelet deleted that logship may keep open, node-wide, to read them to their end while it is behind (the kernel frees that space only when logship lets go); above it the files written longest ago are let go and their unread lines counted lost (logship_lost_lines_total); 0 = no bound but --max-deleted-hold")
}

// Validate checks c.
func (c *Config) Validate() error {
	var errs []error
	if c.ContainersDir == "" {
		errs = append(errs, errors.New("--containers-dir is empty"))
	}
	if c.StateDir == "" {
		errs = append(errs, errors.New("--state-dir is empty"))
	}
	if strings.Contains(c.LogGroup, "{cluster}") || strings.Contains(c.LogStream, "{cluster}") {
		if c.ClusterName == "" {
			errs = append(errs, errors.New("--cluster-name is required by the log group or stream template"))
		}
	}
	if c.LogGroup == "" || c.LogStream == "" {
		errs = append(errs, errors.New("--log-group and --log-stream must not be empty"))
	}
	if c.MaxEventBytes < 1024 || c.MaxEventBytes > batch.MaxMessage {
		errs = append(errs, fmt.Errorf("--max-event-bytes must be within [1024, %d]", batch.MaxMessage))
	}
	if c.MaxBuffer < 2*batch.MaxBytes {
		errs = append(errs, fmt.Errorf("--max-buffer-bytes must be at least %d", 2*batch.MaxBytes))
	}
	if c.Tail.MaxDeletedBytes < 0 || c.Tail.MaxHold <= 0 {
		errs = append(errs, errors.New("--max-deleted-bytes must not be negative and --max-deleted-hold must be positive"))
	}
	if c.BatchWait <= 0 || c.Rescan <= 0 || c.Tail.PollInterval <= 0 || c.MultilineWait <= 0 {
		errs = append(errs, errors.New("--batch-wait, --rescan-interval, --poll-interval and --multiline-wait must be positive"))
	}
	if c.MaxBackoff <= 0 {
		errs = append(errs, errors.New("the maximum backoff must be positive"))
	}
	if c.RetentionDays < 0 {
		errs = append(errs, errors.New("--retention-days must not be negative"))
	}
	return errors.Join(errs...)
}
