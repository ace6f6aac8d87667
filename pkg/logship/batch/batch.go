// Package batch builds PutLogEvents batches to CloudWatch Logs' exact limits:
// at most MaxBytes counting each message's UTF-8 bytes plus EventOverhead per
// event, at most MaxEvents events, a span of at most MaxSpan between the
// first and last timestamp, events in chronological order.
//
// Order: a stream's lines must reach CloudWatch in file order, yet runtimes
// do not guarantee monotonic timestamps (stdout and stderr race, clocks step
// back). A Batch therefore never reorders: an event older than its
// predecessor is given its predecessor's timestamp (the record's "time"
// field keeps the runtime's own value).
package batch

import (
	"errors"
	"fmt"
	"time"
)

// CloudWatch Logs PutLogEvents limits.
const (
	MaxBytes      = 1_048_576
	EventOverhead = 26
	MaxEvents     = 10_000
	MaxSpan       = 24 * time.Hour
	// MaxMessage is the largest message one event may carry: a batch of
	// that single event is exactly MaxBytes.
	MaxMessage = MaxBytes - EventOverhead
)

// Event is one log event; Timestamp is in Unix milliseconds.
type Event struct {
	Timestamp int64
	Message   []byte
	// Size, when not zero, is the message's size as CloudWatch counts it
	// (its UTF-8 bytes) and Message holds it in another form, such as
	// escaped for a request body; otherwise the size is len(Message).
	Size int
}

// size is the message's size as CloudWatch counts it.
func (e Event) size() int {
	if e.Size > 0 {
		return e.Size
	}
	return len(e.Message)
}

// ErrTooLarge is returned for a message no batch can carry; callers split
// messages before they get here.
var ErrTooLarge = errors.New("log event larger than CloudWatch's event limit")

// ErrEmpty is returned for an empty message, which CloudWatch rejects.
var ErrEmpty = errors.New("empty log event")

// Batch accumulates events for one stream. The zero value is ready to use;
// it is not safe for concurrent use.
type Batch struct {
	Events []Event
	bytes  int
	// floor is the timestamp of the previous event, carried across batches
	// so that a stream's timestamps never go back.
	floor int64
}

// Bytes is the batch size as CloudWatch counts it.
func (b *Batch) Bytes() int { return b.bytes }

// Len is the number of events.
func (b *Batch) Len() int { return len(b.Events) }

// Fits reports whether e can be added without breaking a limit.
func (b *Batch) Fits(e Event) bool {
	if len(b.Events) == 0 {
		return true
	}
	if len(b.Events)+1 > MaxEvents || b.bytes+e.size()+EventOverhead > MaxBytes {
		return false
	}
	ts := max(e.Timestamp, b.floor)
	return ts-b.Events[0].Timestamp <= MaxSpan.Milliseconds()
}

// Add appends e, clamping its timestamp to keep the batch chronological.
// The caller checks Fits first; Add refuses (and leaves the batch unchanged
// on) anything that would make the batch invalid.
func (b *Batch) Add(e Event) error {
	if len(e.Message) == 0 {
		return ErrEmpty
	}
	if e.size() > MaxMessage {
		return fmt.Errorf("%w: %d bytes", ErrTooLarge, e.size())
	}
	if !b.Fits(e) {
		return fmt.Errorf("event of %d bytes does not fit a batch of %d events and %d bytes", e.size(), len(b.Events), b.bytes)
	}
	e.Timestamp = max(e.Timestamp, b.floor)
	b.floor = e.Timestamp
	b.Events = append(b.Events, e)
	b.bytes += e.size() + EventOverhead
	return nil
}

// Reset empties the batch, keeping its capacity and the timestamp floor.
func (b *Batch) Reset() {
	clear(b.Events) // drop references to message buffers
	b.Events = b.Events[:0]
	b.bytes = 0
}

// Validate checks every limit; it is the oracle for tests and fuzzing.
func Validate(events []Event) error {
	if len(events) == 0 || len(events) > MaxEvents {
		return fmt.Errorf("batch has %d events", len(events))
	}
	size := 0
	for i, e := range events {
		if len(e.Message) == 0 || e.size() > MaxMessage {
			return fmt.Errorf("event %d has %d bytes", i, e.size())
		}
		size += e.size() + EventOverhead
		if i > 0 && e.Timestamp < events[i-1].Timestamp {
			return fmt.Errorf("event %d is older than event %d", i, i-1)
		}
	}
	if size > MaxBytes {
		return fmt.Errorf("batch is %d bytes", size)
	}
	if span := events[len(events)-1].Timestamp - events[0].Timestamp; span > MaxSpan.Milliseconds() {
		return fmt.Errorf("batch spans %d ms", span)
	}
	return nil
}
