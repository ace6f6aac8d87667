package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs/sysfs"

	"github.com/nodekit/nodekit/pkg/nodeexp"
)

// powerSupplyClassCollector reports batteries and power supplies
// (/sys/class/power_supply), each attribute as node_power_supply_<name>.
type powerSupplyClassCollector struct {
	fs      sysfs.FS
	sysPath string
	ignore  *regexp.Regexp
	descs   descCache
}

func newPowerSupplyClassCollector(cfg *Config, _ *slog.Logger) (nodeexp.Collector, error) {
	fs, err := sysfs.NewFS(cfg.SysPath)
	if err != nil {
		return nil, fmt.Errorf("opening sysfs %q: %w", cfg.SysPath, err)
	}
	re, err := regexp.Compile(cfg.PowerSupplyIgnored)
	if err != nil {
		return nil, fmt.Errorf("compiling powersupply ignored-supplies: %w", err)
	}
	return &powerSupplyClassCollector{fs: fs, sysPath: cfg.SysPath, ignore: re}, nil
}

func (c *powerSupplyClassCollector) Update(_ context.Context, ch *nodeexp.Sink) error {
	if any, err := anyEntry(filepath.Join(c.sysPath, "class/power_supply"), except()); err == nil && !any {
		return nil
	}
	class, err := c.fs.PowerSupplyClass()
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("no power supplies: %w", errors.Join(nodeexp.ErrNoData, err))
	case err != nil:
		return fmt.Errorf("could not get power_supply class info: %w", err)
	}
	for name, p := range class {
		if c.ignore.MatchString(name) {
			continue
		}
		// Plain values, then micro-units (µA, µV, µWh...) as units, then
		// tenths of a degree as degrees, as node_exporter scales them.
		for _, group := range []struct {
			divisor float64
			values  map[string]*int64
		}{
			{1, map[string]*int64{
				"authentic": p.Authentic, "calibrate": p.Calibrate, "capacity": p.Capacity, "capacity_alert_max": p.CapacityAlertMax,
				"capacity_alert_min": p.CapacityAlertMin, "cyclecount": p.CycleCount, "online": p.Online, "present": p.Present,
				"time_to_empty_seconds": p.TimeToEmptyNow, "time_to_full_seconds": p.TimeToFullNow,
			}},
			{1e6, map[string]*int64{
				"current_boot": p.CurrentBoot, "current_max": p.CurrentMax, "current_ampere": p.CurrentNow, "energy_empty": p.EnergyEmpty,
				"energy_empty_design": p.EnergyEmptyDesign, "energy_full": p.EnergyFull, "energy_full_design": p.EnergyFullDesign,
				"energy_watthour": p.EnergyNow, "voltage_boot": p.VoltageBoot, "voltage_max": p.VoltageMax, "voltage_max_design": p.VoltageMaxDesign,
				"voltage_min": p.VoltageMin, "voltage_min_design": p.VoltageMinDesign, "voltage_volt": p.VoltageNow, "voltage_ocv": p.VoltageOCV,
				"charge_control_limit": p.ChargeControlLimit, "charge_control_limit_max": p.ChargeControlLimitMax, "charge_counter": p.ChargeCounter,
				"charge_empty": p.ChargeEmpty, "charge_empty_design": p.ChargeEmptyDesign, "charge_full": p.ChargeFull,
				"charge_full_design": p.ChargeFullDesign, "charge_ampere": p.ChargeNow, "charge_term_current": p.ChargeTermCurrent,
				"constant_charge_current": p.ConstantChargeCurrent, "constant_charge_current_max": p.ConstantChargeCurrentMax,
				"constant_charge_voltage": p.ConstantChargeVoltage, "constant_charge_voltage_max": p.ConstantChargeVoltageMax,
				"precharge_current": p.PrechargeCurrent, "input_current_limit": p.InputCurrentLimit, "power_watt": p.PowerNow,
			}},
			{10, map[string]*int64{
				"temp_celsius": p.Temp, "temp_alert_max_celsius": p.TempAlertMax, "temp_alert_min_celsius": p.TempAlertMin,
				"temp_ambient_celsius": p.TempAmbient, "temp_ambient_max_celsius": p.TempAmbientMax, "temp_ambient_min_celsius": p.TempAmbientMin,
				"temp_max_celsius": p.TempMax, "temp_min_celsius": p.TempMin,
			}},
		} {
			for field, v := range group.values {
				if v == nil {
					continue
				}
				d := c.descs.get("node_power_supply_"+field, field+" value of /sys/class/power_supply/<power_supply>.", "power_supply")
				val := float64(*v)
				if group.divisor != 1 {
					val /= group.divisor
				}
				send(ch, d, prometheus.GaugeValue, val, p.Name)
			}
		}
		// The info series carries the text attributes the supply has:
		// its label names differ from one supply to the next.
		var labels, values []string
		for _, kv := range [...][2]string{
			{"capacity_level", p.CapacityLevel}, {"charge_type", p.ChargeType}, {"health", p.Health}, {"manufacturer", p.Manufacturer},
			{"model_name", p.ModelName}, {"power_supply", p.Name}, {"scope", p.Scope}, {"serial_number", p.SerialNumber},
			{"status", p.Status}, {"technology", p.Technology}, {"type", p.Type}, {"usb_type", p.UsbType},
		} {
			if kv[1] != "" {
				labels = append(labels, kv[0])
				values = append(values, strings.ToValidUTF8(kv[1], "\uFFFD"))
			}
		}
		d := c.descs.getKeyed("info "+strings.Join(labels, ","), "node_power_supply_info", "info of /sys/class/power_supply/<power_supply>.", labels...)
		send(ch, d, prometheus.GaugeValue, 1, values...)
	}
	return nil
}
