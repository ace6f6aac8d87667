// Command minexporter is the smallest exporter made of the libraries
// nodeexp must use: exporter-toolkit serving, client_golang's registry with
// its Go and process collectors (which node_exporter and nodeexp both
// expose), and procfs behind one collector (node_cpu_seconds_total). make
// bench measures its memory beside nodeexp's and node_exporter's: what
// those libraries cost before any of nodeexp's own code.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/procfs"
)

// cpuCollector is node_exporter's cpu collector reduced to its counters.
type cpuCollector struct {
	fs   procfs.FS
	desc *prometheus.Desc
}

func (c cpuCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c cpuCollector) Collect(ch chan<- prometheus.Metric) {
	st, err := c.fs.Stat()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	for i, cpu := range st.CPU {
		n := strconv.FormatInt(i, 10)
		for mode, v := range map[string]float64{"user": cpu.User, "nice": cpu.Nice, "system": cpu.System, "idle": cpu.Idle,
			"iowait": cpu.Iowait, "irq": cpu.IRQ, "softirq": cpu.SoftIRQ, "steal": cpu.Steal} {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, v, n, mode)
		}
	}
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "minexporter:", err)
		os.Exit(1)
	}
}

func run() error {
	var addr, webConfig string
	var systemdSocket bool
	flag.StringVar(&addr, "web.listen-address", ":9100", "address to listen on")
	flag.StringVar(&webConfig, "web.config.file", "", "exporter-toolkit web configuration")
	flag.BoolVar(&systemdSocket, "web.systemd-socket", false, "use the listener systemd hands over")
	flag.Parse()
	fs, err := procfs.NewFS("/proc")
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		cpuCollector{fs: fs, desc: prometheus.NewDesc("node_cpu_seconds_total", "Seconds the CPUs spent in each mode.", []string{"cpu", "mode"}, nil)})
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return web.ListenAndServe(&http.Server{Handler: mux}, &web.FlagConfig{
		WebListenAddresses: &[]string{addr}, WebSystemdSocket: &systemdSocket, WebConfigFile: &webConfig}, logger)
}
