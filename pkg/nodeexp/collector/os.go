package collector

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// osCollector reports os-release(5) of the host (read under --path.rootfs).
type osCollector struct {
	series        seriesCache // label pairs of the series, across scrapes
	paths         []string
	info, version *constmetric.Desc
}

var osVersionRE = regexp.MustCompile(`^[0-9]+\.?[0-9]*`)

func newOSCollector(cfg *Config, _ *slog.Logger) (nodeexp.Collector, error) {
	return &osCollector{
		paths: []string{
			filepath.Join(cfg.RootPath, "etc/os-release"),
			filepath.Join(cfg.RootPath, "usr/lib/os-release"),
		},
		info: constmetric.NewDesc("node_os_info",
			"A metric with a constant '1' value labeled by build_id, id, id_like, image_id, image_version, name, pretty_name, variant, variant_id, version, version_codename, version_id.",
			[]string{"build_id", "id", "id_like", "image_id", "image_version", "name", "pretty_name", "variant", "variant_id", "version", "version_codename", "version_id"}, nil),
		version: constmetric.NewDesc("node_os_version", "Metric containing the major.minor part of the OS version.",
			[]string{"id", "id_like", "name"}, nil),
	}, nil
}

func (c *osCollector) Update(_ context.Context, ch *nodeexp.Sink) error {
	var (
		b   string
		err error
	)
	for _, p := range c.paths {
		if b, err = readString(p); err == nil {
			break
		}
	}
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no os-release file: %w", errors.Join(nodeexp.ErrNoData, err))
	}
	if err != nil {
		return fmt.Errorf("reading os-release: %w", err)
	}
	env := parseOSRelease([]byte(b))
	c.series.send(ch, c.info, prometheus.GaugeValue, 1,
		env["BUILD_ID"], env["ID"], env["ID_LIKE"], env["IMAGE_ID"], env["IMAGE_VERSION"], env["NAME"],
		env["PRETTY_NAME"], env["VARIANT"], env["VARIANT_ID"], env["VERSION"], env["VERSION_CODENAME"], env["VERSION_ID"])
	if v, err := strconv.ParseFloat(osVersionRE.FindString(env["VERSION_ID"]), 64); err == nil && v > 0 {
		c.series.send(ch, c.version, prometheus.GaugeValue, v, env["ID"], env["ID_LIKE"], env["NAME"])
	}
	return nil
}

// parseOSRelease reads the shell-like KEY=value assignments of os-release(5):
// values may be single- or double-quoted, with backslash escapes in the
// latter.
func parseOSRelease(b []byte) map[string]string {
	env := make(map[string]string)
	s := bufio.NewScanner(bytes.NewReader(b))
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		switch {
		case len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"':
			v = v[1 : len(v)-1]
			var sb strings.Builder
			for i := 0; i < len(v); i++ {
				if v[i] == '\\' && i+1 < len(v) {
					i++
				}
				sb.WriteByte(v[i])
			}
			v = sb.String()
		case len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'':
			v = v[1 : len(v)-1]
		}
		env[strings.TrimSpace(k)] = v
	}
	return env
}
