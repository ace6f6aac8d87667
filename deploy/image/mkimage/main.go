// Command mkimage builds the nodekit image (package image): `make image`
// for the local OCI archive, `make image-release` to push the release.
//
//	go run ./deploy/image/mkimage --out bin/image [--ref localhost/nodekit:TAG]
//	go run ./deploy/image/mkimage --base release --push --ref ghcr.io/nodekit/nodekit:TAG
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/nodekit/nodekit/deploy/image"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "mkimage: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	var o image.Options
	var platforms string
	fs := flag.NewFlagSet("mkimage", flag.ContinueOnError)
	fs.StringVar(&o.OutDir, "out", "", "directory for the OCI layout ("+image.LayoutName+"/) and archive ("+image.ArchiveName+")")
	fs.StringVar(&o.Reference, "ref", "", "image reference: the archive's image name, or where --push sends it (default localhost/nodekit:VERSION)")
	fs.StringVar(&o.Version, "version", "", "version stamped into the binaries (default: git describe)")
	fs.StringVar(&o.LDFlags, "ldflags", "", "go build -ldflags (default: the Makefile's LDFLAGS for --version)")
	fs.StringVar(&platforms, "platforms", "", "comma-separated platforms (default linux/amd64,linux/arm64)")
	fs.StringVar(&o.Base, "base", image.LocalBase, `base image: "`+image.LocalBase+`" (made here from Debian packages), "release" (`+image.ReleaseBase+`) or another reference`)
	fs.BoolVar(&o.Push, "push", false, "push the image to --ref")
	fs.StringVar(&o.CacheDir, "cache", "", "cache directory (default $NODEKIT_CACHE or ~/.cache/nodekit)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.Base == "release" {
		o.Base = image.ReleaseBase
	}
	if platforms != "" {
		o.Platforms = strings.Split(platforms, ",")
	}
	o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{
		// Progress lines, not records: drop the time stamp.
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	res, err := image.Build(ctx, o)
	if err != nil {
		return err
	}
	if res.Archive != "" {
		fmt.Printf("%s\n  reference %s\n  digest    %s\n  platforms %s\n  import    ctr -n k8s.io images import %s\n",
			res.Archive, res.Reference, res.Digest, strings.Join(res.Platforms, " "), res.Archive)
	} else {
		fmt.Printf("%s@%s\n", res.Reference, res.Digest)
	}
	return nil
}
