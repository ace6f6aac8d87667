package agent

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
)

func TestExecExitCodes(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		wantCode int
		wantErr  string
	}{
		{"success", nil, 0, ""},
		{"help", flag.ErrHelp, 0, ""},
		{"usage error", &UsageError{Err: errors.New("flag provided but not defined: -x")}, 2, "flag provided but not defined"},
		{"runtime error", errors.New("listening on :1: permission denied"), 1, "permission denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			run := func(context.Context, []string, io.Writer) error { return tt.err }
			code := Exec("nodekit-test", run, nil, io.Discard, &stderr)
			if code != tt.wantCode || !strings.Contains(stderr.String(), tt.wantErr) {
				t.Fatalf("Exec = %d, stderr %q; want %d containing %q", code, stderr.String(), tt.wantCode, tt.wantErr)
			}
		})
	}
}

func TestFlagsLogger(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
		want    string
	}{
		{"json by default", nil, "", `"msg":"hello"`},
		{"text", []string{"--log-format=text"}, "", "msg=hello"},
		{"debug level", []string{"--log-level=debug", "--log-format=text"}, "", "level=DEBUG"},
		{"bad level", []string{"--log-level=loud"}, `invalid --log-level "loud"`, ""},
		{"bad format", []string{"--log-format=xml"}, `invalid --log-format "xml"`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f Flags
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			f.Register(fs)
			if err := ParseFlags(fs, tt.args, io.Discard); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			logger, err := f.NewLogger(&out)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("NewLogger error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			logger.Debug("hello")
			logger.Info("hello")
			if !strings.Contains(out.String(), tt.want) {
				t.Fatalf("log output %q does not contain %q", out.String(), tt.want)
			}
		})
	}
}

func TestParseFlagsWrapsUsageErrors(t *testing.T) {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	err := ParseFlags(fs, []string{"--no-such-flag"}, io.Discard)
	var usage *UsageError
	if !errors.As(err, &usage) {
		t.Fatalf("ParseFlags(unknown flag) = %v, want a UsageError", err)
	}
	if err := ParseFlags(flag.NewFlagSet("test", flag.ContinueOnError), []string{"--help"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("ParseFlags(--help) = %v, want flag.ErrHelp", err)
	}
}

func TestHelpGaps(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.String("documented", "", "what it does")
	fs.Bool("v", false, "short boolean")
	fs.Int("silent", 0, "")
	var out strings.Builder
	fs.SetOutput(&out)
	fs.PrintDefaults()
	fs.String("unlisted", "", "added after the help was printed")
	got := HelpGaps(fs, out.String())
	if want := []string{"silent", "unlisted"}; !slices.Equal(got, want) {
		t.Fatalf("HelpGaps = %v, want %v (help:\n%s)", got, want, out.String())
	}
}
