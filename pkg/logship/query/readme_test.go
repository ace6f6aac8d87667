package query

import (
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
)

// readyQueries returns the ```insights blocks of README.md.
func readyQueries(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, block := range strings.Split(string(b), "```insights\n")[1:] {
		q, _, ok := strings.Cut(block, "```")
		if !ok {
			t.Fatalf("unterminated insights block in README.md: %q", block)
		}
		out = append(out, strings.TrimSpace(q))
	}
	return out
}

// TestReadyQueries runs the README's queries against the emulator, so the
// queries SREs copy are known to parse and to mean what the README says.
func TestReadyQueries(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	all := fixture(30)
	e.put(all...)
	queries := readyQueries(t)
	if len(queries) != 3 {
		t.Fatalf("README.md has %d ready queries, want 3", len(queries))
	}
	// What each query's first row must hold.
	errorsByPod := map[string]int{}
	for _, l := range all {
		if l.stream == "stderr" || strings.Contains(strings.ToLower(l.log), "error") {
			errorsByPod[l.ns+"/"+l.pod]++
		}
	}
	topN := 0
	for _, n := range errorsByPod {
		topN = max(topN, n)
	}
	pod := selectLines(all, func(l line) bool { return l.ns == "shop" && strings.HasPrefix(l.pod, "web-7f9c") })
	checks := []func(rows []map[string]string) bool{
		func(rows []map[string]string) bool {
			// Ties make the top pod ambiguous; its count is not.
			return len(rows) == len(errorsByPod) && rows[0]["errors"] == strconv.Itoa(topN) &&
				errorsByPod[rows[0]["kubernetes.namespace_name"]+"/"+rows[0]["kubernetes.pod_name"]] == topN
		},
		func(rows []map[string]string) bool {
			return len(rows) == len(pod) && rows[0]["log"] == pod[0].log && rows[len(rows)-1]["log"] == pod[len(pod)-1].log
		},
		func(rows []map[string]string) bool {
			return len(rows) == 3 && rows[0]["kubernetes.namespace_name"] == "shop" && rows[0]["lines"] == "20"
		},
	}
	for i, q := range queries {
		got, err := e.run(e.deps(), "--cluster", "prod", "--insights", q, "-o", "json")
		if err != nil {
			t.Fatalf("ready query %d: %v\n%s", i, err, q)
		}
		var rows []map[string]string
		for _, s := range strings.Split(strings.TrimSpace(got), "\n") {
			var row map[string]string
			if err := json.Unmarshal([]byte(s), &row); err != nil {
				t.Fatalf("ready query %d row %q: %v", i, s, err)
			}
			rows = append(rows, row)
		}
		if !checks[i](rows) {
			t.Fatalf("ready query %d returned %v\n%s", i, rows, q)
		}
	}
}
