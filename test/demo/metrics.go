package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// series picks samples: a name prefix and, optionally, text the line must
// also contain.
type series struct{ prefix, contains string }

// shownSeries are the series of each agent the demo prints, at most
// perPrefix samples each.
var shownSeries = map[string][]series{
	"nodeexp": {
		{"node_load1 ", ""}, {"node_memory_MemAvailable_bytes ", ""}, {"node_cpu_seconds_total{", ""},
		{"node_network_receive_bytes_total{", ""}, {"node_filesystem_avail_bytes{", `mountpoint="/"}`},
	},
	"metaproxy": {{"metaproxy_requests_total", ""}, {"metaproxy_sts_assume_role_total", ""}, {"metaproxy_credential_cache_requests_total", ""}},
	"logship":   {{"logship_lines_read_total", ""}, {"logship_events_shipped_total", ""}, {"logship_dropped_events_total", ""}},
}

const perPrefix = 3

func (d *demo) metrics(ctx context.Context) {
	hc := d.bed.Sandbox.Node().HTTPClient()
	targets := []struct{ agent, url string }{
		{"nodeexp", "http://" + nodeexpAddr + "/metrics"},
		{"metaproxy", "http://" + mpMetrics + "/metrics"},
		{"logship", "http://" + lsMetrics + "/metrics"},
	}
	for _, t := range targets {
		if !d.agentUp(t.agent) {
			d.out.Detail("skipped %s: not running (see above)", t.url)
			continue
		}
		done := d.out.Step("GET " + t.url + " (from the node namespace, as Prometheus would)")
		t0 := time.Now()
		body, err := scrape(ctx, hc, t.url)
		took := time.Since(t0)
		done(err)
		if err != nil {
			d.fail("scraping "+t.agent, err)
			continue
		}
		families, samples, picked := summarize(body, shownSeries[t.agent], perPrefix)
		d.out.Detail("%d metric families, %d samples, scraped in %v; for example:", families, samples, took.Round(time.Millisecond))
		d.out.Block("     | ", strings.Join(picked, "\n"))
		if t.agent == "nodeexp" && families == 0 {
			d.fail("nodeexp scrape", fmt.Errorf("no metric families in %d bytes", len(body)))
		}
	}
}

func scrape(ctx context.Context, hc *http.Client, url string) (string, error) {
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(sctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s: %s", url, resp.Status, oneLine(string(body), 200))
	}
	return string(body), nil
}

// summarize counts the families (# TYPE lines) and samples of a text
// exposition, and picks up to n samples for each series, in their order.
func summarize(body string, prefixes []series, n int) (families, samples int, picked []string) {
	byPrefix := make([][]string, len(prefixes))
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "# TYPE "):
			families++
			continue
		case line == "" || strings.HasPrefix(line, "#"):
			continue
		}
		samples++
		for i, p := range prefixes {
			if strings.HasPrefix(line, p.prefix) && strings.Contains(line, p.contains) && len(byPrefix[i]) < n {
				byPrefix[i] = append(byPrefix[i], line)
				break
			}
		}
	}
	for _, lines := range byPrefix {
		picked = append(picked, lines...)
	}
	return families, samples, picked
}
