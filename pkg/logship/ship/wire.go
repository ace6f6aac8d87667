package ship

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/nodekit/nodekit/pkg/logship/batch"
	"github.com/nodekit/nodekit/pkg/logship/record"
)

// WithFastPut is a cloudwatchlogs client option that lets a Sender write
// PutLogEvents request bodies itself. The SDK's generic JSON serializer
// escapes every message rune by rune and was most of logship's CPU time;
// the body written here is the same JSON, built with append in one pass.
// Everything else (endpoint, signing, retries, error decoding) stays the
// SDK's. Calls without a body from a Sender, and every other operation,
// use the SDK's serializer unchanged.
func WithFastPut(o *cloudwatchlogs.Options) {
	o.Protocol = &putProtocol{ClientProtocol: o.Protocol}
}

type putProtocol struct {
	smithyhttp.ClientProtocol
}

type bodyKey struct{}

// withBody carries a prebuilt PutLogEvents body to putProtocol.
func withBody(ctx context.Context, body []byte) context.Context {
	return context.WithValue(ctx, bodyKey{}, body)
}

// SerializeRequest implements smithyhttp.ClientProtocol.
func (p *putProtocol) SerializeRequest(ctx context.Context, schema *smithy.OperationSchema, in smithy.Serializable, req *smithyhttp.Request) error {
	body, ok := ctx.Value(bodyKey{}).([]byte)
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
	sreq, err := req.SetStream(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("setting PutLogEvents body: %w", err)
	}
	*req = *sreq
	return nil
}

// PutBody returns the PutLogEvents request body a Sender built for this
// call (nil if none): the SDK client sends it through WithFastPut, and a
// Client of another kind (a test double) reads the events from it.
func PutBody(ctx context.Context) []byte {
	body, _ := ctx.Value(bodyKey{}).([]byte)
	return body
}

// Per event: `{"timestamp":` 13 bytes, at most 20 digits, `,"message":"`
// 12, `"}` and a comma.
const eventFrame = 13 + 20 + 12 + 2 + 1

// putBodySize bounds the length of appendPutBody's output.
func putBodySize(group, stream string, events []batch.Event) int {
	// A name escapes to at most 6 bytes per byte.
	n := 64 + 6*(len(group)+len(stream))
	for _, e := range events {
		n += eventFrame + len(e.Message)
	}
	return n
}

// appendPutBody writes the PutLogEvents JSON request for events, whose
// messages are in wire form (JSON-escaped: see Chunk).
func appendPutBody(dst []byte, group, stream string, events []batch.Event) []byte {
	dst = append(dst, `{"logGroupName":"`...)
	dst, _ = record.AppendEscaped(dst, []byte(group), 1<<30)
	dst = append(dst, `","logStreamName":"`...)
	dst, _ = record.AppendEscaped(dst, []byte(stream), 1<<30)
	dst = append(dst, `","logEvents":[`...)
	// Neighbouring lines mostly share their millisecond: format each
	// timestamp once.
	var ts [20]byte
	last, digits := int64(-1), ts[:0]
	for i, e := range events {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"timestamp":`...)
		if e.Timestamp != last {
			last, digits = e.Timestamp, strconv.AppendInt(ts[:0], e.Timestamp, 10)
		}
		dst = append(dst, digits...)
		dst = append(dst, `,"message":"`...)
		dst = append(dst, e.Message...)
		dst = append(dst, `"}`...)
	}
	return append(dst, "]}"...)
}
