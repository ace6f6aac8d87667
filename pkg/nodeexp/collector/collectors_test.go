package collector

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/test/fixturetree"
)

// sharedTree is node_exporter's fixture tree, unpacked once for the
// collectors' table tests.
var sharedTree = struct {
	once sync.Once
	tree fixturetree.Tree
	err  error
}{}

func fixtureTreeOnce(t *testing.T) fixturetree.Tree {
	t.Helper()
	sharedTree.once.Do(func() {
		// Unpacked into a directory of its own, removed by TestMain: it
		// outlives the first test that asks.
		dir, err := os.MkdirTemp("", "nodeexp-fixture-tree-")
		if err != nil {
			sharedTree.err = err
			return
		}
		treeDirs = append(treeDirs, dir)
		sharedTree.tree, sharedTree.err = fixturetree.Unpack(context.Background(), dir)
	})
	if sharedTree.err != nil {
		t.Fatalf("node_exporter's fixture tree (from the Go module proxy): %v", sharedTree.err)
	}
	return sharedTree.tree
}

// treeDirs are removed after the tests.
var treeDirs []string

func TestMain(m *testing.M) {
	code := m.Run()
	for _, d := range treeDirs {
		os.RemoveAll(d)
	}
	os.Exit(code)
}

// scrapeOne runs one collector under the exporter, as a scrape does, and
// returns the families and the collector's node_scrape_collector_success.
// The scrape itself must never fail.
func scrapeOne(t *testing.T, name string, cfg Config) (map[string]*dto.MetricFamily, float64) {
	t.Helper()
	cfg.DisableDefaults = true
	cfg.Collectors = map[string]bool{name: true}
	cs, err := New(cfg, discard())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e, err := nodeexp.NewExporter(nodeexp.DefaultConfig(), cs, discard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	mfs, err := e.Gatherer(t.Context()).Gather()
	if err != nil {
		t.Fatalf("the scrape failed: %v", err)
	}
	out := map[string]*dto.MetricFamily{}
	success := -1.0
	for _, mf := range mfs {
		out[mf.GetName()] = mf
		if mf.GetName() == "node_scrape_collector_success" {
			success = mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return out, success
}

// files writes a tree of files under root: path -> content. A content of
// "<dir>" makes a directory, which fails to read as a file.
func files(t *testing.T, root string, fs map[string]string) {
	t.Helper()
	for p, content := range fs {
		p = filepath.Join(root, p)
		if content == "<dir>" {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestNewCollectors runs each collector node_exporter added since nodeexp's
// first 26 on node_exporter's fixture tree, on a tree without its files,
// and on trees whose files are malformed or unreadable: a collector that
// cannot read its files reports node_scrape_collector_success 0, and the
// scrape never fails. (TestFixtureTreeSideBySide compares the fixture
// tree's values with node_exporter's.)
func TestNewCollectors(t *testing.T) {
	type tc struct {
		collector string
		name      string
		// tree, when set, writes the case's tree under a root of its own
		// (proc/ and sys/ under it); unset, the case runs on node_exporter's
		// fixture tree.
		tree     map[string]string
		success  float64
		families []string // present with at least one series
	}
	cases := []tc{
		{"bcache", "fixture tree", nil, 1, []string{"node_bcache_cache_hits_total", "node_bcache_priority_stats_unused_percent"}},
		{"bcache", "no bcache", map[string]string{}, 1, nil},
		{"bcache", "malformed stats", map[string]string{"sys/fs/bcache/deaddd54-c735-46d5-868e-f331c5fd7c74/average_key_size": "not a size"}, 0, nil},
		{"bcachefs", "fixture tree", nil, 1, []string{"node_bcachefs_info", "node_bcachefs_device_io_done_bytes_total"}},
		{"bcachefs", "no bcachefs", map[string]string{}, 0, nil},
		{"bcachefs", "malformed counter", map[string]string{"sys/fs/bcachefs/4fd6d4a5-d234-4d2f-a4a6-1ad5b6a8d24b/counters/io_read": "garbage\n"}, 0, nil},
		{"btrfs", "fixture tree", nil, 1, []string{"node_btrfs_info", "node_btrfs_allocation_ratio", "node_btrfs_device_size_bytes"}},
		{"btrfs", "no btrfs", map[string]string{}, 1, nil},
		{"btrfs", "malformed allocation", map[string]string{
			"sys/fs/btrfs/0abb23a9-579b-43e6-ad30-227ef47fcb9d/label":                            "fixture\n",
			"sys/fs/btrfs/0abb23a9-579b-43e6-ad30-227ef47fcb9d/allocation/global_rsv_size":       "many\n",
			"sys/fs/btrfs/0abb23a9-579b-43e6-ad30-227ef47fcb9d/allocation/data/bytes_may_use":    "0\n",
			"sys/fs/btrfs/0abb23a9-579b-43e6-ad30-227ef47fcb9d/devices/loop25/size":              "20971520\n",
			"sys/fs/btrfs/0abb23a9-579b-43e6-ad30-227ef47fcb9d/allocation/data/raid0/used_bytes": "x\n",
		}, 0, nil},
		{"cpufreq", "fixture tree", nil, 1, []string{"node_cpu_scaling_frequency_hertz", "node_cpu_scaling_governor"}},
		{"cpufreq", "no cpus", map[string]string{}, 0, nil},
		{"cpufreq", "malformed frequency", map[string]string{
			"sys/devices/system/cpu/offline":                       "\n",
			"sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq": "fast\n",
			"sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq": "3000000\n",
			"sys/devices/system/cpu/cpu0/cpufreq/scaling_governor": "performance\n",
		}, 0, nil},
		{"dmi", "fixture tree", nil, 1, []string{"node_dmi_info"}},
		{"dmi", "no dmi", map[string]string{}, 0, nil},
		{"dmmultipath", "fixture tree", nil, 1, []string{"node_dmmultipath_device_info", "node_dmmultipath_path_state"}},
		{"dmmultipath", "no block devices", map[string]string{}, 0, nil},
		{"dmmultipath", "malformed size", map[string]string{
			"sys/block/dm-0/dm/uuid": "mpath-3600\n", "sys/block/dm-0/dm/name": "mpatha\n", "sys/block/dm-0/dm/suspended": "0\n",
			"sys/block/dm-0/size": "big\n",
		}, 0, nil},
		{"edac", "fixture tree", nil, 1, []string{"node_edac_correctable_errors_total", "node_edac_csrow_correctable_errors_total"}},
		{"edac", "no edac", map[string]string{}, 1, nil},
		{"edac", "malformed count", map[string]string{"sys/devices/system/edac/mc/mc0/ce_count": "lots\n"}, 0, nil},
		{"fibrechannel", "fixture tree", nil, 1, []string{"node_fibrechannel_info", "node_fibrechannel_rx_frames_total"}},
		{"fibrechannel", "no fibre channel", map[string]string{}, 0, nil},
		{"fibrechannel", "unreadable attribute", map[string]string{"sys/class/fc_host/host0/speed": "<dir>"}, 0, nil},
		{"hwmon", "fixture tree", nil, 1, []string{"node_hwmon_temp_celsius", "node_hwmon_chip_names"}},
		{"hwmon", "no hwmon", map[string]string{}, 0, nil},
		{"hwmon", "unreadable chip", map[string]string{"sys/class/hwmon/hwmon0/name": "coretemp\n", "sys/class/hwmon/hwmon0/device": "not a directory"}, 0, nil},
		{"infiniband", "fixture tree", nil, 1, []string{"node_infiniband_info", "node_infiniband_port_data_received_bytes_total"}},
		{"infiniband", "no infiniband", map[string]string{}, 0, nil},
		{"infiniband", "malformed state", map[string]string{"sys/class/infiniband/mlx4_0/board_id": "SM_1141000001000\n",
			"sys/class/infiniband/mlx4_0/fw_ver": "2.31.5050\n", "sys/class/infiniband/mlx4_0/hca_type": "MT4099\n",
			"sys/class/infiniband/mlx4_0/ports/1/state": "4: ACTIVE\n", "sys/class/infiniband/mlx4_0/ports/1/phys_state": "5: LinkUp\n",
			"sys/class/infiniband/mlx4_0/ports/1/rate": "forty\n"}, 0, nil},
		{"ipvs", "fixture tree", nil, 1, []string{"node_ipvs_connections_total", "node_ipvs_backend_weight"}},
		{"ipvs", "no ipvs", map[string]string{}, 0, nil},
		{"ipvs", "malformed stats", map[string]string{"proc/net/ip_vs_stats": "junk\n", "proc/net/ip_vs": ""}, 0, nil},
		{"kernel_hung", "no counter (before Linux 6.12)", map[string]string{}, 0, nil},
		{"kernel_hung", "counter", map[string]string{"proc/sys/kernel/hung_task_detect_count": "3\n"}, 1, []string{"node_kernel_hung_tasks_total"}},
		{"kernel_hung", "malformed counter", map[string]string{"proc/sys/kernel/hung_task_detect_count": "three\n"}, 0, nil},
		{"nfs", "fixture tree", nil, 1, []string{"node_nfs_requests_total", "node_nfs_rpcs_total"}},
		{"nfs", "no nfs client", map[string]string{}, 0, nil},
		{"nfs", "malformed", map[string]string{"proc/net/rpc/nfs": "net x y z w\n"}, 0, nil},
		{"nfsd", "fixture tree", nil, 1, []string{"node_nfsd_requests_total", "node_nfsd_server_threads"}},
		{"nfsd", "no nfs server", map[string]string{}, 0, nil},
		{"nfsd", "malformed", map[string]string{"proc/net/rpc/nfsd": "rc a b c\n"}, 0, nil},
		{"nvme", "fixture tree", nil, 1, []string{"node_nvme_info", "node_nvme_namespace_size_bytes"}},
		{"nvme", "no nvme", map[string]string{}, 0, nil},
		{"nvme", "unreadable model", map[string]string{"sys/class/nvme/nvme0/model": "<dir>", "sys/class/nvme/nvme0/serial": "S1\n"}, 0, nil},
		{"powersupplyclass", "fixture tree", nil, 1, []string{"node_power_supply_info", "node_power_supply_capacity"}},
		{"powersupplyclass", "no power supplies", map[string]string{}, 0, nil},
		{"powersupplyclass", "a supply that is not a directory", map[string]string{"sys/class/power_supply/BAT0": "not a directory\n"}, 0, nil},
		{"rapl", "fixture tree", nil, 1, []string{"node_rapl_package_joules_total"}},
		{"rapl", "no powercap", map[string]string{}, 0, nil},
		{"rapl", "malformed energy", map[string]string{"sys/class/powercap/intel-rapl:0/name": "package-0\n",
			"sys/class/powercap/intel-rapl:0/max_energy_range_uj": "262143328850\n", "sys/class/powercap/intel-rapl:0/energy_uj": "warm\n"}, 0, nil},
		{"selinux", "this machine", nil, 1, []string{"node_selinux_enabled"}},
		{"tapestats", "fixture tree", nil, 1, []string{"node_tape_io_now", "node_tape_read_bytes_total"}},
		{"tapestats", "no tapes", map[string]string{}, 0, nil},
		{"tapestats", "malformed counter", map[string]string{"sys/class/scsi_tape/st0/stats/in_flight": "busy\n"}, 0, nil},
		{"thermal_zone", "fixture tree", nil, 1, []string{"node_thermal_zone_temp", "node_cooling_device_cur_state"}},
		{"thermal_zone", "no zones", map[string]string{}, 1, nil},
		{"thermal_zone", "unreadable temperature", map[string]string{"sys/class/thermal/thermal_zone0/type": "x86_pkg_temp\n",
			"sys/class/thermal/thermal_zone0/temp": "<dir>", "sys/class/thermal/thermal_zone0/policy": "step_wise\n"}, 0, nil},
		{"watchdog", "fixture tree", nil, 1, []string{"node_watchdog_info", "node_watchdog_timeout_seconds"}},
		{"watchdog", "no watchdog", map[string]string{}, 0, nil},
		{"watchdog", "malformed timeout", map[string]string{"sys/class/watchdog/watchdog0/timeout": "soon\n"}, 0, nil},
		{"xfs", "fixture tree", nil, 1, []string{"node_xfs_read_calls_total"}},
		{"xfs", "no xfs", map[string]string{}, 1, nil},
		{"xfs", "malformed stats", map[string]string{"sys/fs/xfs/sda1/stats/stats": "extent_alloc one two three four\n"}, 0, nil},
		{"zfs", "fixture tree", nil, 1, []string{"node_zfs_arc_hits", "node_zfs_zpool_state", "node_zfs_zpool_dataset_nread"}},
		{"zfs", "no zfs", map[string]string{}, 0, nil},
		{"zfs", "malformed kstat", map[string]string{"proc/spl/kstat/zfs/arcstats": "6 1 0x01 1 2 3 4\nname type data\nhits 4 many\n"}, 0, nil},
		{"zfs", "kstat without its table", map[string]string{"proc/spl/kstat/zfs/arcstats": "hits 4 1\n"}, 0, nil},
	}
	for _, c := range cases {
		t.Run(c.collector+"/"+c.name, func(t *testing.T) {
			cfg := DefaultConfig()
			if c.tree == nil {
				tree := fixtureTreeOnce(t)
				cfg.ProcPath, cfg.SysPath, cfg.RootPath = filepath.Join(tree.Fixtures, "proc"), tree.Sys, tree.Fixtures
				cfg.BcachePriorityStats = true
			} else {
				root := t.TempDir()
				files(t, root, map[string]string{"proc": "<dir>", "sys": "<dir>"})
				files(t, root, c.tree)
				cfg.ProcPath, cfg.SysPath, cfg.RootPath = filepath.Join(root, "proc"), filepath.Join(root, "sys"), root
			}
			mfs, success := scrapeOne(t, c.collector, cfg)
			if success != c.success {
				t.Errorf("node_scrape_collector_success = %v, want %v", success, c.success)
			}
			for _, f := range c.families {
				if len(mfs[f].GetMetric()) == 0 {
					t.Errorf("%s missing", f)
				}
			}
		})
	}
}
