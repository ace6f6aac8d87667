package nodeexp

import (
	"bufio"
	"bytes"
	"context"

	dto "github.com/prometheus/client_model/go"
)

// TextAndRegistryText collects one scrape of e and writes it twice, merged
// with self's families: with the text writer and the way promhttp would
// (a Registry's Gather, encoded by expfmt). The writer's error is returned
// when it leaves the scrape to the registry.
func TextAndRegistryText(ctx context.Context, e *Exporter, self []*dto.MetricFamily) (text, registry string, err error) {
	metrics := e.collect(ctx)
	fams, err := textFamilies(metrics)
	if err != nil {
		return "", "", err
	}
	var got bytes.Buffer
	if err := writeText(bufio.NewWriter(&got), fams, self); err != nil {
		return "", "", err
	}
	registry, err = registryTextOf(metrics, self)
	return got.String(), registry, err
}
