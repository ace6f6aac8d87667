package collector

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestAnyEntry(t *testing.T) {
	dir := t.TempDir()
	files(t, dir, map[string]string{"empty": "<dir>", "zones/cooling_device0/type": "Processor\n", "zones/thermal_zone3": "<dir>"})
	tree := map[string]string{}
	for i := range 300 { // more than one getdents buffer
		tree["many/entry"+strconv.Itoa(i)] = ""
	}
	tree["many/zzz_last"] = ""
	files(t, dir, tree)
	for _, tc := range []struct {
		dir    string
		prefix string // "!x": any entry but x
		want   bool
		err    error
	}{
		{"empty", "", false, nil},
		{"zones", "thermal_zone", true, nil},
		{"zones", "cooling_device", true, nil},
		{"zones", "policy", false, nil},
		{"zones", "!thermal_zone3", true, nil},
		{"empty", "!stats", false, nil},
		{"many", "zzz_", true, nil},
		{"absent", "", false, os.ErrNotExist},
		{"zones/cooling_device0/type", "", false, errors.New("not a directory")},
	} {
		match := prefixed(tc.prefix)
		if n, ok := strings.CutPrefix(tc.prefix, "!"); ok {
			match = except(n)
		}
		got, err := anyEntry(filepath.Join(dir, tc.dir), match)
		switch {
		case tc.err == nil && err != nil, tc.err != nil && err == nil:
			t.Errorf("anyEntry(%s, %q) error %v, want %v", tc.dir, tc.prefix, err, tc.err)
		case errors.Is(tc.err, os.ErrNotExist) && !errors.Is(err, os.ErrNotExist):
			t.Errorf("anyEntry(%s) error %v, want not-exist", tc.dir, err)
		case got != tc.want:
			t.Errorf("anyEntry(%s, %q) = %v, want %v", tc.dir, tc.prefix, got, tc.want)
		}
	}
}
