package ship

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/nodekit/nodekit/pkg/logship/batch"
	"github.com/nodekit/nodekit/pkg/logship/record"
)

// withFastPut is the cloudwatchlogs client option that lets a Sender supply
// PutLogEvents request bodies itself; NewClient applies it (a Sender's
// input to the SDK carries no events). The SDK's generic JSON serializer escapes every
// message rune by rune and was most of logship's CPU time; the body sent
// here is the same JSON, read from the records as the reader encoded them
// (see putBody). Everything else (endpoint, signing with the payload's
// SHA-256, retries, error decoding) stays the SDK's. Calls without a body
// from a Sender, and every other operation, use the SDK's serializer
// unchanged.
func withFastPut(o *cloudwatchlogs.Options) {
	o.Protocol = &putProtocol{ClientProtocol: o.Protocol}
}

type putProtocol struct {
	smithyhttp.ClientProtocol
}

type bodyKey struct{}

// withBody carries a prebuilt PutLogEvents body to putProtocol.
func withBody(ctx context.Context, body *putBody) context.Context {
	return context.WithValue(ctx, bodyKey{}, body)
}

// SerializeRequest implements smithyhttp.ClientProtocol.
func (p *putProtocol) SerializeRequest(ctx context.Context, schema *smithy.OperationSchema, in smithy.Serializable, req *smithyhttp.Request) error {
	body, ok := ctx.Value(bodyKey{}).(*putBody)
	if !ok || schema.ID().Name != "PutLogEvents" {
		return p.ClientProtocol.SerializeRequest(ctx, schema, in, req)
	}
	// What awsJson1_1 does for an operation, with our body.
	req.Method = http.MethodPost
	if len(req.URL.Path) == 0 {
		req.URL.Path = "/"
	}
	req.Header.Set("X-Amz-Target", "Logs_20140328.PutLogEvents")
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	sreq, err := req.SetStream(body.reader())
	if err != nil {
		return fmt.Errorf("setting PutLogEvents body: %w", err)
	}
	*req = *sreq
	return nil
}

// tailRun says that the events of a batch from index from on (until the
// next run) end with tail (their chunk's Tail).
type tailRun struct {
	from int
	tail []byte
}

// putBody is a PutLogEvents request body that is never assembled in one
// buffer: each event's message is read in place from its chunk (already in
// wire form) and then its chunk's shared Tail, between small frames
// (`{"timestamp":N,"message":"`) written per put. The signer hashes it and
// net/http sends it straight from those buffers, so a ~1 MiB batch costs
// a ~100 KiB frame buffer instead of a copy of itself.
type putBody struct {
	// frames holds the request's head and, per event, `"},` (after the
	// first) and the event's opening; ends[i] is where event i's ends.
	frames []byte
	ends   []int
	events []batch.Event
	tails  []tailRun
	size   int64
}

// bodyTail closes the last event and the request.
const bodyTail = `"}]}`

// build fills b for events of the stream, reusing b's storage; tails
// (sorted, the first from 0) gives each event's tail, none if empty.
func (b *putBody) build(group, stream string, events []batch.Event, tails []tailRun) {
	dst := b.frames[:0]
	dst = append(dst, `{"logGroupName":"`...)
	dst, _ = record.AppendEscaped(dst, []byte(group), 1<<30)
	dst = append(dst, `","logStreamName":"`...)
	dst, _ = record.AppendEscaped(dst, []byte(stream), 1<<30)
	dst = append(dst, `","logEvents":[`...)
	ends := b.ends[:0]
	// Neighbouring lines mostly share their millisecond: format each
	// timestamp once.
	var ts [20]byte
	last, digits := int64(-1), ts[:0]
	size := int64(len(bodyTail))
	for i, e := range events {
		if i > 0 {
			dst = append(dst, `"},`...)
		}
		dst = append(dst, `{"timestamp":`...)
		if e.Timestamp != last {
			last, digits = e.Timestamp, strconv.AppendInt(ts[:0], e.Timestamp, 10)
		}
		dst = append(dst, digits...)
		dst = append(dst, `,"message":"`...)
		ends = append(ends, len(dst))
		size += int64(len(e.Message))
	}
	for r, t := range tails {
		next := len(events)
		if r+1 < len(tails) {
			next = tails[r+1].from
		}
		size += int64(next-t.from) * int64(len(t.tail))
	}
	b.frames, b.ends, b.events, b.tails = dst, ends, events, tails
	b.size = size + int64(len(dst))
}

// reset drops the references to the events' buffers.
func (b *putBody) reset() { b.events, b.tails = nil, nil }

func (b *putBody) reader() *bodyReader { return &bodyReader{b: b} }

// bodyReader reads a putBody; it is what the SDK's signer hashes (through
// WriteTo) and net/http sends. It seeks, so the signer can rewind it.
type bodyReader struct {
	b   *putBody
	k   int   // current segment
	off int   // offset in it
	pos int64 // offset in the body
	run int   // the tail run of the current event
}

// segment returns the k-th piece of the body: per event its frame, its
// message and its tail; then the end of the request.
func (r *bodyReader) segment(k int) []byte {
	b := r.b
	i := k / 3
	switch {
	case i == len(b.events):
		return []byte(bodyTail)
	case k%3 == 1:
		return b.events[i].Message
	case k%3 == 2:
		if len(b.tails) == 0 {
			return nil
		}
		if r.run >= len(b.tails) || b.tails[r.run].from > i {
			r.run = 0
		}
		for r.run+1 < len(b.tails) && b.tails[r.run+1].from <= i {
			r.run++
		}
		return b.tails[r.run].tail
	case i == 0:
		return b.frames[:b.ends[0]]
	default:
		return b.frames[b.ends[i-1]:b.ends[i]]
	}
}

var (
	_ io.ReadSeeker = (*bodyReader)(nil)
	_ io.WriterTo   = (*bodyReader)(nil)
)

func (r *bodyReader) done() bool { return r.k > 3*len(r.b.events) }

// Len is how many bytes are left; smithy sizes the request with it.
func (r *bodyReader) Len() int { return int(r.b.size - r.pos) }

// Read implements io.Reader.
func (r *bodyReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) && !r.done() {
		seg := r.segment(r.k)
		c := copy(p[n:], seg[r.off:])
		n += c
		r.off += c
		if r.off == len(seg) {
			r.k, r.off = r.k+1, 0
		}
	}
	r.pos += int64(n)
	if n == 0 && r.done() {
		return 0, io.EOF
	}
	return n, nil
}

// WriteTo implements io.WriterTo: each piece is written from where it
// lies.
func (r *bodyReader) WriteTo(w io.Writer) (int64, error) {
	if r.pos == 0 {
		return r.writeAll(w)
	}
	var total int64
	for !r.done() {
		seg := r.segment(r.k)[r.off:]
		if len(seg) == 0 {
			r.k++
			continue
		}
		n, err := w.Write(seg)
		total += int64(n)
		r.pos += int64(n)
		r.off += n
		if err != nil {
			return total, err
		}
		if n < len(seg) {
			return total, io.ErrShortWrite
		}
		r.k, r.off = r.k+1, 0
	}
	return total, nil
}

// writeAll is WriteTo from the start (the signer's hash reads the whole
// body): the pieces in order, without looking each one up.
func (r *bodyReader) writeAll(w io.Writer) (total int64, err error) {
	b := r.b
	defer func() {
		if err == nil {
			// At the end, as if read piece by piece.
			r.k, r.off, r.pos, r.run = 3*len(b.events)+1, 0, b.size, 0
			return
		}
		// Stopped part way: be where the written bytes end.
		if _, serr := r.Seek(total, io.SeekStart); serr != nil {
			err = errors.Join(err, serr)
		}
	}()
	write := func(p []byte) error {
		if len(p) == 0 {
			return nil
		}
		n, err := w.Write(p)
		total += int64(n)
		if err == nil && n < len(p) {
			err = io.ErrShortWrite
		}
		return err
	}
	run, start := 0, 0
	for i, e := range b.events {
		for run+1 < len(b.tails) && b.tails[run+1].from <= i {
			run++
		}
		if err := write(b.frames[start:b.ends[i]]); err != nil {
			return total, err
		}
		start = b.ends[i]
		if err := write(e.Message); err != nil {
			return total, err
		}
		if len(b.tails) > 0 {
			if err := write(b.tails[run].tail); err != nil {
				return total, err
			}
		}
	}
	return total, write([]byte(bodyTail))
}

// Seek implements io.Seeker.
func (r *bodyReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		offset += r.pos
	case io.SeekEnd:
		offset += r.b.size
	}
	if offset < 0 || offset > r.b.size {
		return r.pos, fmt.Errorf("seeking PutLogEvents body to %d of %d bytes", offset, r.b.size)
	}
	// Walk from the start: the SDK only rewinds to the start and asks
	// for the current position.
	if offset == r.pos {
		return offset, nil
	}
	r.k, r.off, r.pos = 0, 0, 0
	for r.pos < offset {
		seg := r.segment(r.k)
		if rest := offset - r.pos; rest < int64(len(seg)) {
			r.off, r.pos = int(rest), offset
			break
		}
		r.pos += int64(len(seg))
		r.k++
	}
	return offset, nil
}
