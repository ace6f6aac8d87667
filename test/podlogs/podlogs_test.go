package podlogs

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLayoutAndRotation(t *testing.T) {
	n, err := NewNode(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 21, 10, 0, 0, 120000000, time.UTC)
	c, err := n.Add(Spec{Namespace: "shop", Pod: "web-1", PodUID: "uid-1", Container: "app", ContainerID: "abc", Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if want := filepath.Join(n.Root, "pods", "shop_web-1_uid-1", "app", "0.log"); c.Path != want {
		t.Errorf("path %s, want %s", c.Path, want)
	}
	if target, err := os.Readlink(filepath.Join(n.ContainersDir(), "web-1_shop_app-abc.log")); err != nil || target != c.Path {
		t.Errorf("link -> %q (%v), want %s", target, err, c.Path)
	}
	if c.Stream != "web-1_shop_app-abc" {
		t.Errorf("stream %q", c.Stream)
	}
	if err := c.Print("stdout", "one\ntwo\n"); err != nil {
		t.Fatal(err)
	}
	rotated, err := c.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Print("stderr", "three"); err != nil {
		t.Fatal(err)
	}
	old, _ := os.ReadFile(rotated)
	cur, _ := os.ReadFile(c.Path)
	if want := "2026-11-21T10:00:00.12Z stdout F one\n2026-11-21T10:00:00.12Z stdout F two\n"; string(old) != want {
		t.Errorf("rotated file %q, want %q", old, want)
	}
	if want := "2026-11-21T10:00:00.12Z stderr F three\n"; string(cur) != want {
		t.Errorf("new file %q, want %q", cur, want)
	}
}

func TestLines(t *testing.T) {
	at := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	if got, want := CRILine(at, "stdout", false, "part"), "2026-11-21T10:00:00Z stdout P part\n"; got != want {
		t.Errorf("CRILine = %q, want %q", got, want)
	}
	if got, want := string(AppendCRILayout(nil, FixedTime, at, "stderr", true, []byte("x"))), "2026-11-21T10:00:00.000000000Z stderr F x\n"; got != want {
		t.Errorf("AppendCRILayout = %q, want %q", got, want)
	}
	var d struct{ Log, Stream, Time string }
	if err := json.Unmarshal([]byte(DockerLine(at, "stderr", true, `a "quoted" line`)), &d); err != nil ||
		d.Log != "a \"quoted\" line\n" || d.Stream != "stderr" || d.Time != "2026-11-21T10:00:00Z" {
		t.Errorf("DockerLine decodes to %+v, %v", d, err)
	}
}

// KubeletRotate leaves what the kubelet leaves: 0.log, the last rotation
// plain, older ones compressed, at most maxFiles in all.
func TestKubeletRotate(t *testing.T) {
	n, err := NewNode(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c, err := n.Add(Spec{Namespace: "shop", Pod: "web-1", PodUID: "uid-1", Container: "app", ContainerID: "abc"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var rotated []string
	for i := range 4 {
		if err := c.Print("stdout", fmt.Sprint("line ", i)); err != nil {
			t.Fatal(err)
		}
		r, err := c.KubeletRotate(4)
		if err != nil {
			t.Fatal(err)
		}
		rotated = append(rotated, r)
	}
	got, _ := filepath.Glob(c.Path + "*")
	want := []string{c.Path, rotated[1] + ".gz", rotated[2] + ".gz", rotated[3]}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("files %v, want %v", got, want)
	}
	f, err := os.Open(rotated[2] + ".gz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(zr)
	if err != nil || !strings.HasSuffix(string(data), " stdout F line 2\n") {
		t.Fatalf("compressed rotation: %q %v", data, err)
	}
}
