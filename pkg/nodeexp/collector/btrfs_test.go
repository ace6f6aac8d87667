package collector

import (
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestBtrfsMountedDevices: for a file system mounted where nodeexp sees
// it, the devices and error counters the btrfs ioctls return replace the
// sysfs device sizes, labelled with the device's uuid; a failed ioctl
// falls back to sysfs.
func TestBtrfsMountedDevices(t *testing.T) {
	tree := fixtureTreeOnce(t)
	cfg := DefaultConfig()
	cfg.ProcPath, cfg.SysPath = tree.Fixtures+"/proc", tree.Sys
	for _, tc := range []struct {
		name string
		devs map[string][]btrfsDevice
		err  error
		want string
	}{
		{"mounted", map[string][]btrfsDevice{"0abb23a9579b43e6ad30227ef47fcb9d": {{path: "/dev/loop25", uuid: "6c4f1d5c-7a42-4a52-9c94-1d2d0c8e4d2e",
			bytesUsed: 100, totalBytes: 1000, errors: [5]uint64{1, 2, 3, 4, 5}}}}, nil, `
# HELP node_btrfs_device_errors_total Errors reported for the device
# TYPE node_btrfs_device_errors_total counter
node_btrfs_device_errors_total{btrfs_dev_uuid="6c4f1d5c-7a42-4a52-9c94-1d2d0c8e4d2e",device="loop25",type="corruption",uuid="0abb23a9-579b-43e6-ad30-227ef47fcb9d"} 4
node_btrfs_device_errors_total{btrfs_dev_uuid="6c4f1d5c-7a42-4a52-9c94-1d2d0c8e4d2e",device="loop25",type="flush",uuid="0abb23a9-579b-43e6-ad30-227ef47fcb9d"} 3
node_btrfs_device_errors_total{btrfs_dev_uuid="6c4f1d5c-7a42-4a52-9c94-1d2d0c8e4d2e",device="loop25",type="generation",uuid="0abb23a9-579b-43e6-ad30-227ef47fcb9d"} 5
node_btrfs_device_errors_total{btrfs_dev_uuid="6c4f1d5c-7a42-4a52-9c94-1d2d0c8e4d2e",device="loop25",type="read",uuid="0abb23a9-579b-43e6-ad30-227ef47fcb9d"} 2
node_btrfs_device_errors_total{btrfs_dev_uuid="6c4f1d5c-7a42-4a52-9c94-1d2d0c8e4d2e",device="loop25",type="write",uuid="0abb23a9-579b-43e6-ad30-227ef47fcb9d"} 1
# HELP node_btrfs_device_unused_bytes Unused bytes unused on a device that is part of the filesystem.
# TYPE node_btrfs_device_unused_bytes gauge
node_btrfs_device_unused_bytes{btrfs_dev_uuid="6c4f1d5c-7a42-4a52-9c94-1d2d0c8e4d2e",device="loop25",uuid="0abb23a9-579b-43e6-ad30-227ef47fcb9d"} 900
`},
		{"ioctl failed", nil, errors.New("permission denied"), `
# HELP node_btrfs_device_size_bytes Size of a device that is part of the filesystem.
# TYPE node_btrfs_device_size_bytes gauge
node_btrfs_device_size_bytes{device="loop25",uuid="0abb23a9-579b-43e6-ad30-227ef47fcb9d"} 1.073741824e+10
node_btrfs_device_size_bytes{device="loop26",uuid="0abb23a9-579b-43e6-ad30-227ef47fcb9d"} 1.073741824e+10
node_btrfs_device_size_bytes{device="loop22",uuid="7f07c59f-6136-449c-ab87-e1cf2328731b"} 1.073741824e+10
node_btrfs_device_size_bytes{device="loop23",uuid="7f07c59f-6136-449c-ab87-e1cf2328731b"} 1.073741824e+10
node_btrfs_device_size_bytes{device="loop24",uuid="7f07c59f-6136-449c-ab87-e1cf2328731b"} 1.073741824e+10
node_btrfs_device_size_bytes{device="loop25",uuid="7f07c59f-6136-449c-ab87-e1cf2328731b"} 1.073741824e+10
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := newBtrfsCollector(&cfg, discard())
			if err != nil {
				t.Fatal(err)
			}
			c.(*btrfsCollector).devStats = func() (map[string][]btrfsDevice, error) { return tc.devs, tc.err }
			reg := prometheus.NewRegistry()
			reg.MustRegister(collectorAdapter{c})
			names := []string{"node_btrfs_device_size_bytes"}
			if tc.devs != nil {
				names = []string{"node_btrfs_device_errors_total", "node_btrfs_device_unused_bytes"}
			}
			if err := testutil.GatherAndCompare(reg, strings.NewReader(tc.want), names...); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestBtrfsUUID(t *testing.T) {
	if got := btrfsUUID([16]byte{0x6c, 0x4f, 0x1d, 0x5c, 0x7a, 0x42, 0x4a, 0x52, 0x9c, 0x94, 0x1d, 0x2d, 0x0c, 0x8e, 0x4d, 0x2e}); got != "6c4f1d5c-7a42-4a52-9c94-1d2d0c8e4d2e" {
		t.Errorf("btrfsUUID = %q", got)
	}
	if got := btrfsUUID([16]byte{}); got != "<zero>" {
		t.Errorf("btrfsUUID(zero) = %q", got)
	}
}
