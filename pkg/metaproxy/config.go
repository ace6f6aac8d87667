package metaproxy

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/nodekit/nodekit/pkg/metaproxy/caller"
	"github.com/nodekit/nodekit/pkg/metaproxy/imds"
	"github.com/nodekit/nodekit/pkg/metaproxy/intercept"
	"github.com/nodekit/nodekit/pkg/metaproxy/role"
)

// DefaultListenPort is the port of --listen-addr's default, on --host-ip.
const DefaultListenPort = 8181

// The session durations creds accepts with its default minimum remaining
// lifetime (15m), checked here too so that a bad --session-duration is a
// command-line error; TestSessionDurationBoundsMatchCreds keeps the two in step.
const (
	minSessionDuration = 20 * time.Minute
	maxSessionDuration = 12 * time.Hour
)

// Config is metaproxy's configuration: RegisterFlags binds it to the command
// line, Discover fills what the node tells, Validate checks the result.
type Config struct {
	// NodeName scopes the pod informer to this node.
	NodeName string
	Role     role.Config
	IMDS     imds.Config
	// HostIP is the node's IP; with ListenAddr empty, the listener is
	// HostIP:DefaultListenPort.
	HostIP string
	// ListenAddr is where pods' metadata requests arrive (DNATed there).
	ListenAddr string
	// MetricsAddr serves /metrics, /healthz and /readyz; it must not be
	// reachable through ListenAddr.
	MetricsAddr string
	// HostInterface is the iptables -i pattern of the interfaces pods'
	// traffic arrives on; empty matches every interface.
	HostInterface string
	// IPTables installs and keeps the interception rules.
	IPTables bool
	// MetadataAddr is the instance metadata service, ip:port.
	MetadataAddr string
	// SessionDuration is requested for role credentials.
	SessionDuration time.Duration
	// PodWait bounds how long a request from an IP the informer does not
	// know yet waits for it.
	PodWait time.Duration
}

// DefaultConfig returns the defaults the flags show.
func DefaultConfig() Config {
	return Config{
		MetricsAddr:     "127.0.0.1:9181",
		MetadataAddr:    "169.254.169.254:80",
		SessionDuration: time.Hour,
		PodWait:         caller.DefaultWait,
	}
}

// RegisterFlags binds c to fs; call it on a Config from DefaultConfig.
// --host-ip defaults to $HOST_IP, which the DaemonSet fills from the
// downward API.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Role.RegisterFlags(fs)
	c.IMDS.RegisterFlags(fs)
	fs.StringVar(&c.HostIP, "host-ip", os.Getenv("HOST_IP"), "this node's IP, where pods' metadata requests are sent (default $HOST_IP; discovered from the default route when empty)")
	fs.StringVar(&c.ListenAddr, "listen-addr", c.ListenAddr, fmt.Sprintf("address for pods' metadata requests (default --host-ip:%d)", DefaultListenPort))
	fs.StringVar(&c.MetricsAddr, "metrics-addr", c.MetricsAddr, "address for /metrics, /healthz and /readyz; never the metadata address")
	fs.StringVar(&c.HostInterface, "host-interface", c.HostInterface, "iptables -i pattern of the interfaces pods' traffic arrives on: cali+ (Calico), eni+ (AWS VPC CNI), lxc+ (Cilium), cni0 or cbr0 (bridge CNIs), !eth0; empty matches every interface. Pods it misses are refused, never served the node's role, and keep metaproxy unready")
	fs.BoolVar(&c.IPTables, "iptables", c.IPTables, "install and keep the nat rule sending pods' metadata traffic to --listen-addr (and an ip6tables rule rejecting pods' TCP to ["+intercept.MetadataIPv6+"]); the rules stay on exit (remove them with 'metaproxy uninstall')")
	fs.StringVar(&c.MetadataAddr, "metadata-addr", c.MetadataAddr, "the instance metadata service, ip:port")
	fs.DurationVar(&c.SessionDuration, "session-duration", c.SessionDuration, "lifetime requested for role credentials (20m to 12h; credentials with under 15m left are never served). On EC2 metaproxy's own credentials are the instance profile's role session, and STS caps role chaining at 1h")
	fs.DurationVar(&c.PodWait, "pod-wait", c.PodWait, "how long a request from an IP the pod informer does not know yet waits for it (keep under the SDKs' 1s timeout)")
}

// Discover fills what the command line left to the node: with neither
// ListenAddr nor HostIP set, HostIP becomes the address of the default
// route's interface; with ListenAddr empty, it becomes HostIP at
// DefaultListenPort. Its errors are the node's, not the command line's.
func (c *Config) Discover(h intercept.HostAddr) error {
	if c.ListenAddr != "" {
		return nil
	}
	if c.HostIP == "" {
		ip, err := intercept.DiscoverHostIP(h)
		if err != nil {
			return fmt.Errorf("discovering the host IP for --listen-addr: %w", err)
		}
		c.HostIP = ip.String()
	}
	c.ListenAddr = intercept.ListenAddrFor(c.HostIP, DefaultListenPort)
	return nil
}

// Validate checks c, after Discover. Every error it reports is one of the
// command line's.
func (c *Config) Validate() error {
	var errs []error
	if c.NodeName == "" {
		errs = append(errs, errors.New("--node-name is required (or set $NODE_NAME from the downward API)"))
	}
	if c.PodWait <= 0 || c.PodWait > 5*time.Second {
		errs = append(errs, fmt.Errorf("--pod-wait %v: want more than 0 and at most 5s", c.PodWait))
	}
	if c.SessionDuration < minSessionDuration || c.SessionDuration > maxSessionDuration {
		errs = append(errs, fmt.Errorf("--session-duration %v: want %v to %v", c.SessionDuration, minSessionDuration, maxSessionDuration))
	}
	if err := c.Role.Validate(); err != nil {
		errs = append(errs, err)
	}
	if _, _, err := net.SplitHostPort(c.MetadataAddr); err != nil {
		errs = append(errs, fmt.Errorf("--metadata-addr %q: %w", c.MetadataAddr, err))
	}
	if err := c.validateAddrs(); err != nil {
		errs = append(errs, err)
	} else if c.IPTables {
		icfg := intercept.Config{MetadataAddr: c.MetadataAddr, ListenAddr: c.ListenAddr, HostInterface: c.HostInterface}
		if err := icfg.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("--iptables: %w", err))
		}
	}
	return errors.Join(errs...)
}

// validateAddrs keeps the ops endpoints off the address pods reach.
func (c *Config) validateAddrs() error {
	if c.ListenAddr == "" {
		return errors.New("--listen-addr is empty: set it or --host-ip")
	}
	lh, lp, err := net.SplitHostPort(c.ListenAddr)
	if err != nil {
		return fmt.Errorf("--listen-addr %q: %w", c.ListenAddr, err)
	}
	mh, mp, err := net.SplitHostPort(c.MetricsAddr)
	if err != nil {
		return fmt.Errorf("--metrics-addr %q: %w", c.MetricsAddr, err)
	}
	unspecified := func(h string) bool { ip := net.ParseIP(h); return h == "" || ip != nil && ip.IsUnspecified() }
	if lp == mp && (lh == mh || unspecified(lh) || unspecified(mh)) {
		return fmt.Errorf("--metrics-addr %s overlaps --listen-addr %s: metrics must not be reachable through the metadata address", c.MetricsAddr, c.ListenAddr)
	}
	return nil
}
