package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs/sysfs"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// dmiCollector reports /sys/class/dmi/id (on EC2: the instance type as
// product_name, the hypervisor as system_vendor), read once at start-up
// as node_exporter does: DMI data does not change while the node runs.
type dmiCollector struct {
	metric prometheus.Metric // nil: no DMI on this machine
}

func newDMICollector(cfg *Config, logger *slog.Logger) (nodeexp.Collector, error) {
	fs, err := sysfs.NewFS(cfg.SysPath)
	if err != nil {
		return nil, fmt.Errorf("opening sysfs %q: %w", cfg.SysPath, err)
	}
	dmi, err := fs.DMIClass()
	switch {
	case errors.Is(err, os.ErrNotExist):
		logger.Debug("no DMI information on this platform", "err", err)
		return &dmiCollector{}, nil
	case err != nil:
		return nil, fmt.Errorf("reading DMI information: %w", err)
	}
	fields := map[string]*string{
		"bios_date": dmi.BiosDate, "bios_release": dmi.BiosRelease, "bios_vendor": dmi.BiosVendor, "bios_version": dmi.BiosVersion,
		"board_asset_tag": dmi.BoardAssetTag, "board_name": dmi.BoardName, "board_serial": dmi.BoardSerial, "board_vendor": dmi.BoardVendor,
		"board_version": dmi.BoardVersion, "chassis_asset_tag": dmi.ChassisAssetTag, "chassis_serial": dmi.ChassisSerial,
		"chassis_vendor": dmi.ChassisVendor, "chassis_version": dmi.ChassisVersion, "product_family": dmi.ProductFamily,
		"product_name": dmi.ProductName, "product_serial": dmi.ProductSerial, "product_sku": dmi.ProductSKU,
		"product_uuid": dmi.ProductUUID, "product_version": dmi.ProductVersion, "system_vendor": dmi.SystemVendor,
	}
	var labels, values []string
	for _, l := range slices.Sorted(func(yield func(string) bool) {
		for k := range fields {
			if !yield(k) {
				return
			}
		}
	}) {
		if v := fields[l]; v != nil {
			labels = append(labels, l)
			values = append(values, strings.ToValidUTF8(*v, "\uFFFD"))
		}
	}
	if len(labels) == 0 {
		return &dmiCollector{}, nil
	}
	desc := constmetric.NewDesc("node_dmi_info",
		"A metric with a constant '1' value labeled by bios_date, bios_release, bios_vendor, bios_version, "+
			"board_asset_tag, board_name, board_serial, board_vendor, board_version, chassis_asset_tag, "+
			"chassis_serial, chassis_vendor, chassis_version, product_family, product_name, product_serial, "+
			"product_sku, product_uuid, product_version, system_vendor if provided by DMI.",
		labels, nil)
	return &dmiCollector{metric: desc.MustNew(prometheus.GaugeValue, 1, values...)}, nil
}

func (c *dmiCollector) Update(_ context.Context, ch *nodeexp.Sink) error {
	if c.metric == nil {
		return nodeexp.ErrNoData
	}
	ch.Send(c.metric)
	return nil
}
