package batch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// fill adds events through the Fits/Add protocol a sender uses, returning
// the batches it would have sent.
func fill(t testing.TB, events []Event) [][]Event {
	var out [][]Event
	var b Batch
	for _, e := range events {
		if !b.Fits(e) {
			out = append(out, append([]Event(nil), b.Events...))
			b.Reset()
		}
		if err := b.Add(e); err != nil {
			t.Fatalf("add %d bytes: %v", len(e.Message), err)
		}
	}
	if b.Len() > 0 {
		out = append(out, append([]Event(nil), b.Events...))
	}
	return out
}

func msg(n int) []byte { return bytes.Repeat([]byte("x"), n) }

func TestLimits(t *testing.T) {
	day := MaxSpan.Milliseconds()
	tests := []struct {
		name      string
		events    []Event
		wantSizes []int // events per batch
	}{
		{"exactly_max_bytes_in_one", []Event{{Timestamp: 0, Message: msg(MaxBytes/2 - EventOverhead)}, {Timestamp: 0, Message: msg(MaxBytes/2 - EventOverhead)}}, []int{2}},
		{"one_byte_over_splits", []Event{{Timestamp: 0, Message: msg(MaxBytes/2 - EventOverhead)}, {Timestamp: 0, Message: msg(MaxBytes/2 - EventOverhead + 1)}}, []int{1, 1}},
		{"max_message_alone", []Event{{Timestamp: 0, Message: msg(1)}, {Timestamp: 0, Message: msg(MaxMessage)}, {Timestamp: 0, Message: msg(1)}}, []int{1, 1, 1}},
		{"span_exactly_24h", []Event{{Timestamp: 0, Message: msg(1)}, {Timestamp: day, Message: msg(1)}}, []int{2}},
		{"span_24h_plus_1ms", []Event{{Timestamp: 0, Message: msg(1)}, {Timestamp: day + 1, Message: msg(1)}}, []int{1, 1}},
		// A wire-form message is counted by its Size, not its length.
		{"size_counts_not_length", []Event{{Message: msg(10), Size: MaxBytes/2 - EventOverhead}, {Message: msg(10), Size: MaxBytes/2 - EventOverhead + 1}}, []int{1, 1}},
		{"size_fits_exactly", []Event{{Message: msg(10), Size: MaxBytes/2 - EventOverhead}, {Message: msg(10), Size: MaxBytes/2 - EventOverhead}}, []int{2}},
		{"older_event_clamped_not_reordered", []Event{{Timestamp: 100, Message: msg(1)}, {Timestamp: 50, Message: msg(2)}, {Timestamp: 200, Message: msg(3)}}, []int{3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			batches := fill(t, tc.events)
			var sizes []int
			for _, b := range batches {
				if err := Validate(b); err != nil {
					t.Errorf("invalid batch: %v", err)
				}
				sizes = append(sizes, len(b))
			}
			if len(sizes) != len(tc.wantSizes) {
				t.Fatalf("batch sizes %v, want %v", sizes, tc.wantSizes)
			}
			for i := range sizes {
				if sizes[i] != tc.wantSizes[i] {
					t.Fatalf("batch sizes %v, want %v", sizes, tc.wantSizes)
				}
			}
		})
	}
}

func TestMaxEvents(t *testing.T) {
	events := make([]Event, MaxEvents+1)
	for i := range events {
		events[i] = Event{Timestamp: int64(i), Message: msg(1)}
	}
	batches := fill(t, events)
	if len(batches) != 2 || len(batches[0]) != MaxEvents || len(batches[1]) != 1 {
		t.Fatalf("got %d batches", len(batches))
	}
}

func TestOrderKept(t *testing.T) {
	var b Batch
	for i, ts := range []int64{10, 5, 20, 15} {
		if err := b.Add(Event{Timestamp: ts, Message: []byte{byte('a' + i)}}); err != nil {
			t.Fatal(err)
		}
	}
	var got []byte
	var stamps []int64
	for _, e := range b.Events {
		got = append(got, e.Message...)
		stamps = append(stamps, e.Timestamp)
	}
	if string(got) != "abcd" || stamps[1] != 10 || stamps[3] != 20 {
		t.Fatalf("order %q stamps %v", got, stamps)
	}
	// The floor survives Reset: the next batch cannot go back in time.
	b.Reset()
	_ = b.Add(Event{Timestamp: 1, Message: msg(1)})
	if b.Events[0].Timestamp != 20 {
		t.Fatalf("timestamp after reset = %d, want 20", b.Events[0].Timestamp)
	}
}

func TestAddRefusesInvalid(t *testing.T) {
	var b Batch
	if err := b.Add(Event{Timestamp: 0, Message: nil}); !errors.Is(err, ErrEmpty) {
		t.Errorf("empty: %v", err)
	}
	if err := b.Add(Event{Timestamp: 0, Message: msg(MaxMessage + 1)}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("too large: %v", err)
	}
	if b.Len() != 0 {
		t.Fatal("refused events were added")
	}
}

// FuzzBatch drives the batcher with arbitrary sizes and timestamps; every
// batch it produces must pass Validate and together they must hold every
// event in order.
func FuzzBatch(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 255, 255, 0, 0, 9, 9, 9, 9})
	f.Fuzz(func(t *testing.T, data []byte) {
		var events []Event
		for len(data) >= 4 {
			size := int(binary.LittleEndian.Uint16(data)) * 17 % (MaxMessage + 1)
			if size == 0 {
				size = 1
			}
			ts := int64(int16(binary.LittleEndian.Uint16(data[2:]))) * 3_600_000 / 7
			events = append(events, Event{Timestamp: ts, Message: msg(size)})
			data = data[4:]
		}
		n := 0
		for _, b := range fill(t, events) {
			if err := Validate(b); err != nil {
				t.Fatal(err)
			}
			for _, e := range b {
				if len(e.Message) != len(events[n].Message) {
					t.Fatalf("event %d out of order", n)
				}
				n++
			}
		}
		if n != len(events) {
			t.Fatalf("shipped %d of %d events", n, len(events))
		}
	})
}

func BenchmarkBatch(b *testing.B) {
	m := msg(300)
	var bt Batch
	b.SetBytes(int64(len(m)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		e := Event{Timestamp: int64(i), Message: m}
		if !bt.Fits(e) {
			bt.Reset()
		}
		if err := bt.Add(e); err != nil {
			b.Fatal(err)
		}
	}
}
