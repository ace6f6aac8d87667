package agent

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// Flags holds the flags every nodekit binary accepts (DESIGN.md's
// command-line contract).
type Flags struct {
	LogLevel    string
	LogFormat   string
	Kubeconfig  string
	NodeName    string
	ShowVersion bool
}

// Register binds the common flags to fs. --node-name defaults to $NODE_NAME,
// which the DaemonSet fills from the downward API.
func (f *Flags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&f.LogFormat, "log-format", "json", "log format: json or text")
	fs.StringVar(&f.Kubeconfig, "kubeconfig", "", "path to a kubeconfig; empty means in-cluster configuration")
	fs.StringVar(&f.NodeName, "node-name", os.Getenv("NODE_NAME"), "name of the node this agent runs on (default $NODE_NAME)")
	fs.BoolVar(&f.ShowVersion, "version", false, "print the version and exit")
}

// ParseLevel accepts the level names of --log-level.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(s))); err != nil {
		return 0, fmt.Errorf("invalid --log-level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// NewLogger builds the logger the flags ask for, writing to w.
func (f *Flags) NewLogger(w io.Writer) (*slog.Logger, error) {
	level, err := ParseLevel(f.LogLevel)
	if err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: level}
	switch f.LogFormat {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("invalid --log-format %q: want json or text", f.LogFormat)
	}
}

// RequireNodeName reports a clear error when --node-name was neither given nor
// found in $NODE_NAME; node-scoped informers cannot work without it.
func (f *Flags) RequireNodeName() error {
	if f.NodeName == "" {
		return fmt.Errorf("--node-name is required (or set $NODE_NAME from the downward API)")
	}
	return nil
}

// HelpGaps lists the flags of fs that help (a command's --help output, as
// flag.PrintDefaults writes it) does not list, or lists without an
// explanation; tests of every command check theirs is empty.
func HelpGaps(fs *flag.FlagSet, help string) []string {
	listed := map[string]bool{}
	for _, line := range strings.Split(help, "\n") {
		if rest, ok := strings.CutPrefix(line, "  -"); ok {
			name, _, _ := strings.Cut(rest, " ")
			name, _, _ = strings.Cut(name, "\t")
			listed[name] = true
		}
	}
	var gaps []string
	fs.VisitAll(func(f *flag.Flag) {
		if !listed[f.Name] || strings.TrimSpace(f.Usage) == "" {
			gaps = append(gaps, f.Name)
		}
	})
	return gaps
}
