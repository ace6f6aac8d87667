package collector

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strings"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs/sysfs"
	"golang.org/x/sys/unix"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// ethtoolCollector reports what each interface's driver tells ethtool:
// its statistics (on EC2, ENA's bw_in_allowance_exceeded,
// pps_allowance_exceeded and the other allowance counters: packets the
// instance's network allowance dropped), its link modes and its driver.
// It is off by default, as in node_exporter: a few ioctls per interface
// per scrape.
type ethtoolCollector struct {
	fs      sysfs.FS
	devices deviceFilter
	metrics *regexp.Regexp
	logger  *slog.Logger
	// open returns the driver interface; tests replace it.
	open func() (ethtoolDriver, error)

	info            *constmetric.Desc
	known           map[string]*constmetric.Desc // stats and link families of their own
	supportedPort   *constmetric.Desc
	supportedSpeed  *constmetric.Desc
	advertisedSpeed *constmetric.Desc
	autonegotiate   *constmetric.Desc
	capabilities    map[string]*constmetric.Desc // by "<prefix>_<capability>"
	descs           descCache
}

// ethtoolDriver is what the collector asks of the kernel's ethtool
// interface, per interface.
type ethtoolDriver interface {
	DriverInfo(iface string) (ethtoolDrvInfo, error)
	Stats(iface string) (map[string]uint64, error)
	LinkInfo(iface string) (ethtoolLink, error)
	Close() error
}

// ethtoolDrvInfo is the driver's identity (ETHTOOL_GDRVINFO).
type ethtoolDrvInfo struct {
	Driver, Version, FwVersion, BusInfo, EromVersion string
}

// ethtoolLink is an interface's link modes (ETHTOOL_GSET).
type ethtoolLink struct {
	Supported, Advertising uint32
	Autoneg                uint8
}

var (
	ethtoolRx = regexp.MustCompile(`(^|_)rx(_|$)`)
	ethtoolTx = regexp.MustCompile(`(^|_)tx(_|$)`)
)

// ethtoolFamilyName is node_exporter's name for a driver statistic:
// sanitised, lower case, rx and tx spelt out.
func ethtoolFamilyName(stat string) string {
	n := strings.TrimLeft(strings.ToLower(metricNameJunk.ReplaceAllString(stat, "_")), "_")
	n = ethtoolRx.ReplaceAllString(n, "${1}received${2}")
	n = ethtoolTx.ReplaceAllString(n, "${1}transmitted${2}")
	return "node_ethtool_" + n
}

func newEthtoolCollector(cfg *Config, logger *slog.Logger) (nodeexp.Collector, error) {
	fs, err := sysfs.NewFS(cfg.SysPath)
	if err != nil {
		return nil, fmt.Errorf("opening sysfs %q: %w", cfg.SysPath, err)
	}
	devices, err := newDeviceFilter(cfg.EthtoolDeviceInclude, cfg.EthtoolDeviceExclude)
	if err != nil {
		return nil, fmt.Errorf("compiling the ethtool device filters: %w", err)
	}
	metrics, err := regexp.Compile(cfg.EthtoolMetricsInclude)
	if err != nil {
		return nil, fmt.Errorf("compiling --collector.ethtool.metrics-include: %w", err)
	}
	dev := []string{"device"}
	c := &ethtoolCollector{
		fs:      fs,
		devices: devices,
		metrics: metrics,
		logger:  logger,
		open:    openEthtool,
		info: constmetric.NewDesc("node_ethtool_info",
			"A metric with a constant '1' value labeled by bus_info, device, driver, expansion_rom_version, firmware_version, version.",
			[]string{"bus_info", "device", "driver", "expansion_rom_version", "firmware_version", "version"}, nil),
		known: map[string]*constmetric.Desc{
			"rx_bytes":   constmetric.NewDesc("node_ethtool_received_bytes_total", "Network interface bytes received", dev, nil),
			"rx_dropped": constmetric.NewDesc("node_ethtool_received_dropped_total", "Number of received frames dropped", dev, nil),
			"rx_errors":  constmetric.NewDesc("node_ethtool_received_errors_total", "Number of received frames with errors", dev, nil),
			"rx_packets": constmetric.NewDesc("node_ethtool_received_packets_total", "Network interface packets received", dev, nil),
			"tx_bytes":   constmetric.NewDesc("node_ethtool_transmitted_bytes_total", "Network interface bytes sent", dev, nil),
			"tx_errors":  constmetric.NewDesc("node_ethtool_transmitted_errors_total", "Number of sent frames with errors", dev, nil),
			"tx_packets": constmetric.NewDesc("node_ethtool_transmitted_packets_total", "Network interface packets sent", dev, nil),
			// ENA's allowance counters, named and described as any other
			// statistic (deploy/monitoring's NodekitNodeexpNetworkAllowanceExceeded
			// alerts on them).
			"bw_in_allowance_exceeded":     constmetric.NewDesc("node_ethtool_bw_in_allowance_exceeded", "Network interface bw_in_allowance_exceeded", dev, nil),
			"bw_out_allowance_exceeded":    constmetric.NewDesc("node_ethtool_bw_out_allowance_exceeded", "Network interface bw_out_allowance_exceeded", dev, nil),
			"pps_allowance_exceeded":       constmetric.NewDesc("node_ethtool_pps_allowance_exceeded", "Network interface pps_allowance_exceeded", dev, nil),
			"conntrack_allowance_exceeded": constmetric.NewDesc("node_ethtool_conntrack_allowance_exceeded", "Network interface conntrack_allowance_exceeded", dev, nil),
			"linklocal_allowance_exceeded": constmetric.NewDesc("node_ethtool_linklocal_allowance_exceeded", "Network interface linklocal_allowance_exceeded", dev, nil),
		},
		supportedPort:   constmetric.NewDesc("node_network_supported_port_info", "Type of ports or PHYs supported by network device", []string{"device", "type"}, nil),
		supportedSpeed:  constmetric.NewDesc("node_network_supported_speed_bytes", "Combination of speeds and features supported by network device", []string{"device", "duplex", "mode"}, nil),
		advertisedSpeed: constmetric.NewDesc("node_network_advertised_speed_bytes", "Combination of speeds and features offered by network device", []string{"device", "duplex", "mode"}, nil),
		autonegotiate:   constmetric.NewDesc("node_network_autonegotiate", "If this port is using autonegotiate", dev, nil),
		capabilities: map[string]*constmetric.Desc{
			"supported_autonegotiate":    constmetric.NewDesc("node_network_autonegotiate_supported", "If this port device supports autonegotiate", dev, nil),
			"supported_pause":            constmetric.NewDesc("node_network_pause_supported", "If this port device supports pause frames", dev, nil),
			"supported_asymmetricpause":  constmetric.NewDesc("node_network_asymmetricpause_supported", "If this port device supports asymmetric pause frames", dev, nil),
			"advertised_autonegotiate":   constmetric.NewDesc("node_network_autonegotiate_advertised", "If this port device offers autonegotiate", dev, nil),
			"advertised_pause":           constmetric.NewDesc("node_network_pause_advertised", "If this port device offers pause capability", dev, nil),
			"advertised_asymmetricpause": constmetric.NewDesc("node_network_asymmetricpause_advertised", "If this port device offers asymmetric pause capability", dev, nil),
		},
	}
	return c, nil
}

func (c *ethtoolCollector) Update(_ context.Context, ch *nodeexp.Sink) error {
	ifaces, err := c.fs.NetClassDevices()
	switch {
	case errors.Is(err, os.ErrNotExist), errors.Is(err, os.ErrPermission):
		return fmt.Errorf("could not read netclass: %w", errors.Join(nodeexp.ErrNoData, err))
	case err != nil:
		return fmt.Errorf("could not get net class info: %w", err)
	case len(ifaces) == 0:
		return errors.New("no network devices found")
	}
	drv, err := c.open()
	if err != nil {
		return fmt.Errorf("opening the ethtool socket: %w", err)
	}
	defer drv.Close()
	for _, iface := range ifaces {
		if c.devices.ignored(iface) {
			continue
		}
		if link, err := drv.LinkInfo(iface); err == nil {
			c.sendSpeeds(ch, c.supportedSpeed, iface, link.Supported)
			for name, bit := range ethtoolPorts {
				if link.Supported&(1<<bit) != 0 {
					send(ch, c.supportedPort, prometheus.GaugeValue, 1, iface, name)
				}
			}
			c.sendCapabilities(ch, "supported", iface, link.Supported)
			c.sendSpeeds(ch, c.advertisedSpeed, iface, link.Advertising)
			c.sendCapabilities(ch, "advertised", iface, link.Advertising)
			send(ch, c.autonegotiate, prometheus.GaugeValue, float64(link.Autoneg), iface)
		} else {
			c.logIoctlError("link info", iface, err)
		}
		if info, err := drv.DriverInfo(iface); err == nil {
			send(ch, c.info, prometheus.GaugeValue, 1, info.BusInfo, iface, info.Driver, info.EromVersion, info.FwVersion, info.Version)
		} else {
			c.logIoctlError("driver info", iface, err)
		}
		stats, err := drv.Stats(iface)
		if err != nil {
			c.logIoctlError("stats", iface, err)
		}
		c.sendStats(ch, iface, stats)
	}
	return nil
}

// sendStats reports the driver's statistics that --collector.ethtool.
// metrics-include selects; two statistics whose names collide once
// sanitised are both dropped, as node_exporter drops them.
func (c *ethtoolCollector) sendStats(ch *nodeexp.Sink, iface string, stats map[string]uint64) {
	byFamily := map[string]string{} // family name -> statistic ("" once two collide)
	values := map[string]uint64{}
	for stat, v := range stats {
		name := metricNameJunk.ReplaceAllString(stat, "_")
		if !c.metrics.MatchString(name) {
			continue
		}
		fam := ethtoolFamilyName(name)
		if _, dup := byFamily[fam]; dup {
			c.logger.Debug("dropping duplicate metric name", "device", iface, "metricFQName", fam, "metric", name)
			byFamily[fam] = ""
			continue
		}
		byFamily[fam] = name
		values[name] = v
	}
	for _, fam := range slices.Sorted(func(yield func(string) bool) {
		for k := range byFamily {
			if !yield(k) {
				return
			}
		}
	}) {
		stat := byFamily[fam]
		if stat == "" {
			continue
		}
		d := c.known[stat]
		if d == nil {
			d = c.descs.get(fam, "Network interface "+stat, "device")
		}
		send(ch, d, prometheus.UntypedValue, float64(values[stat]), iface)
	}
}

func (c *ethtoolCollector) logIoctlError(what, iface string, err error) {
	switch {
	case errors.Is(err, unix.EOPNOTSUPP):
		c.logger.Debug("ethtool "+what+" not supported", "device", iface, "err", err)
	default:
		c.logger.Error("ethtool "+what+" error", "device", iface, "err", err)
	}
}

func (c *ethtoolCollector) sendCapabilities(ch *nodeexp.Sink, prefix, iface string, modes uint32) {
	for _, cap := range []struct {
		name string
		bit  uint
	}{{"autonegotiate", unix.ETHTOOL_LINK_MODE_Autoneg_BIT}, {"pause", unix.ETHTOOL_LINK_MODE_Pause_BIT}, {"asymmetricpause", unix.ETHTOOL_LINK_MODE_Asym_Pause_BIT}} {
		v := 0.0
		if modes&(1<<cap.bit) != 0 {
			v = 1
		}
		send(ch, c.capabilities[prefix+"_"+cap.name], prometheus.GaugeValue, v, iface)
	}
}

// sendSpeeds reports each link mode of the 32 the legacy ETHTOOL_GSET
// carries, in bytes per second.
func (c *ethtoolCollector) sendSpeeds(ch *nodeexp.Sink, d *constmetric.Desc, iface string, modes uint32) {
	for bit, m := range ethtoolSpeeds {
		if bit < 32 && modes&(1<<bit) != 0 {
			send(ch, d, prometheus.GaugeValue, float64(m.mbps)*(1000000.0/8.0), iface, m.duplex, fmt.Sprintf("%dbase%s", m.mbps, m.phy))
		}
	}
}

// ethtoolPorts are the port types of the link mode bits.
var ethtoolPorts = map[string]uint{
	"TP": unix.ETHTOOL_LINK_MODE_TP_BIT, "AUI": unix.ETHTOOL_LINK_MODE_AUI_BIT, "MII": unix.ETHTOOL_LINK_MODE_MII_BIT,
	"FIBRE": unix.ETHTOOL_LINK_MODE_FIBRE_BIT, "BNC": unix.ETHTOOL_LINK_MODE_BNC_BIT, "Backplane": unix.ETHTOOL_LINK_MODE_Backplane_BIT,
}

type ethtoolSpeed struct {
	mbps   int
	duplex string
	phy    string
}

// ethtoolSpeeds are the speed link modes node_exporter reports, by bit.
// Only those below bit 32 can be set in ETHTOOL_GSET's 32-bit masks.
var ethtoolSpeeds = map[int]ethtoolSpeed{
	unix.ETHTOOL_LINK_MODE_10baseT_Half_BIT:       {10, "half", "T"},
	unix.ETHTOOL_LINK_MODE_10baseT_Full_BIT:       {10, "full", "T"},
	unix.ETHTOOL_LINK_MODE_100baseT_Half_BIT:      {100, "half", "T"},
	unix.ETHTOOL_LINK_MODE_100baseT_Full_BIT:      {100, "full", "T"},
	unix.ETHTOOL_LINK_MODE_1000baseT_Half_BIT:     {1000, "half", "T"},
	unix.ETHTOOL_LINK_MODE_1000baseT_Full_BIT:     {1000, "full", "T"},
	unix.ETHTOOL_LINK_MODE_10000baseT_Full_BIT:    {10000, "full", "T"},
	unix.ETHTOOL_LINK_MODE_2500baseT_Full_BIT:     {2500, "full", "T"},
	unix.ETHTOOL_LINK_MODE_1000baseKX_Full_BIT:    {1000, "full", "KX"},
	unix.ETHTOOL_LINK_MODE_10000baseKX4_Full_BIT:  {10000, "full", "KX4"},
	unix.ETHTOOL_LINK_MODE_10000baseKR_Full_BIT:   {10000, "full", "KR"},
	unix.ETHTOOL_LINK_MODE_10000baseR_FEC_BIT:     {10000, "full", "R_FEC"},
	unix.ETHTOOL_LINK_MODE_20000baseMLD2_Full_BIT: {20000, "full", "MLD2"},
	unix.ETHTOOL_LINK_MODE_20000baseKR2_Full_BIT:  {20000, "full", "KR2"},
	unix.ETHTOOL_LINK_MODE_40000baseKR4_Full_BIT:  {40000, "full", "KR4"},
	unix.ETHTOOL_LINK_MODE_40000baseCR4_Full_BIT:  {40000, "full", "CR4"},
	unix.ETHTOOL_LINK_MODE_40000baseSR4_Full_BIT:  {40000, "full", "SR4"},
	unix.ETHTOOL_LINK_MODE_40000baseLR4_Full_BIT:  {40000, "full", "LR4"},
	unix.ETHTOOL_LINK_MODE_56000baseKR4_Full_BIT:  {56000, "full", "KR4"},
	unix.ETHTOOL_LINK_MODE_56000baseCR4_Full_BIT:  {56000, "full", "CR4"},
	unix.ETHTOOL_LINK_MODE_56000baseSR4_Full_BIT:  {56000, "full", "SR4"},
	unix.ETHTOOL_LINK_MODE_56000baseLR4_Full_BIT:  {56000, "full", "LR4"},
	unix.ETHTOOL_LINK_MODE_25000baseCR_Full_BIT:   {25000, "full", "CR"},
}

// ethtoolIoctl is the kernel's ethtool ioctl interface (SIOCETHTOOL on an
// AF_INET socket), for the three requests the collector makes.
// safchain/ethtool, node_exporter's choice, covers dozens more.
type ethtoolIoctl struct{ fd int }

func openEthtool() (ethtoolDriver, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_IP)
	if err != nil {
		return nil, err
	}
	return &ethtoolIoctl{fd: fd}, nil
}

func (e *ethtoolIoctl) Close() error { return unix.Close(e.fd) }

// The kernel's ethtool structures (include/uapi/linux/ethtool.h).
const (
	ethtoolGSet      = 0x01
	ethtoolGDrvInfo  = 0x03
	ethtoolGStrings  = 0x1b
	ethtoolGStats    = 0x1d
	ethSSStats       = 1
	ethGStringLen    = 32
	ethtoolMaxStats  = 32768
	ethtoolIfNameLen = 16
)

// ethtoolIfreq is struct ifreq with ifr_data: a pointer the garbage
// collector sees, so the buffer it points to stays where it is.
type ethtoolIfreq struct {
	name [ethtoolIfNameLen]byte
	data unsafe.Pointer
	_    [16]byte // the rest of the union
}

type ethtoolDrvInfoArgs struct {
	cmd                                              uint32
	driver, version, fwVersion, busInfo, eromVersion [32]byte
	_                                                [12]byte
	nPrivFlags, nStats, testinfoLen, eedumpLen       uint32
	regdumpLen                                       uint32
}

type ethtoolCmdArgs struct {
	cmd, supported, advertising uint32
	speed                       uint16
	duplex, port, phyAddress    uint8
	transceiver, autoneg        uint8
	mdioSupport                 uint8
	maxtxpkt, maxrxpkt          uint32
	speedHi                     uint16
	ethTpMdix, ethTpMdixCtrl    uint8
	lpAdvertising               uint32
	_                           [2]uint32
}

func (e *ethtoolIoctl) ioctl(iface string, data unsafe.Pointer) error {
	var req ethtoolIfreq
	if len(iface) >= ethtoolIfNameLen {
		return fmt.Errorf("interface name %q too long", iface)
	}
	copy(req.name[:], iface)
	req.data = data
	for {
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(e.fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&req)))
		switch errno {
		case 0:
			return nil
		case unix.EINTR:
			continue
		}
		return errno
	}
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func (e *ethtoolIoctl) drvInfo(iface string) (*ethtoolDrvInfoArgs, error) {
	a := &ethtoolDrvInfoArgs{cmd: ethtoolGDrvInfo}
	if err := e.ioctl(iface, unsafe.Pointer(a)); err != nil {
		return nil, err
	}
	return a, nil
}

func (e *ethtoolIoctl) DriverInfo(iface string) (ethtoolDrvInfo, error) {
	a, err := e.drvInfo(iface)
	if err != nil {
		return ethtoolDrvInfo{}, err
	}
	return ethtoolDrvInfo{Driver: cString(a.driver[:]), Version: cString(a.version[:]), FwVersion: cString(a.fwVersion[:]),
		BusInfo: cString(a.busInfo[:]), EromVersion: cString(a.eromVersion[:])}, nil
}

func (e *ethtoolIoctl) LinkInfo(iface string) (ethtoolLink, error) {
	a := ethtoolCmdArgs{cmd: ethtoolGSet}
	if err := e.ioctl(iface, unsafe.Pointer(&a)); err != nil {
		return ethtoolLink{}, err
	}
	return ethtoolLink{Supported: a.supported, Advertising: a.advertising, Autoneg: a.autoneg}, nil
}

// Stats reads the driver's statistics: their count from the driver info,
// their names (ETHTOOL_GSTRINGS) and values (ETHTOOL_GSTATS). The two
// buffers are a header of 3 words followed by the data, as the kernel
// lays them out.
func (e *ethtoolIoctl) Stats(iface string) (map[string]uint64, error) {
	info, err := e.drvInfo(iface)
	if err != nil {
		return nil, err
	}
	n := info.nStats
	if n > ethtoolMaxStats {
		return nil, fmt.Errorf("%d statistics: more than %d", n, ethtoolMaxStats)
	}
	if n == 0 {
		return nil, nil
	}
	// struct ethtool_gstrings { u32 cmd, string_set, len; u8 data[]; }
	names := make([]byte, 12+int(n)*ethGStringLen)
	*(*[3]uint32)(unsafe.Pointer(&names[0])) = [3]uint32{ethtoolGStrings, ethSSStats, n}
	if err := e.ioctl(iface, unsafe.Pointer(&names[0])); err != nil {
		return nil, err
	}
	// struct ethtool_stats { u32 cmd, n_stats; u64 data[]; }
	values := make([]uint64, 1+int(n))
	*(*[2]uint32)(unsafe.Pointer(&values[0])) = [2]uint32{ethtoolGStats, n}
	if err := e.ioctl(iface, unsafe.Pointer(&values[0])); err != nil {
		return nil, err
	}
	out := make(map[string]uint64, n)
	for i := range int(n) {
		name := cString(names[12+i*ethGStringLen : 12+(i+1)*ethGStringLen])
		if name != "" {
			out[name] = values[1+i]
		}
	}
	return out, nil
}
