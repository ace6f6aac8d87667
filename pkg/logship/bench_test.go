package logship

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nodekit/nodekit/pkg/logship/batch"
	"github.com/nodekit/nodekit/pkg/logship/parse"
	"github.com/nodekit/nodekit/pkg/logship/record"
	"github.com/nodekit/nodekit/pkg/logship/tail"
)

// criFile writes ~size bytes of ~110-byte CRI lines, like the throughput
// figure's workload.
func criFile(b *testing.B, size int) (string, int) {
	var buf bytes.Buffer
	for i := 0; buf.Len() < size; i++ {
		fmt.Fprintf(&buf, "2026-11-21T10:00:00.%09dZ stdout F GET /api/v1/items/%08d 200 12ms user=alice ua=curl/8.5 ref=-\n", i%1e9, i)
	}
	path := filepath.Join(b.TempDir(), "0.log")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		b.Fatal(err)
	}
	return path, buf.Len()
}

// readAll follows path to its end, calling line for every line.
func readAll(b *testing.B, path string, line func(l []byte, start, end int64)) {
	fl, err := tail.Open(path, nil, tail.DefaultConfig(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	defer fl.Close()
	fl.Drain()
	for {
		c, err := fl.Next(context.Background())
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			b.Fatal(err)
		}
		data, off := c.Data, c.Start
		for len(data) > 0 {
			i := bytes.IndexByte(data, '\n')
			n := len(data)
			l := data
			if i >= 0 {
				l, n = data[:i], i+1
			}
			line(l, off, off+int64(n))
			off += int64(n)
			data = data[n:]
		}
	}
}

// BenchmarkReadParseCRI is read + CRI parse per core (the >1 GB/s goal).
func BenchmarkReadParseCRI(b *testing.B) {
	path, size := criFile(b, 64<<20)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		p := parse.New(parse.CRI, 0, func(parse.Entry) { n++ })
		readAll(b, path, p.Line)
		if n == 0 {
			b.Fatal("no entries")
		}
	}
}

// BenchmarkReadParseEncodeBatch adds record encoding and batching: the
// whole per-node CPU path except the HTTP call.
func BenchmarkReadParseEncodeBatch(b *testing.B) {
	path, size := criFile(b, 64<<20)
	enc, err := record.New(record.Kubernetes{
		PodName: "web-1", NamespaceName: "shop", PodID: "0b5e7f0e-8f0a-4f7e-9a57-2f5b2c1f8c11", Host: "ip-10-0-0-1.ec2.internal",
		ContainerName: "app", DockerID: "4f5d8c3a9b2e", ContainerImage: "registry/app:1.2.3", Labels: map[string]string{"app": "web", "pod-template-hash": "5d8c9b7f4"},
	}, batch.MaxMessage)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	buf := make([]byte, 0, 1<<20)
	var bt batch.Batch
	now := time.Now
	for b.Loop() {
		p := parse.New(parse.CRI, 0, func(e parse.Entry) {
			if len(buf) > cap(buf)-64<<10 {
				buf = buf[:0]
			}
			buf = enc.Append(buf, e.Log, e.Stream.String(), e.TimeRaw, now, func(start, end int) {
				ev := batch.Event{Timestamp: e.Time / 1e6, Message: buf[start:end]}
				if !bt.Fits(ev) {
					bt.Reset()
				}
				_ = bt.Add(ev)
			})
		})
		readAll(b, path, p.Line)
	}
}
