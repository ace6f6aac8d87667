package discover

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestParseName(t *testing.T) {
	tests := []struct {
		name                         string
		pod, ns, container, id, fail string
	}{
		{name: "web-5d8c9b7f4-x2x9k_shop_app-4f5d8c3a9b2e.log", pod: "web-5d8c9b7f4-x2x9k", ns: "shop", container: "app", id: "4f5d8c3a9b2e"},
		{name: "p_ns_side-car-0123.log", pod: "p", ns: "ns", container: "side-car", id: "0123"},
		{name: "p_ns_app-.log", fail: "empty id"},
		{name: "p_ns_app.log", fail: "no id"},
		{name: "p_app-1.log", fail: "two parts"},
		{name: "a_b_c_d-1.log", fail: "four parts"},
		{name: "p_ns_app-1.txt", fail: "suffix"},
		{name: "_ns_app-1.log", fail: "empty pod"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pod, ns, c, id, err := ParseName(tc.name)
			if tc.fail != "" {
				if err == nil {
					t.Fatalf("accepted (%s)", tc.fail)
				}
				return
			}
			if err != nil || pod != tc.pod || ns != tc.ns || c != tc.container || id != tc.id {
				t.Fatalf("got %q %q %q %q %v", pod, ns, c, id, err)
			}
		})
	}
}

func layout(t *testing.T) (containers, pods string) {
	root := t.TempDir()
	containers, pods = filepath.Join(root, "containers"), filepath.Join(root, "pods")
	for _, d := range []string{containers, pods} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return containers, pods
}

func link(t *testing.T, containers, pods, ns, pod, uid, container, id string) string {
	dir := filepath.Join(pods, ns+"_"+pod+"_"+uid, container)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(dir, "0.log")
	if err := os.WriteFile(target, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	name := pod + "_" + ns + "_" + container + "-" + id + ".log"
	if err := os.Symlink(target, filepath.Join(containers, name)); err != nil {
		t.Fatal(err)
	}
	return name
}

func TestScan(t *testing.T) {
	containers, pods := layout(t)
	name := link(t, containers, pods, "shop", "web-1", "uid-1", "app", "abc")
	if err := os.WriteFile(filepath.Join(containers, "garbage.log"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	got, skipped, err := Scan(containers)
	if err != nil {
		t.Fatal(err)
	}
	tg, ok := got[name]
	if !ok || len(got) != 1 || len(skipped) != 1 {
		t.Fatalf("targets %+v skipped %v", got, skipped)
	}
	if tg.PodUID != "uid-1" || tg.Namespace != "shop" || tg.Pod != "web-1" || tg.Container != "app" || tg.ContainerID != "abc" ||
		tg.Path != filepath.Join(pods, "shop_web-1_uid-1", "app", "0.log") || tg.Key() != name {
		t.Fatalf("target %+v", tg)
	}
}

// TestWatcherSeesChanges checks that new and removed links are reported
// through fsnotify (the rescan interval is an hour, so it cannot help).
func TestWatcherSeesChanges(t *testing.T) {
	containers, pods := layout(t)
	w := NewWatcher(containers, time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)))
	syncs := make(chan map[string]Target, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, func(m map[string]Target) { syncs <- m }) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	waitFor := func(cond func(map[string]Target) bool) {
		t.Helper()
		timeout := time.After(30 * time.Second)
		for {
			select {
			case m := <-syncs:
				if cond(m) {
					return
				}
			case <-timeout:
				t.Fatal("watcher did not report the change")
			}
		}
	}
	waitFor(func(m map[string]Target) bool { return len(m) == 0 })
	name := link(t, containers, pods, "shop", "web-1", "uid-1", "app", "abc")
	waitFor(func(m map[string]Target) bool { _, ok := m[name]; return ok })
	if err := os.Remove(filepath.Join(containers, name)); err != nil {
		t.Fatal(err)
	}
	waitFor(func(m map[string]Target) bool { return len(m) == 0 })
}
