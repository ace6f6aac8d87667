// Package podlogs plays the container runtime and the kubelet for container
// logs, laid out the way containerd and the kubelet lay them out on a node:
//
//	<root>/pods/<namespace>_<pod>_<uid>/<container>/0.log        the runtime's lines
//	<root>/containers/<pod>_<namespace>_<container>-<id>.log     symlink to 0.log
//
// Lines are in the CRI format containerd writes or in docker's json-file
// format; Rotate does what the kubelet's container log manager does. It is
// the one copy of that layout for logship's unit tests, the end-to-end
// tests, the benchmarks and the demo.
package podlogs

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Format is a container runtime's log line format.
type Format int

const (
	// CRI is "<RFC3339Nano time> <stdout|stderr> <P|F> <message>", as
	// containerd and CRI-O write it; P marks a line the runtime split.
	CRI Format = iota
	// Docker is docker's json-file format: {"log","stream","time"} with
	// the message's newline inside "log".
	Docker
)

// Node is a node's log root: its pods and containers directories.
type Node struct {
	Root string
}

// NewNode makes the containers directory under root.
func NewNode(root string) (*Node, error) {
	n := &Node{Root: root}
	if err := os.MkdirAll(n.ContainersDir(), 0o755); err != nil {
		return nil, fmt.Errorf("creating containers directory: %w", err)
	}
	return n, nil
}

// ContainersDir is where the kubelet links container logs from (logship's
// --containers-dir).
func (n *Node) ContainersDir() string { return filepath.Join(n.Root, "containers") }

// PodsDir is where the container logs are (nodeexp reads pod names there).
func (n *Node) PodsDir() string { return filepath.Join(n.Root, "pods") }

// Spec names a container's log.
type Spec struct {
	Namespace, Pod, PodUID, Container string
	// ContainerID is the runtime's ID, without "containerd://".
	ContainerID string
	Format      Format
	// Now timestamps lines written with Print (time.Now when nil).
	Now func() time.Time
}

// Container is one container's log. Its methods are safe for concurrent
// use.
type Container struct {
	// Path is the live file, .../0.log; Link is the symlink to it.
	Path, Link string
	// Stream is "<pod>_<namespace>_<container>-<id>", the CloudWatch
	// stream logship's default template names it.
	Stream string
	Format Format

	now func() time.Time
	mu  sync.Mutex
	f   *os.File
}

// Add lays out a container's log: an empty 0.log and its symlink.
func (n *Node) Add(s Spec) (*Container, error) {
	dir := filepath.Join(n.PodsDir(), fmt.Sprintf("%s_%s_%s", s.Namespace, s.Pod, s.PodUID), s.Container)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating log directory of %s/%s/%s: %w", s.Namespace, s.Pod, s.Container, err)
	}
	stream := fmt.Sprintf("%s_%s_%s-%s", s.Pod, s.Namespace, s.Container, s.ContainerID)
	c := &Container{Path: filepath.Join(dir, "0.log"), Link: filepath.Join(n.ContainersDir(), stream+".log"),
		Stream: stream, Format: s.Format, now: s.Now}
	if c.now == nil {
		c.now = time.Now
	}
	if err := c.open(); err != nil {
		return nil, err
	}
	if err := os.Symlink(c.Path, c.Link); err != nil {
		c.f.Close()
		return nil, fmt.Errorf("linking %s: %w", c.Link, err)
	}
	return c, nil
}

func (c *Container) open() error {
	f, err := os.OpenFile(c.Path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("opening container log %s: %w", c.Path, err)
	}
	c.f = f
	return nil
}

// Write appends data, lines already in the container's format.
func (c *Container) Write(data []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.f.Write(data); err != nil {
		return fmt.Errorf("writing container log %s: %w", c.Path, err)
	}
	return nil
}

// Print appends what a container printed on stream ("stdout" or
// "stderr"): one complete line per line of text, timestamped now.
func (c *Container) Print(stream, text string) error {
	var b []byte
	t := c.now()
	for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		b = c.AppendLine(b, t, stream, true, line)
	}
	return c.Write(b)
}

// AppendLine appends one line in the container's format: msg printed at t
// on stream, final unless the runtime split it (a partial line).
func (c *Container) AppendLine(dst []byte, t time.Time, stream string, final bool, msg string) []byte {
	if c.Format == Docker {
		return AppendDocker(dst, t, stream, final, msg)
	}
	return AppendCRI(dst, t, stream, final, msg)
}

// Rotate does what the kubelet does: 0.log is renamed to
// 0.log.<timestamp> and the runtime reopens a fresh 0.log (the symlink
// keeps pointing at 0.log). It returns the rotated file's path.
func (c *Container) Rotate() (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rotated := c.Path + "." + c.now().UTC().Format("20060102-150405.000000")
	if err := c.f.Close(); err != nil {
		return "", fmt.Errorf("closing container log %s: %w", c.Path, err)
	}
	if err := os.Rename(c.Path, rotated); err != nil {
		return "", fmt.Errorf("rotating container log %s: %w", c.Path, err)
	}
	return rotated, c.open()
}

// KubeletRotate does what the kubelet's container log manager does at a
// rotation with containerLogMaxFiles maxFiles (k8s.io/kubernetes
// pkg/kubelet/logs): it removes leftovers (*.tmp, plain files with a .gz
// twin) and the oldest rotated files beyond maxFiles-2, compresses every
// plain rotated file (0.log.<t> to 0.log.<t>.gz, then deletes the plain
// one), and rotates 0.log (Rotate). A reader behind the runtime thus finds
// the previous rotation compressed and gone.
func (c *Container) KubeletRotate(maxFiles int) (string, error) {
	logs, err := filepath.Glob(c.Path + ".*")
	if err != nil {
		return "", err
	}
	var inuse []string
	for _, l := range logs {
		if strings.HasSuffix(l, ".tmp") || (!strings.HasSuffix(l, ".gz") && slices.Contains(logs, l+".gz")) {
			if err := os.Remove(l); err != nil {
				return "", err
			}
			continue
		}
		inuse = append(inuse, l)
	}
	slices.Sort(inuse)
	for len(inuse) > max(maxFiles-2, 0) {
		if err := os.Remove(inuse[0]); err != nil {
			return "", err
		}
		inuse = inuse[1:]
	}
	for _, l := range inuse {
		if strings.HasSuffix(l, ".gz") {
			continue
		}
		if err := compress(l); err != nil {
			return "", err
		}
	}
	return c.Rotate()
}

// compress writes name.gz as the kubelet does (through name.gz.tmp) and
// deletes name.
func compress(name string) error {
	data, err := os.ReadFile(name)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	if _, err := w.Write(data); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	if err := os.WriteFile(name+".gz.tmp", b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("compressing %s: %w", name, err)
	}
	if err := os.Rename(name+".gz.tmp", name+".gz"); err != nil {
		return err
	}
	return os.Remove(name)
}

// Close closes the runtime's file; the files stay for the reader.
func (c *Container) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.f.Close()
}

// FixedTime is a time layout with all nine fraction digits, for lines of
// an exact length (containerd's RFC3339Nano drops trailing zeros).
const FixedTime = "2006-01-02T15:04:05.000000000Z07:00"

// AppendCRI appends one CRI line, "<time> <stream> <F|P> <msg>\n", with
// the time as containerd writes it (RFC3339Nano, UTC).
func AppendCRI(dst []byte, t time.Time, stream string, final bool, msg string) []byte {
	return AppendCRILayout(dst, time.RFC3339Nano, t, stream, final, msg)
}

// AppendCRILayout is AppendCRI with the time in layout.
func AppendCRILayout[M string | []byte](dst []byte, layout string, t time.Time, stream string, final bool, msg M) []byte {
	tag := " P "
	if final {
		tag = " F "
	}
	dst = t.UTC().AppendFormat(dst, layout)
	dst = append(dst, ' ')
	dst = append(dst, stream...)
	dst = append(dst, tag...)
	dst = append(dst, msg...)
	return append(dst, '\n')
}

// CRILine is AppendCRI as a string.
func CRILine(t time.Time, stream string, final bool, msg string) string {
	return string(AppendCRI(nil, t, stream, final, msg))
}

// AppendDocker appends one json-file line; a final line's message ends in
// the newline the container printed.
func AppendDocker(dst []byte, t time.Time, stream string, final bool, msg string) []byte {
	if final {
		msg += "\n"
	}
	b, _ := json.Marshal(struct {
		Log    string `json:"log"`
		Stream string `json:"stream"`
		Time   string `json:"time"`
	}{msg, stream, t.UTC().Format(time.RFC3339Nano)})
	dst = append(dst, b...)
	return append(dst, '\n')
}

// DockerLine is AppendDocker as a string.
func DockerLine(t time.Time, stream string, final bool, msg string) string {
	return string(AppendDocker(nil, t, stream, final, msg))
}
