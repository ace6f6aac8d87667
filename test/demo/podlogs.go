package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/nodekit/nodekit/test/kubeapi"
)

// containerLog plays the container runtime and the kubelet for one
// container's log, the way containerd and the kubelet lay it out on a node:
//
//	<root>/pods/<namespace>_<pod>_<uid>/<container>/0.log        CRI lines
//	<root>/containers/<pod>_<namespace>_<container>-<id>.log     symlink to it
//
// Rotate renames 0.log to 0.log.<timestamp> and opens a fresh 0.log, as the
// kubelet's container log manager does (the symlink keeps pointing at 0.log).
// Not safe for concurrent use.
type containerLog struct {
	path   string
	link   string
	stream string // the CloudWatch stream logship's default template names
	f      *os.File
	now    func() time.Time
}

func newContainerLog(root string, pod *corev1.Pod, container string, now func() time.Time) (*containerLog, error) {
	id := strings.TrimPrefix(kubeapi.ContainerID(pod, container), "containerd://")
	dir := filepath.Join(root, "pods", fmt.Sprintf("%s_%s_%s", pod.Namespace, pod.Name, pod.UID), container)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating log directory of %s/%s/%s: %w", pod.Namespace, pod.Name, container, err)
	}
	name := fmt.Sprintf("%s_%s_%s-%s", pod.Name, pod.Namespace, container, id)
	c := &containerLog{
		path:   filepath.Join(dir, "0.log"),
		link:   filepath.Join(root, "containers", name+".log"),
		stream: name,
		now:    now,
	}
	if err := c.open(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(c.link), 0o755); err != nil {
		return nil, errorsJoinClose(fmt.Errorf("creating containers directory: %w", err), c.f)
	}
	if err := os.Symlink(c.path, c.link); err != nil {
		return nil, errorsJoinClose(fmt.Errorf("linking %s: %w", c.link, err), c.f)
	}
	return c, nil
}

func (c *containerLog) open() error {
	f, err := os.OpenFile(c.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("opening container log %s: %w", c.path, err)
	}
	c.f = f
	return nil
}

// Write appends one CRI line per message line: what a container printed on
// stream ("stdout" or "stderr"), each line complete (tag F).
func (c *containerLog) Write(stream string, text string) error {
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		b.WriteString(criLine(c.now(), stream, "F", line))
	}
	if _, err := c.f.WriteString(b.String()); err != nil {
		return fmt.Errorf("writing container log %s: %w", c.path, err)
	}
	return nil
}

// Rotate moves 0.log aside and starts a new one; it returns the rotated
// file's path.
func (c *containerLog) Rotate() (string, error) {
	rotated := c.path + "." + c.now().UTC().Format("20060102-150405")
	if err := c.f.Close(); err != nil {
		return "", fmt.Errorf("closing container log %s: %w", c.path, err)
	}
	if err := os.Rename(c.path, rotated); err != nil {
		return "", fmt.Errorf("rotating container log %s: %w", c.path, err)
	}
	return rotated, c.open()
}

// Close closes the open file; the files stay for the reader.
func (c *containerLog) Close() error { return c.f.Close() }

// criLine is one line of the CRI log format the kubelet reads:
// "<RFC3339Nano time> <stream> <P|F> <message>\n".
func criLine(t time.Time, stream, tag, msg string) string {
	return t.UTC().Format(time.RFC3339Nano) + " " + stream + " " + tag + " " + msg + "\n"
}

func errorsJoinClose(err error, f *os.File) error {
	if cerr := f.Close(); cerr != nil {
		return fmt.Errorf("%w (closing: %v)", err, cerr)
	}
	return err
}
