package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// narrator prints the demo's story: sections, steps with their outcome and
// duration, and indented details. It is safe for concurrent use (the signal
// handler prints too).
type narrator struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
}

func newNarrator(w io.Writer) *narrator { return &narrator{w: w, start: time.Now()} }

// Printf prints as is.
func (n *narrator) Printf(format string, args ...any) {
	n.mu.Lock()
	defer n.mu.Unlock()
	fmt.Fprintf(n.w, format, args...)
}

// Section starts a part of the story.
func (n *narrator) Section(title string) {
	n.Printf("\n== %s\n", title)
}

// Detail prints an indented line under the current step.
func (n *narrator) Detail(format string, args ...any) {
	n.Printf("   %s\n", fmt.Sprintf(format, args...))
}

// Block prints text indented by prefix, line by line.
func (n *narrator) Block(prefix, text string) {
	text = strings.TrimRight(text, "\n")
	if text == "" {
		return
	}
	var b strings.Builder
	for _, line := range strings.Split(text, "\n") {
		b.WriteString(prefix)
		b.WriteString(line)
		b.WriteByte('\n')
	}
	n.Printf("%s", b.String())
}

// Step announces what is starting and returns the function that reports how
// it ended.
func (n *narrator) Step(what string) func(err error) {
	t0 := time.Now()
	n.Printf("-> %s ...\n", what)
	return func(err error) {
		took := time.Since(t0).Round(10 * time.Millisecond)
		if err != nil {
			first, rest, _ := strings.Cut(err.Error(), "\n")
			n.Printf("   FAILED after %v: %s\n", took, first)
			n.Block("     | ", rest)
			return
		}
		n.Printf("   ok (%v)\n", took)
	}
}
