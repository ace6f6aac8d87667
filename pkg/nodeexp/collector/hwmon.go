package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// hwmonCollector reports hardware monitoring chips (/sys/class/hwmon):
// temperatures, voltages, fans, power. procfs has no reader for them; the
// chip and sensor names and the unit conversions follow node_exporter's,
// so that its dashboards find the same series.
type hwmonCollector struct {
	sysPath string
	chips   deviceFilter
	sensors deviceFilter // matched against "<chip>;<sensor>"
	logger  *slog.Logger
	descs   descCache
}

var (
	// hwmonFile splits an attribute file name, "temp1_input", into its
	// type ("temp"), number ("1") and property ("input").
	hwmonFile = regexp.MustCompile(`^([^0-9]+)([0-9]*)?(_(.+))?$`)
	// hwmonNameJunk is what node_exporter replaces in chip names.
	hwmonNameJunk = regexp.MustCompile("[^a-z0-9:_]")
)

// hwmonTypes are the sensor types reported.
var hwmonTypes = []string{"vrm", "beep_enable", "update_interval", "in", "cpu", "fan", "pwm", "temp", "curr", "power", "energy", "humidity", "intrusion", "freq"}

var hwmonLabels = []string{"chip", "sensor"}

// errNoHwmon: the node lacks what the collector reads; returned on every
// scrape, so built once.
var errNoHwmon = fmt.Errorf("no hwmon class (/sys/class/hwmon): %w", nodeexp.ErrNoData)

func newHwmonCollector(cfg *Config, logger *slog.Logger) (nodeexp.Collector, error) {
	chips, err := newDeviceFilter(cfg.HwmonChipInclude, cfg.HwmonChipExclude)
	if err != nil {
		return nil, fmt.Errorf("compiling the hwmon chip filters: %w", err)
	}
	sensors, err := newDeviceFilter(cfg.HwmonSensorInclude, cfg.HwmonSensorExclude)
	if err != nil {
		return nil, fmt.Errorf("compiling the hwmon sensor filters: %w", err)
	}
	return &hwmonCollector{sysPath: cfg.SysPath, chips: chips, sensors: sensors, logger: logger}, nil
}

// hwmonCleanName lowers a name and keeps only [a-z0-9:_], trimming
// underscores at its ends.
func hwmonCleanName(s string) string {
	return strings.Trim(hwmonNameJunk.ReplaceAllLiteralString(strings.ToLower(s), "_"), "_")
}

// splitHwmonFile is hwmonFile's match: ok is false for names that do not
// fit (or whose number overflows an int).
func splitHwmonFile(name string) (typ string, num int, prop string, ok bool) {
	m := hwmonFile.FindStringSubmatch(name)
	if m == nil {
		return "", 0, "", false
	}
	if m[2] != "" {
		n, err := strconv.Atoi(m[2])
		if err != nil {
			return "", 0, "", false
		}
		num = n
	}
	return m[1], num, m[4], true
}

type hwmonChip struct {
	dir, base, nameFile string
}

func (c *hwmonCollector) Update(_ context.Context, ch *nodeexp.Sink) error {
	class := filepath.Join(c.sysPath, "class", "hwmon")
	entries, err := os.ReadDir(class)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return errNoHwmon
	case err != nil:
		return err
	}
	var chips []hwmonChip
	bases := map[string]int{}
	names := map[string]int{}
	for _, e := range entries {
		dir := filepath.Join(class, e.Name())
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			continue
		}
		base, err := hwmonChipBase(dir)
		if err != nil {
			c.logger.Debug("failed to derive hwmon chip name", "dir", dir, "err", err)
			continue
		}
		nameFile := ""
		if b, err := readString(filepath.Join(dir, "name")); err == nil {
			nameFile = strings.TrimSpace(b)
		}
		chips = append(chips, hwmonChip{dir: dir, base: base, nameFile: nameFile})
		bases[base]++
		names[base+"\x00"+nameFile]++
	}
	var lastErr error
	for _, chip := range chips {
		// Chips that share a name get the name file's, or else their
		// directory's, as a suffix.
		name := chip.base
		if bases[chip.base] > 1 {
			suffix := hwmonCleanName(chip.nameFile)
			if suffix == "" || names[chip.base+"\x00"+chip.nameFile] > 1 {
				suffix = hwmonCleanName(filepath.Base(chip.dir))
			}
			name = chip.base + "_" + suffix
		}
		if c.chips.ignored(name) {
			continue
		}
		if err := c.updateChip(ch, chip.dir, name); err != nil {
			lastErr = err
		}
	}
	return lastErr
}

// hwmonChipBase names a chip after its device ("platform_coretemp_0"),
// else its name file, else its directory.
func hwmonChipBase(dir string) (string, error) {
	if dev, err := filepath.EvalSymlinks(filepath.Join(dir, "device")); err == nil {
		parent, devName := filepath.Split(dev)
		_, devType := filepath.Split(strings.TrimRight(parent, "/"))
		n, t := hwmonCleanName(devName), hwmonCleanName(devType)
		if t != "" && n != "" {
			return t + "_" + n, nil
		}
		if n != "" {
			return n, nil
		}
	}
	if b, err := readString(filepath.Join(dir, "name")); err == nil && len(b) > 0 {
		if n := hwmonCleanName(b); n != "" {
			return n, nil
		}
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", err
	}
	if n := hwmonCleanName(filepath.Base(real)); n != "" {
		return n, nil
	}
	return "", fmt.Errorf("no monitoring name for %s", dir)
}

// readSensors adds the sensor attributes in dir to data, by sensor
// ("temp1") and property ("input"; "" for a bare "vrm").
func readSensors(dir string, data map[string]map[string]string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		typ, num, prop, ok := splitHwmonFile(e.Name())
		if !ok || !slices.Contains(hwmonTypes, typ) {
			continue
		}
		v, err := readHwmonValue(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // write-only or failing attributes
		}
		sensor := typ + strconv.Itoa(num)
		if data[sensor] == nil {
			data[sensor] = map[string]string{}
		}
		data[sensor][prop] = v
	}
	return nil
}

// readHwmonValue reads an attribute with one read(2) of 128 bytes, as
// node_exporter does: a sensor whose read fails or blocks past that is
// left out rather than read again.
func readHwmonValue(path string) (string, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	var b [128]byte
	n, err := unix.Read(fd, b[:])
	for err == unix.EINTR {
		n, err = unix.Read(fd, b[:])
	}
	if err != nil {
		return "", err
	}
	return strings.Trim(string(b[:n]), "\n"), nil
}

// hwmonFamily is how one sensor property is reported: the family's name
// suffix, help, type and the factor applied to the raw value.
type hwmonFamily struct {
	suffix, help string
	counter      bool
	scale        func(float64) float64
}

func milli(v float64) float64 { return v * 0.001 }
func micro(v float64) float64 { return v / 1000000.0 }
func same(v float64) float64  { return v }

// hwmonFamilyOf decides how a property of a sensor type is reported.
func hwmonFamilyOf(typ, element string) hwmonFamily {
	switch {
	case element == "fault" || element == "alarm":
		return hwmonFamily{"", "Hardware sensor " + element + " status (" + typ + ")", false, same}
	case element == "beep":
		return hwmonFamily{"_enabled", "Hardware monitor sensor has beeping enabled", false, same}
	case typ == "in" || typ == "cpu":
		return hwmonFamily{"_volts", "Hardware monitor for voltage (" + element + ")", false, milli}
	case typ == "temp" && element != "type":
		if element == "" {
			element = "input"
		}
		return hwmonFamily{"_celsius", "Hardware monitor for temperature (" + element + ")", false, milli}
	case typ == "curr":
		return hwmonFamily{"_amps", "Hardware monitor for current (" + element + ")", false, milli}
	case typ == "energy":
		return hwmonFamily{"_joule_total", "Hardware monitor for joules used so far (" + element + ")", true, micro}
	case typ == "power" && element == "accuracy":
		return hwmonFamily{"", "Hardware monitor power meter accuracy, as a ratio", false, micro}
	case typ == "power" && (element == "average_interval" || element == "average_interval_min" || element == "average_interval_max"):
		return hwmonFamily{"_seconds", "Hardware monitor power usage update interval (" + element + ")", false, milli}
	case typ == "power":
		return hwmonFamily{"_watt", "Hardware monitor for power usage in watts (" + element + ")", false, micro}
	case typ == "humidity":
		return hwmonFamily{"", "Hardware monitor for humidity, as a ratio (multiply with 100.0 to get the humidity as a percentage) (" + element + ")", false, micro}
	case typ == "fan" && (element == "input" || element == "min" || element == "max" || element == "target"):
		return hwmonFamily{"_rpm", "Hardware monitor for fan revolutions per minute (" + element + ")", false, same}
	}
	return hwmonFamily{"", "Hardware monitor " + typ + " element " + element, false, same}
}

func (c *hwmonCollector) desc(name, help string, labels []string) *constmetric.Desc {
	return c.descs.getKeyed(name+"\xff"+help, name, help, labels...)
}

func (c *hwmonCollector) updateChip(ch *nodeexp.Sink, dir, chip string) error {
	data := map[string]map[string]string{}
	if err := readSensors(dir, data); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, "device")); err == nil {
		if err := readSensors(filepath.Join(dir, "device"), data); err != nil {
			return err
		}
	}
	if b, err := readString(filepath.Join(dir, "name")); err == nil && len(b) > 0 {
		if n := hwmonCleanName(b); n != "" {
			send(ch, c.desc("node_hwmon_chip_names", "Annotation metric for human-readable chip names", []string{"chip", "chip_name"}), prometheus.GaugeValue, 1, chip, n)
		}
	}
	for sensor, props := range data {
		if c.sensors.ignored(chip + ";" + sensor) {
			continue
		}
		typ, _, _, _ := splitHwmonFile(sensor)
		if label, ok := props["label"]; ok {
			send(ch, c.desc("node_hwmon_sensor_label", "Label for given chip and sensor", []string{"chip", "sensor", "label"}), prometheus.GaugeValue, 1,
				chip, sensor, strings.ToValidUTF8(label, "\uFFFD"))
		}
		switch typ {
		case "beep_enable":
			v := 0.0
			if props[""] == "1" {
				v = 1
			}
			send(ch, c.desc("node_hwmon_beep_enabled", "Hardware beep enabled", hwmonLabels), prometheus.GaugeValue, v, chip, sensor)
			continue
		case "vrm", "update_interval":
			v, err := strconv.ParseFloat(props[""], 64)
			if err != nil {
				continue
			}
			if typ == "vrm" {
				send(ch, c.desc("node_hwmon_voltage_regulator_version", "Hardware voltage regulator", hwmonLabels), prometheus.GaugeValue, v, chip, sensor)
			} else {
				send(ch, c.desc("node_hwmon_update_interval_seconds", "Hardware monitor update interval", hwmonLabels), prometheus.GaugeValue, v*0.001, chip, sensor)
			}
			continue
		}
		prefix := "node_hwmon_" + typ
		for element, raw := range props {
			if element == "label" {
				continue
			}
			name := prefix
			switch {
			case element == "input":
				// "temp1" and "temp1_input" both exist: keep them apart.
				if _, bare := props[""]; bare {
					name += "_input"
				}
			case element != "":
				name += "_" + hwmonCleanName(element)
			}
			v, err := strconv.ParseFloat(raw, 64)
			if err != nil {
				continue
			}
			if typ == "freq" {
				// GPU clocks, named by their label rather than number.
				if label, ok := props["label"]; ok && element == "input" {
					send(ch, c.desc(name+"_freq_mhz", "Hardware monitor for GPU frequency in MHz", hwmonLabels), prometheus.GaugeValue, v/1000000.0,
						chip, hwmonCleanName(label))
				}
				if element == "input" {
					continue
				}
			}
			f := hwmonFamilyOf(typ, element)
			t := prometheus.GaugeValue
			if f.counter {
				t = prometheus.CounterValue
			}
			send(ch, c.desc(name+f.suffix, f.help, hwmonLabels), t, f.scale(v), chip, sensor)
		}
	}
	return nil
}
