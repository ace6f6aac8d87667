package kubeapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Namespace is where processes run when the server lives inside a network
// namespace (test/sandbox's node satisfies it).
type Namespace interface {
	Command(ctx context.Context, name string, args ...string) *exec.Cmd
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// Config says where the API server runs.
type Config struct {
	// Netns, when set, runs etcd and kube-apiserver inside that network
	// namespace; the client dials through it.
	Netns Namespace
	// AdvertiseAddress is the IP the API server binds and advertises. Default:
	// 127.0.0.1 on loopback; required with Netns (the node IP).
	AdvertiseAddress string
	// Logger receives process output at debug level; nil discards it.
	Logger *slog.Logger
	// Cluster, when set, configures the API server as a real cluster's, for
	// a real kubelet and controllers (test/realnode) instead of tests that
	// play them.
	Cluster *Cluster
}

// Cluster is what a real node needs of its API server: Node and RBAC
// authorization with NodeRestriction, service-account admission (pods get
// their projected tokens; kube-controller-manager creates the accounts), a
// certificate that also names the kubernetes Service's IP, and a client
// certificate for the API server's calls to the kubelet (logs, exec).
type Cluster struct {
	// ServiceIP is the kubernetes Service's ClusterIP (10.96.0.1 for the
	// service range 10.96.0.0/16), which in-cluster clients dial.
	ServiceIP net.IP
	// Users are token users besides the admin, name → groups (the kubelet's
	// system:node:<node> in system:nodes, say). Server.Token gives each token.
	Users map[string][]string
}

// Server is a running etcd + kube-apiserver pair.
type Server struct {
	dir        string
	url        string
	token      string
	kubeconfig string
	restConfig *rest.Config
	client     kubernetes.Interface
	binDir     string
	pki        *pki
	tokens     map[string]string // user → bearer token

	procs     []*process
	closeOnce sync.Once
	closeErr  error
}

// AdminToken is the static token of the admin user (group system:masters).
const adminUser = "nodekit-admin"

// Start runs etcd and kube-apiserver and waits until the API server is ready.
// The caller must Close the server; Start cleans up itself when it fails.
func Start(ctx context.Context, cfg Config) (_ *Server, err error) {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	binDir, err := Binaries(ctx)
	if err != nil {
		return nil, err
	}
	etcdBin, err := EtcdPath()
	if err != nil {
		return nil, err
	}
	host := cfg.AdvertiseAddress
	if host == "" {
		if cfg.Netns != nil {
			return nil, fmt.Errorf("kubeapi: AdvertiseAddress is required inside a network namespace")
		}
		host = "127.0.0.1"
	}
	hostIP := net.ParseIP(host)
	if hostIP == nil {
		return nil, fmt.Errorf("kubeapi: AdvertiseAddress %q is not an IP", host)
	}

	if err := removeStaleDirs(); err != nil {
		logger.Warn("removing directories of killed runs", "err", err)
	}
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		return nil, fmt.Errorf("making kube-apiserver directory: %w", err)
	}
	s := &Server{dir: dir, binDir: binDir}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.Close())
		}
	}()
	if err := claimDir(dir); err != nil {
		return nil, fmt.Errorf("claiming %s: %w", dir, err)
	}

	ips := []net.IP{hostIP}
	if cfg.Cluster != nil && cfg.Cluster.ServiceIP != nil {
		ips = append(ips, cfg.Cluster.ServiceIP)
	}
	s.pki, err = writePKI(dir, ips, cfg.Cluster != nil)
	if err != nil {
		return nil, err
	}
	s.token = randomHex(16)
	s.tokens = map[string]string{adminUser: s.token}
	tokenLines := s.token + "," + adminUser + ",1,\"system:masters\"\n"
	if cfg.Cluster != nil {
		uid := 2
		for user, groups := range cfg.Cluster.Users {
			s.tokens[user] = randomHex(16)
			tokenLines += fmt.Sprintf("%s,%s,%d,\"%s\"\n", s.tokens[user], user, uid, strings.Join(groups, ","))
			uid++
		}
	}
	tokenFile := filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(tokenFile, []byte(tokenLines), 0o600); err != nil {
		return nil, fmt.Errorf("writing token file: %w", err)
	}

	// Inside a fresh network namespace every port is free, so fixed ports
	// are deterministic; on the shared loopback ask the kernel for free ones.
	etcdClient, etcdPeer, apiPort := 2379, 2380, 6443
	if cfg.Netns == nil {
		ports, err := freePorts(3)
		if err != nil {
			return nil, err
		}
		etcdClient, etcdPeer, apiPort = ports[0], ports[1], ports[2]
	}
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdClient)
	command := func(ctx context.Context, name string, args ...string) *exec.Cmd {
		if cfg.Netns != nil {
			return cfg.Netns.Command(ctx, name, args...)
		}
		return exec.CommandContext(ctx, name, args...)
	}

	etcd := command(context.WithoutCancel(ctx), etcdBin,
		"--name", "nodekit-test",
		"--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", etcdURL,
		"--advertise-client-urls", etcdURL,
		"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdPeer),
		"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdPeer),
		"--initial-cluster", fmt.Sprintf("nodekit-test=http://127.0.0.1:%d", etcdPeer),
		"--unsafe-no-fsync",
		"--quota-backend-bytes", strconv.Itoa(1<<30),
	)
	if err := s.startProcess("etcd", etcd, logger); err != nil {
		return nil, err
	}

	apiArgs := []string{
		"--etcd-servers", etcdURL,
		"--bind-address", host,
		"--advertise-address", host,
		"--secure-port", strconv.Itoa(apiPort),
		"--tls-cert-file", s.pki.certFile,
		"--tls-private-key-file", s.pki.keyFile,
		"--client-ca-file", s.pki.caFile,
		"--token-auth-file", tokenFile,
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file", s.pki.saPubFile,
		"--service-account-signing-key-file", s.pki.saKeyFile,
		"--api-audiences", "https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range", "10.96.0.0/16",
		"--allow-privileged",
		"--enable-priority-and-fairness=false",
		"--cert-dir", filepath.Join(dir, "certs"),
		"--v", "1",
	}
	if cfg.Cluster != nil {
		apiArgs = append(apiArgs,
			"--authorization-mode", "Node,RBAC",
			"--enable-admission-plugins", "NodeRestriction",
			"--kubelet-client-certificate", s.pki.kubeletClientCert,
			"--kubelet-client-key", s.pki.kubeletClientKey,
			"--kubelet-preferred-address-types", "InternalIP",
		)
	} else {
		apiArgs = append(apiArgs, "--authorization-mode", "RBAC",
			// No controller-manager runs, so nothing creates the "default"
			// service account this admission plugin would demand of every pod.
			"--disable-admission-plugins", "ServiceAccount")
	}
	api := command(context.WithoutCancel(ctx), filepath.Join(binDir, "kube-apiserver"), apiArgs...)
	if err := s.startProcess("kube-apiserver", api, logger); err != nil {
		return nil, err
	}

	s.url = "https://" + net.JoinHostPort(host, strconv.Itoa(apiPort))
	s.restConfig = &rest.Config{
		Host:            s.url,
		BearerToken:     s.token,
		TLSClientConfig: rest.TLSClientConfig{CAData: s.pki.caPEM},
		QPS:             200,
		Burst:           400,
		UserAgent:       "nodekit-test",
	}
	if cfg.Netns != nil {
		s.restConfig.Dial = cfg.Netns.DialContext
	}
	if s.client, err = kubernetes.NewForConfig(s.restConfig); err != nil {
		return nil, fmt.Errorf("building client: %w", err)
	}
	if err := s.waitReady(ctx, cfg.Netns); err != nil {
		return nil, err
	}
	if s.kubeconfig, err = s.WriteKubeconfig(filepath.Join(dir, "admin.kubeconfig"), adminUser, s.token); err != nil {
		return nil, err
	}
	return s, nil
}

// waitReady polls /readyz: the API server is an external process whose only
// signal of readiness is that endpoint, so a bounded poll is the honest wait.
func (s *Server) waitReady(ctx context.Context, ns Namespace) error {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.pki.caPEM)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	if ns != nil {
		tr.DialContext = ns.DialContext
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var last string
	for {
		for _, p := range s.procs {
			if exited, err := p.exited(); exited {
				return fmt.Errorf("%s exited before the API server was ready: %v\n%s", p.name, err, p.output())
			}
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+s.token)
		resp, err := hc.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, body)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kube-apiserver at %s not ready (last answer: %s): %w\n%s", s.url, last, ctx.Err(), s.procs[len(s.procs)-1].output())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Client is an admin clientset.
func (s *Server) Client() kubernetes.Interface { return s.client }

// Token is the bearer token of user: the admin's or one of Cluster.Users.
func (s *Server) Token(user string) string { return s.tokens[user] }

// AdminUser is the user of the admin token (group system:masters).
func (s *Server) AdminUser() string { return adminUser }

// CAFile is the cluster CA's certificate: it signs the serving certificate
// and the API server's kubelet client certificate.
func (s *Server) CAFile() string { return s.pki.caFile }

// ServiceAccountKeyFile is the private key that signs service-account
// tokens (kube-controller-manager's --service-account-private-key-file).
func (s *Server) ServiceAccountKeyFile() string { return s.pki.saKeyFile }

// RESTConfig is a copy of the admin client configuration.
func (s *Server) RESTConfig() *rest.Config { return rest.CopyConfig(s.restConfig) }

// Kubeconfig is the path of an admin kubeconfig file.
func (s *Server) Kubeconfig() string { return s.kubeconfig }

// URL is the API server's address.
func (s *Server) URL() string { return s.url }

// Kubectl returns the path of the kubectl built with the server.
func (s *Server) Kubectl() string { return filepath.Join(s.binDir, "kubectl") }

// Dir is the server's scratch directory, removed by Close.
func (s *Server) Dir() string { return s.dir }

// WriteKubeconfig writes a kubeconfig for user authenticating with token
// (the admin token, or a service-account token from TokenRequest).
func (s *Server) WriteKubeconfig(path, user, token string) (string, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["nodekit"] = &clientcmdapi.Cluster{Server: s.url, CertificateAuthorityData: s.pki.caPEM}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["nodekit"] = &clientcmdapi.Context{Cluster: "nodekit", AuthInfo: user}
	cfg.CurrentContext = "nodekit"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return "", fmt.Errorf("writing kubeconfig %s: %w", path, err)
	}
	return path, nil
}

// Stop ends the processes (kube-apiserver first, then etcd) but keeps the
// directory, so a test can see what happens while the API server is away.
func (s *Server) Stop() error {
	var errs []error
	for i := len(s.procs) - 1; i >= 0; i-- {
		errs = append(errs, s.procs[i].stop())
	}
	return errors.Join(errs...)
}

// Close stops every process and removes the directory. It is safe to call
// more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		err := s.Stop()
		if rerr := os.RemoveAll(s.dir); rerr != nil {
			err = errors.Join(err, fmt.Errorf("removing %s: %w", s.dir, rerr))
		}
		s.closeErr = err
	})
	return s.closeErr
}

func (s *Server) startProcess(name string, cmd *exec.Cmd, logger *slog.Logger) error {
	p := &process{name: name, cmd: cmd, done: make(chan struct{})}
	cmd.Stdout = &p.out
	cmd.Stderr = &p.out
	// Children die with the test process even when it is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", name, err)
	}
	logger.Debug("started", "process", name, "pid", cmd.Process.Pid)
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	s.procs = append(s.procs, p)
	return nil
}

// process is a child whose output is kept for error messages.
type process struct {
	name string
	cmd  *exec.Cmd
	out  lockedBuffer
	done chan struct{}
	err  error
}

func (p *process) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

func (p *process) output() string { return tail(p.out.String(), 6000) }

// stop sends SIGTERM to the process group, then SIGKILL if it lingers.
func (p *process) stop() error {
	if exited, _ := p.exited(); exited {
		return nil
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s (pid %d) did not exit after SIGKILL", p.name, pgid)
	}
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	// Keep memory bounded for chatty processes: keep the newest output.
	if b.buf.Len() > 1<<20 {
		rest := b.buf.Bytes()[b.buf.Len()-(256<<10):]
		b.buf = *bytes.NewBuffer(append([]byte(nil), rest...))
	}
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func freePorts(n int) ([]int, error) {
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
