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
// gauge and logs the advice for f once per adviceEvery.
func (s *Sender) stall(st *Stream, f failure) {
	now := s.cfg.Now()
	key := adviceKey{f.class, f.call, st.group}
	s.mu.Lock()
	prev, was := s.stalls[st]
	s.stalls[st] = f
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
			"class", f.class, "call", f.call, "streams", streams, "fix", f.advice(st.group), "err", f.err)
	}
}

// unstall records that st's batch went through (or was dropped).
func (s *Sender) unstall(st *Stream) {
	if !st.stalled {
		return
	}
	st.stalled = false
	s.mu.Lock()
	f := s.stalls[st]
	delete(s.stalls, st)
	s.stallGaugeLocked()
	s.mu.Unlock()
	st.logger.Info("CloudWatch Logs accepts the stream's batches again", "after", f.class)
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
}

// stallClasses are the values of logship_streams_stalled's class label.
var stallClasses = []awscfg.ErrorClass{awscfg.Throttled, awscfg.ServerError, awscfg.Network, awscfg.AccessDenied, awscfg.Other, NotFound}

// Blocked reports a failure that needs an operator (access denied, a
// group logship may not create, an error the SDK would not retry) holding
// up a stream, as a sentence with the fix; streams keep retrying
// meanwhile. Transient failures (throttling, server and network errors)
// are not reported: they pass by themselves.
func (s *Sender) Blocked() (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var first *Stream
	for st, f := range s.stalls {
		if f.needsOperator() && (first == nil || cmp.Or(cmp.Compare(st.group, first.group), cmp.Compare(st.name, first.name)) < 0) {
			first = st
		}
	}
	if first == nil {
		return "", false
	}
	f := s.stalls[first]
	return fmt.Sprintf("%s failing (%s) for log stream %s: %s", f.call, f.class, first.name, f.advice(first.group)), true
}
