package podnames

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		dir          string
		ns, pod, uid string
		ok           bool
	}{
		{"shop_web-7d4b9c_0f6c3f7e-1a2b-4c3d-9e8f-0123456789ab", "shop", "web-7d4b9c", "0f6c3f7e-1a2b-4c3d-9e8f-0123456789ab", true},
		// Static pods: the kubelet's hash of the manifest, no dashes.
		{"kube-system_etcd-node-a_9f86d081884c7d659a2feaa0c55ad015", "kube-system", "etcd-node-a", "9f86d081884c7d659a2feaa0c55ad015", true},
		{"shop_web.v2_0F6C3F7E-1A2B-4C3D-9E8F-0123456789AB", "shop", "web.v2", "0f6c3f7e-1a2b-4c3d-9e8f-0123456789ab", true},
		{"shop_web", "", "", "", false},
		{"shop__uid", "", "", "", false},
		{"_web_uid", "", "", "", false},
		{"shop_web_", "", "", "", false},
		{"shop_web_uid_extra", "", "", "", false},
		{"", "", "", "", false},
		{"shop_web_not-a-uid", "", "", "", false},
		{"\xff_\xfe_abc", "\xff", "\xfe", "abc", true}, // bytes pass through; the collector sanitises label values
	} {
		ns, pod, uid, ok := Parse(tc.dir)
		if ns != tc.ns || pod != tc.pod || uid != tc.uid || ok != tc.ok {
			t.Errorf("Parse(%q) = %q, %q, %q, %v; want %q, %q, %q, %v", tc.dir, ns, pod, uid, ok, tc.ns, tc.pod, tc.uid, tc.ok)
		}
	}
}

func mkdir(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestByUIDFollowsTheDirectory(t *testing.T) {
	root := filepath.Join(t.TempDir(), "pods")
	d := New(root)
	const a, b = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"

	if _, _, ok := d.ByUID(a); ok {
		t.Fatal("lookup in a missing directory succeeded")
	}
	mkdir(t, filepath.Join(root, "shop_web_"+a))
	// Neither pods nor log files: ignored.
	mkdir(t, filepath.Join(root, "not-a-pod"))
	if err := os.WriteFile(filepath.Join(root, "jobs_file_"+b), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if ns, pod, ok := d.ByUID(a); !ok || ns != "shop" || pod != "web" {
		t.Fatalf("ByUID(a) = %q, %q, %v after its directory appeared", ns, pod, ok)
	}
	if _, _, ok := d.ByUID(b); ok {
		t.Fatal("a regular file named like a pod directory was taken for one")
	}
	mkdir(t, filepath.Join(root, "jobs_report_"+b))
	if ns, pod, ok := d.ByUID(b); !ok || ns != "jobs" || pod != "report" {
		t.Fatalf("ByUID(b) = %q, %q, %v for a directory created after the first listing", ns, pod, ok)
	}
	// The whole directory goes away (the kubelet's log volume unmounted):
	// nothing is named from memory any more.
	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := d.ByUID("33333333-3333-3333-3333-333333333333"); ok {
		t.Fatal("unknown uid found")
	}
	if _, _, ok := d.ByUID(a); ok {
		t.Fatal("pod of a removed directory still named")
	}
}

// TestMissRelistsOnlyWhenTheDirectoryMayHaveChanged pins the rule that
// keeps misses cheap without missing a change stamped with the same coarse
// mtime as the previous listing.
func TestMissRelistsOnlyWhenTheDirectoryMayHaveChanged(t *testing.T) {
	root := t.TempDir()
	const a = "11111111-1111-1111-1111-111111111111"
	stamp := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := stamp
	d := New(root)
	d.now = func() time.Time { return now }
	freeze := func() {
		t.Helper()
		if err := os.Chtimes(root, stamp, stamp); err != nil {
			t.Fatal(err)
		}
	}

	// First listing, within the slack of the directory's mtime.
	freeze()
	if _, _, ok := d.ByUID(a); ok {
		t.Fatal("empty directory named a pod")
	}
	// A pod directory created in the same clock tick: same mtime.
	mkdir(t, filepath.Join(root, "shop_web_"+a))
	freeze()
	if _, _, ok := d.ByUID(a); !ok {
		t.Fatal("a directory created in the listing's tick was missed: the listing was too close to the mtime to be trusted")
	}

	// A listing long after the last change is trusted while the mtime
	// stays: a miss does not list again.
	const b = "22222222-2222-2222-2222-222222222222"
	now = stamp.Add(time.Hour)
	if _, _, ok := d.ByUID(b); ok {
		t.Fatal("unknown uid found")
	}
	mkdir(t, filepath.Join(root, "jobs_report_"+b))
	freeze() // pretend the kernel stamped it with the old time
	if _, _, ok := d.ByUID(b); ok {
		t.Fatal("relisted although the directory's mtime said nothing changed")
	}
	// A real change of mtime makes the next miss list again.
	if err := os.Chtimes(root, stamp.Add(time.Minute), stamp.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if ns, pod, ok := d.ByUID(b); !ok || ns != "jobs" || pod != "report" {
		t.Fatalf("ByUID(b) = %q, %q, %v after the directory's mtime changed", ns, pod, ok)
	}
}

// TestCheckReadsTheDirectory: Check must read the directory, not only stat
// it. A file in the directory's place stats fine and cannot be read as a
// directory; a missing one is reported as such for the caller to decide.
// (cmd/nodeexp's tests run the unreadable 0750 root:root case as nobody.)
func TestCheckReadsTheDirectory(t *testing.T) {
	base := t.TempDir()
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(base, "empty")
	full := filepath.Join(base, "full")
	mkdir(t, empty)
	mkdir(t, filepath.Join(full, "shop_web_11111111-1111-1111-1111-111111111111"))
	for _, tc := range []struct {
		name, path string
		wantErr    error // nil: no error
		anyErr     bool
	}{
		{"empty directory", empty, nil, false},
		{"directory with pods", full, nil, false},
		{"missing", filepath.Join(base, "absent"), os.ErrNotExist, true},
		{"a file", file, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := New(tc.path).Check()
			switch {
			case !tc.anyErr && err != nil:
				t.Fatalf("Check() = %v, want nil", err)
			case tc.anyErr && err == nil:
				t.Fatal("Check() = nil, want an error")
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Fatalf("Check() = %v, want %v", err, tc.wantErr)
			case err != nil && !strings.Contains(err.Error(), tc.path):
				t.Fatalf("Check() = %v, which does not name %s", err, tc.path)
			}
		})
	}
}
