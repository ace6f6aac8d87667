package ship

import (
	"cmp"
	"fmt"
	"time"

	"github.com/nodekit/nodekit/pkg/awscfg"
)

// failure is why a stream's batch is not accepted yet: the failing call
// and the class of its error.
type failure struct {
	class awscfg.ErrorClass
	call  string
	err   error
	// since is when the stream's batch first failed, kept while it keeps
	// failing, whatever the class.
	since time.Time
}

// needsOperator reports failures that retrying alone will not fix.
func (f failure) needsOperator() bool {
	return !f.class.Transient() && f.class != NotFound && f.class != Invalid
}

// advice says what to do about f, a failure on log group group.
func (f failure) advice(group string) string {
	switch f.class {
	case awscfg.AccessDenied:
		if f.call == "CreateLogGroup" {
			return fmt.Sprintf("log group %s does not exist and logship may not create it: create it, or allow logs:CreateLogGroup (and logs:PutRetentionPolicy with --retention-days) to the node's role", group)
		}
		return fmt.Sprintf("AWS refused logs:%s on log group %s: allow it to the node's role, or fix the node's AWS credentials if the error names them", f.call, group)
	case awscfg.Throttled:
		return "the account's CloudWatch Logs request quota is spent: raise the PutLogEvents quota, or ship less (--exclude-namespaces, the nodekit.io/logship annotation)"
	case awscfg.ServerError:
		return "CloudWatch Logs is failing; logship retries until it recovers"
	case awscfg.Network:
		return "CloudWatch Logs does not answer: check the node's route to the logs endpoint (proxies, security groups, AWS_ENDPOINT_URL_CLOUDWATCH_LOGS)"
	case NotFound:
		return fmt.Sprintf("log group %s or its stream is missing; logship creates them", group)
	}
	return fmt.Sprintf("CloudWatch Logs refused logs:%s on log group %s in a way retrying may not fix; see the error", f.call, group)
}

// adviceEvery is how often one piece of advice is logged while it holds.
const adviceEvery = time.Minute

type adviceKey struct {
	class awscfg.ErrorClass
	call  string
	group string
}

// stall records that st's batch waits on f, updates the stalled-streams
// gauge and logs the advice for f once per adviceEvery. It returns the
// channel closed when another call succeeds.
func (s *Sender) stall(st *Stream, f failure) (recovered <-chan struct{}) {
	now := s.cfg.Now()
	key := adviceKey{f.class, f.call, st.group}
	s.mu.Lock()
	prev, was := s.stalls[st]
	f.since = now
	if was {
		f.since = prev.since
	}
	s.stalls[st] = f
	recovered = s.recovered
	if !was || prev.class != f.class {
		s.stallGaugeLocked()
	}
	due := now.Sub(s.advised[key]) >= adviceEvery
	if due {
		s.advised[key] = now
	}
	streams := 0
	for _, g := range s.stalls {
		if g.class == f.class {
			streams++
		}
	}
	s.mu.Unlock()
	st.stalled = true
	if due {
		st.logger.Warn("CloudWatch Logs call failing; retrying, and reading is paused for the streams it holds up",
			"class", f.class, "call", f.call, "streams", streams, "failing_for", now.Sub(f.since).Round(time.Second), "fix", f.advice(st.group), "err", f.err)
	}
	return recovered
}

// unstall records that st's batch went through (or was dropped), and wakes
// the streams still waiting out a backoff: the service answers again.
func (s *Sender) unstall(st *Stream) {
	if !st.stalled {
		// The common case, a put going through with nothing failing,
		// takes no lock.
		if s.nstalls.Load() == 0 {
			return
		}
		s.mu.Lock()
		s.wakeStalledLocked()
		s.mu.Unlock()
		return
	}
	st.stalled = false
	s.mu.Lock()
	f := s.stalls[st]
	delete(s.stalls, st)
	s.stallGaugeLocked()
	s.wakeStalledLocked()
	s.mu.Unlock()
	st.logger.Info("CloudWatch Logs accepts the stream's batches again", "after", f.class, "failed_for", s.cfg.Now().Sub(f.since).Round(time.Second))
}

// wakeStalledLocked wakes the streams in a backoff; s.mu held.
func (s *Sender) wakeStalledLocked() {
	if len(s.stalls) == 0 {
		return
	}
	close(s.recovered)
	s.recovered = make(chan struct{})
}

// stallGaugeLocked sets logship_streams_stalled from the stalls; s.mu held.
func (s *Sender) stallGaugeLocked() {
	counts := map[awscfg.ErrorClass]int{}
	for _, f := range s.stalls {
		counts[f.class]++
	}
	for _, c := range stallClasses {
		s.metrics.stalled.WithLabelValues(string(c)).Set(float64(counts[c]))
	}
	s.nstalls.Store(int32(len(s.stalls)))
}

// StalledFor is how long the stream stalled longest has waited on failing
// calls (0 when none is stalled).
func (s *Sender) StalledFor() time.Duration {
	if s.nstalls.Load() == 0 {
		return 0
	}
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	var d time.Duration
	for _, f := range s.stalls {
		d = max(d, now.Sub(f.since))
	}
	return d
}

// stallClasses are the values of logship_streams_stalled's class label.
var stallClasses = []awscfg.ErrorClass{awscfg.Throttled, awscfg.ServerError, awscfg.Network, awscfg.AccessDenied, awscfg.Other, NotFound}

// Blocked reports, as a sentence with the fix, a failure that needs an
// operator (access denied, a group logship may not create, an error the
// SDK would not retry) holding up a stream, or failures that pass by
// themselves (throttling, server and network errors) that have held one
// up for longer than UnreadyAfter: CloudWatch Logs out of reach. Streams
// keep retrying meanwhile.
func (s *Sender) Blocked() (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var first, oldest *Stream
	for st, f := range s.stalls {
		if f.needsOperator() && (first == nil || cmp.Or(cmp.Compare(st.group, first.group), cmp.Compare(st.name, first.name)) < 0) {
			first = st
		}
		if oldest == nil || f.since.Before(s.stalls[oldest].since) {
			oldest = st
		}
	}
	if first != nil {
		f := s.stalls[first]
		return fmt.Sprintf("%s failing (%s) for log stream %s: %s", f.call, f.class, first.name, f.advice(first.group)), true
	}
	if oldest == nil {
		return "", false
	}
	f := s.stalls[oldest]
	if age := s.cfg.Now().Sub(f.since); age > s.cfg.UnreadyAfter {
		return fmt.Sprintf("CloudWatch Logs out of reach for %v (%s on %s, %d streams waiting); retrying, nothing dropped while the log files are held: %s",
			age.Round(time.Second), f.class, f.call, len(s.stalls), f.advice(oldest.group)), true
	}
	return "", false
}
