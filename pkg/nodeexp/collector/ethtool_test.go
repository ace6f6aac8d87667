package collector

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/sys/unix"

	"github.com/nodekit/nodekit/pkg/nodeexp"
)

// fakeEthtool answers for interfaces by name; a missing entry is an error.
type fakeEthtool struct {
	info  map[string]ethtoolDrvInfo
	stats map[string]map[string]uint64
	links map[string]ethtoolLink
	err   error // for everything not in the maps
}

func (f fakeEthtool) DriverInfo(iface string) (ethtoolDrvInfo, error) {
	if i, ok := f.info[iface]; ok {
		return i, nil
	}
	return ethtoolDrvInfo{}, f.err
}

func (f fakeEthtool) Stats(iface string) (map[string]uint64, error) {
	if s, ok := f.stats[iface]; ok {
		return s, nil
	}
	return nil, f.err
}

func (f fakeEthtool) LinkInfo(iface string) (ethtoolLink, error) {
	if l, ok := f.links[iface]; ok {
		return l, nil
	}
	return ethtoolLink{}, f.err
}

func (fakeEthtool) Close() error { return nil }

// TestEthtool runs the collector on interfaces of a fake driver: ENA's
// allowance counters come out as node_exporter names them, colliding names
// are dropped, the filters apply, and drivers that support nothing do not
// fail the scrape.
func TestEthtool(t *testing.T) {
	ena := fakeEthtool{
		info: map[string]ethtoolDrvInfo{"eth0": {Driver: "ena", Version: "2.8.0g", BusInfo: "0000:00:05.0"}},
		stats: map[string]map[string]uint64{"eth0": {
			"bw_in_allowance_exceeded": 7, "bw_out_allowance_exceeded": 1, "pps_allowance_exceeded": 3,
			"conntrack_allowance_exceeded": 0, "linklocal_allowance_exceeded": 2, "conntrack_allowance_available": 1000,
			"rx_bytes": 4096, "queue_0_tx_cnt": 9, "rx-drops": 1, "rx_drops": 2,
		}},
		links: map[string]ethtoolLink{"eth0": {Supported: 1<<unix.ETHTOOL_LINK_MODE_1000baseT_Full_BIT | 1<<unix.ETHTOOL_LINK_MODE_TP_BIT | 1<<unix.ETHTOOL_LINK_MODE_Autoneg_BIT,
			Advertising: 1 << unix.ETHTOOL_LINK_MODE_1000baseT_Full_BIT, Autoneg: 1}},
		err: unix.EOPNOTSUPP,
	}
	for _, tc := range []struct {
		name    string
		ifaces  []string
		driver  fakeEthtool
		openErr error
		cfg     func(*Config)
		want    string
		names   []string
		absent  []string
		success float64
	}{
		{name: "ENA allowances", ifaces: []string{"eth0", "lo"}, driver: ena, names: []string{"node_ethtool_bw_in_allowance_exceeded",
			"node_ethtool_pps_allowance_exceeded", "node_ethtool_received_bytes_total", "node_ethtool_queue_0_transmitted_cnt", "node_ethtool_info",
			"node_network_supported_speed_bytes", "node_network_supported_port_info", "node_network_autonegotiate"},
			want: `
# HELP node_ethtool_bw_in_allowance_exceeded Network interface bw_in_allowance_exceeded
# TYPE node_ethtool_bw_in_allowance_exceeded untyped
node_ethtool_bw_in_allowance_exceeded{device="eth0"} 7
# HELP node_ethtool_received_bytes_total Network interface bytes received
# TYPE node_ethtool_received_bytes_total untyped
node_ethtool_received_bytes_total{device="eth0"} 4096
# HELP node_network_supported_speed_bytes Combination of speeds and features supported by network device
# TYPE node_network_supported_speed_bytes gauge
node_network_supported_speed_bytes{device="eth0",duplex="full",mode="1000baseT"} 1.25e+08
`, success: 1},
		{name: "metrics-include", ifaces: []string{"eth0"}, driver: ena, cfg: func(c *Config) { c.EthtoolMetricsInclude = "allowance_exceeded$" },
			names: []string{"node_ethtool_pps_allowance_exceeded"}, absent: []string{"node_ethtool_received_bytes_total", "node_ethtool_queue_0_transmitted_cnt"}, success: 1},
		{name: "device-exclude", ifaces: []string{"eth0"}, driver: ena, cfg: func(c *Config) { c.EthtoolDeviceExclude = "^eth" },
			absent: []string{"node_ethtool_info", "node_ethtool_bw_in_allowance_exceeded"}, success: 1},
		{name: "driver supports nothing", ifaces: []string{"veth1"}, driver: fakeEthtool{err: unix.EOPNOTSUPP}, success: 1},
		{name: "no socket", ifaces: []string{"eth0"}, openErr: unix.EMFILE, success: 0},
		{name: "no interfaces", ifaces: nil, driver: ena, success: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			tree := map[string]string{"proc": "<dir>", "sys": "<dir>"}
			for _, i := range tc.ifaces {
				tree[filepath.Join("sys/class/net", i, "operstate")] = "up\n"
			}
			if tc.ifaces != nil {
				files(t, root, tree)
			} else {
				files(t, root, map[string]string{"proc": "<dir>", "sys/class/net": "<dir>"})
			}
			cfg := DefaultConfig()
			cfg.ProcPath, cfg.SysPath = filepath.Join(root, "proc"), filepath.Join(root, "sys")
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			c, err := newEthtoolCollector(&cfg, discard())
			if err != nil {
				t.Fatal(err)
			}
			c.(*ethtoolCollector).open = func() (ethtoolDriver, error) {
				if tc.openErr != nil {
					return nil, tc.openErr
				}
				return tc.driver, nil
			}
			reg := prometheus.NewPedanticRegistry()
			reg.MustRegister(collectorAdapter{c})
			ch := nodeexp.NewSink(1000)
			err = c.Update(t.Context(), ch)
			if (err == nil) != (tc.success == 1) {
				t.Errorf("Update error %v, want success %v", err, tc.success)
			}
			mfs, gerr := reg.Gather()
			if gerr != nil {
				t.Fatalf("gathering: %v", gerr)
			}
			got := map[string]bool{}
			for _, mf := range mfs {
				got[mf.GetName()] = true
			}
			for _, n := range tc.names {
				if !got[n] {
					t.Errorf("%s missing; have %v", n, got)
				}
			}
			for _, n := range tc.absent {
				if got[n] {
					t.Errorf("%s reported", n)
				}
			}
			// rx-drops and rx_drops both sanitise to received_drops: dropped.
			if got["node_ethtool_received_drops"] {
				t.Error("colliding statistics reported")
			}
			if tc.want != "" {
				var names []string
				for _, l := range strings.Split(tc.want, "\n") {
					if n, ok := strings.CutPrefix(l, "# TYPE "); ok {
						names = append(names, strings.Fields(n)[0])
					}
				}
				if err := testutil.GatherAndCompare(reg, strings.NewReader(tc.want), names...); err != nil {
					t.Error(err)
				}
			}
		})
	}
}
