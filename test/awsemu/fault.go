package awsemu

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Fault describes how the emulator misbehaves for one operation. The zero
// Fault means "behave".
//
// Every-N counters start at the SetFault call: with ThrottleEvery 3 the 3rd,
// 6th, 9th... request after SetFault is throttled. When both counters hit the
// same request, throttling wins.
type Fault struct {
	// ThrottleEvery N answers every Nth request with the service's
	// throttling error (STS Throttling, Logs ThrottlingException, IMDS 429).
	ThrottleEvery int
	// ServerErrorEvery N answers every Nth request with a 5xx.
	ServerErrorEvery int
	// Latency delays every request before it is handled (real time).
	Latency time.Duration
	// Blackhole accepts requests and never answers until the request's
	// context ends, the fault is changed or cleared, or the Emulator is
	// closed.
	Blackhole bool
	// Deny answers every request with the service's access-denied error
	// (Logs AccessDeniedException, STS AccessDenied, IMDS 403), as when
	// the caller's role lacks the permission.
	Deny bool
}

// IsZero reports whether f injects nothing.
func (f Fault) IsZero() bool { return f == Fault{} }

type faultJSON struct {
	ThrottleEvery    int    `json:"throttleEvery,omitempty"`
	ServerErrorEvery int    `json:"serverErrorEvery,omitempty"`
	Latency          string `json:"latency,omitempty"`
	Blackhole        bool   `json:"blackhole,omitempty"`
	Deny             bool   `json:"deny,omitempty"`
}

// MarshalJSON writes Latency as a Go duration string ("250ms").
func (f Fault) MarshalJSON() ([]byte, error) {
	j := faultJSON{ThrottleEvery: f.ThrottleEvery, ServerErrorEvery: f.ServerErrorEvery, Blackhole: f.Blackhole, Deny: f.Deny}
	if f.Latency > 0 {
		j.Latency = f.Latency.String()
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads the shape MarshalJSON writes.
func (f *Fault) UnmarshalJSON(b []byte) error {
	var j faultJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("decoding fault: %w", err)
	}
	out := Fault{ThrottleEvery: j.ThrottleEvery, ServerErrorEvery: j.ServerErrorEvery, Blackhole: j.Blackhole, Deny: j.Deny}
	if j.Latency != "" {
		d, err := time.ParseDuration(j.Latency)
		if err != nil {
			return fmt.Errorf("decoding fault latency %q: %w", j.Latency, err)
		}
		out.Latency = d
	}
	if err := out.validate(); err != nil {
		return err
	}
	*f = out
	return nil
}

func (f Fault) validate() error {
	if f.ThrottleEvery < 0 || f.ServerErrorEvery < 0 || f.Latency < 0 {
		return fmt.Errorf("fault %+v: counts and latency must not be negative", f)
	}
	return nil
}

// ParseFault parses the command-line form of a fault:
//
//	OP:throttle=7,5xx=11,latency=200ms,blackhole,deny
//
// OP may be "*" to apply to every operation without a fault of its own.
func ParseFault(s string) (string, Fault, error) {
	op, spec, ok := strings.Cut(s, ":")
	if !ok || op == "" {
		return "", Fault{}, fmt.Errorf("fault %q: want OP:key=value,...", s)
	}
	var f Fault
	for _, kv := range strings.Split(spec, ",") {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		var err error
		switch k {
		case "throttle":
			f.ThrottleEvery, err = strconv.Atoi(v)
		case "5xx", "error":
			f.ServerErrorEvery, err = strconv.Atoi(v)
		case "latency":
			f.Latency, err = time.ParseDuration(v)
		case "blackhole":
			f.Blackhole, err = flagValue(v)
		case "deny":
			f.Deny, err = flagValue(v)
		default:
			err = fmt.Errorf("unknown key")
		}
		if err != nil {
			return "", Fault{}, fmt.Errorf("fault %q: %q: %w", s, kv, err)
		}
	}
	if err := f.validate(); err != nil {
		return "", Fault{}, err
	}
	return op, f, nil
}

// flagValue parses a key's value that may be left out (true).
func flagValue(v string) (bool, error) {
	switch v {
	case "", "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("want true or false")
}

// faultState is one operation's fault with its own request counter.
// released is closed when the fault is replaced, so blackholed requests
// waiting on it wake up.
type faultState struct {
	fault    Fault
	n        int
	released chan struct{}
}

// SetFault installs f for op (an operation name such as "PutLogEvents",
// "AssumeRole", "IMDSCredentials", or "*" for every operation without its
// own fault), replacing any previous one. A zero Fault clears it.
func (e *Emulator) SetFault(op string, f Fault) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if old, ok := e.faults[op]; ok {
		close(old.released)
		delete(e.faults, op)
	}
	if !f.IsZero() {
		e.faults[op] = &faultState{fault: f, released: make(chan struct{})}
	}
}

// ClearFaults removes every fault and releases blackholed requests.
func (e *Emulator) ClearFaults() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for op, fs := range e.faults {
		close(fs.released)
		delete(e.faults, op)
	}
}

// Faults returns a copy of the installed faults by operation.
func (e *Emulator) Faults() map[string]Fault {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]Fault, len(e.faults))
	for op, fs := range e.faults {
		out[op] = fs.fault
	}
	return out
}

type faultAction int

const (
	faultNone faultAction = iota
	faultThrottle
	faultServerError
	faultDeny
	faultAbandon // the client went away (or the emulator closed) while held
)

// admit counts a request for op and applies its fault's latency and
// blackhole. It returns what the handler must answer instead of the real
// operation, if anything.
func (e *Emulator) admit(r *http.Request, op string) faultAction {
	e.mu.Lock()
	e.counts[op]++
	// Tell waiters a request arrived, even one a fault will hold.
	close(e.changed)
	e.changed = make(chan struct{})
	fs, ok := e.faults[op]
	if !ok {
		fs, ok = e.faults["*"]
	}
	if !ok {
		e.mu.Unlock()
		return faultNone
	}
	fs.n++
	f, n, released := fs.fault, fs.n, fs.released
	e.mu.Unlock()

	ctx := r.Context()
	if f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return faultAbandon
		}
	}
	if f.Blackhole {
		select {
		case <-ctx.Done():
			return faultAbandon
		case <-released:
			// The fault changed: answer normally from here.
			return faultNone
		}
	}
	switch {
	case f.Deny:
		return faultDeny
	case f.ThrottleEvery > 0 && n%f.ThrottleEvery == 0:
		return faultThrottle
	case f.ServerErrorEvery > 0 && n%f.ServerErrorEvery == 0:
		return faultServerError
	}
	return faultNone
}
