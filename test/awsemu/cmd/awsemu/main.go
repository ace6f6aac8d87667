// Command awsemu runs the nodekit AWS emulator (STS, CloudWatch Logs, IMDS)
// as a standalone process for the demo and benchmarks.
//
//	go run ./test/awsemu/cmd/awsemu --listen 127.0.0.1:4566 --imds-listen 169.254.169.254:80 \
//	    --fault PutLogEvents:throttle=7,5xx=11
//
// It prints the endpoint and the environment a client needs, then serves
// until interrupted. Faults can be changed at runtime through the admin API
// (see package awsemu).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/nodekit/nodekit/test/awsemu"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "awsemu:", err)
		os.Exit(1)
	}
}

// faultFlags collects repeated --fault values.
type faultFlags map[string]awsemu.Fault

func (f faultFlags) String() string {
	parts := make([]string, 0, len(f))
	for op := range f {
		parts = append(parts, op)
	}
	return strings.Join(parts, ",")
}

func (f faultFlags) Set(s string) error {
	op, fault, err := awsemu.ParseFault(s)
	if err != nil {
		return err
	}
	f[op] = fault
	return nil
}

// keyFlags collects repeated --credentials ID:SECRET values.
type keyFlags map[string]string

func (k keyFlags) String() string { return fmt.Sprint(len(k), " keys") }

func (k keyFlags) Set(s string) error {
	id, secret, ok := strings.Cut(s, ":")
	if !ok || id == "" || secret == "" {
		return errors.New("want ACCESS_KEY_ID:SECRET")
	}
	k[id] = secret
	return nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("awsemu", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		listen     = fs.String("listen", "127.0.0.1:4566", "address for STS, CloudWatch Logs, IMDS and the admin API (/_awsemu/)")
		imdsListen = fs.String("imds-listen", "", "optional extra address serving only IMDS (e.g. 169.254.169.254:80 inside a node namespace)")
		region     = fs.String("region", awsemu.DefaultRegion, "region the emulator reports")
		account    = fs.String("account-id", awsemu.DefaultAccountID, "account id in every ARN")
		nodeRole   = fs.String("node-role", awsemu.DefaultNodeRole, "instance profile role name served by IMDS")
		instanceID = fs.String("instance-id", "", "instance id served by IMDS (default i-0123456789abcdef0)")
		localIP    = fs.String("local-ipv4", "", "local-ipv4 served by IMDS (default 10.0.0.10)")
		requireV2  = fs.Bool("imds-require-v2", false, "refuse tokenless IMDS GETs with 401 (HttpTokens=required)")
		logLevel   = fs.String("log-level", "info", "debug, info, warn or error")
		strict     = fs.Bool("strict-credentials", false, "authenticate STS and Logs requests: known keys only, session tokens, expiry and SigV4 signatures checked")
		faults     = faultFlags{}
		keys       = keyFlags{}
	)
	fs.Var(faults, "fault", "OP:throttle=N,5xx=N,latency=D,blackhole,deny (repeatable; OP \"*\" = every operation)")
	fs.Var(keys, "credentials", "ACCESS_KEY_ID:SECRET accepted in --strict-credentials mode (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("parsing --log-level %q: %w", *logLevel, err)
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	emu := awsemu.New(awsemu.Options{
		Region:            *region,
		AccountID:         *account,
		Logger:            logger,
		StrictCredentials: *strict,
		IMDS: awsemu.IMDSConfig{
			RequireV2:  *requireV2,
			NodeRole:   *nodeRole,
			InstanceID: *instanceID,
			LocalIPv4:  *localIP,
		},
	})
	for op, f := range faults {
		emu.SetFault(op, f)
	}
	for id, secret := range keys {
		emu.AddCredentials(id, secret)
	}

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", *listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", *listen, err)
	}
	servers := []struct {
		ln net.Listener
		h  http.Handler
	}{{ln, emu}}
	endpoint := "http://" + ln.Addr().String()
	imdsEndpoint := endpoint
	if *imdsListen != "" {
		iln, err := lc.Listen(ctx, "tcp", *imdsListen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listening on %s: %w", *imdsListen, err)
		}
		servers = append(servers, struct {
			ln net.Listener
			h  http.Handler
		}{iln, emu.IMDSHandler()})
		imdsEndpoint = "http://" + iln.Addr().String()
	}

	fmt.Fprintf(stdout, "awsemu listening on %s\n", endpoint)
	fmt.Fprintf(stdout, "AWS_ENDPOINT_URL=%s\n", endpoint)
	fmt.Fprintf(stdout, "AWS_EC2_METADATA_SERVICE_ENDPOINT=%s\n", imdsEndpoint)
	fmt.Fprintf(stdout, "AWS_REGION=%s\n", *region)

	g, gctx := errgroup.WithContext(ctx)
	for _, s := range servers {
		srv := &http.Server{
			Handler:           s.h,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       time.Minute,
			IdleTimeout:       2 * time.Minute,
			// No WriteTimeout: latency and blackhole faults hold answers
			// back on purpose; the client's context bounds them.
			ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		}
		ln := s.ln
		g.Go(func() error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serving %s: %w", ln.Addr(), err)
			}
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			// Release blackholed requests so Shutdown can drain them.
			emu.ClearFaults()
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := srv.Shutdown(sctx); err != nil {
				return fmt.Errorf("shutting down %s: %w", ln.Addr(), err)
			}
			return nil
		})
	}
	return g.Wait()
}
