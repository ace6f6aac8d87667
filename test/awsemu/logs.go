package awsemu

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

const logsTargetPrefix = "Logs_20140328."

// CloudWatch Logs limits, from the PutLogEvents API reference.
const (
	maxBatchEvents   = 10000
	maxBatchBytes    = 1048576 // sum of UTF-8 message bytes + 26 per event
	eventOverhead    = 26
	maxEventBytes    = 1048576 // message bytes + 26
	maxBatchSpan     = 24 * time.Hour
	maxEventAge      = 14 * 24 * time.Hour
	maxEventFuture   = 2 * time.Hour
	maxFilterBytes   = 1048576 // FilterLogEvents/GetLogEvents answer cap
	maxRequestBody   = 32 << 20
	defaultPageLimit = 10000
)

// Messages the real service answers with; clients (and tests) match on them.
const (
	msgGroupNotFound     = "The specified log group does not exist."
	msgStreamNotFound    = "The specified log stream does not exist."
	msgGroupExists       = "The specified log group already exists"
	msgStreamExists      = "The specified log stream already exists"
	msgNotChronological  = "Log events in a single PutLogEvents request must be in chronological order."
	msgSpanTooLong       = "The batch of log events in a single PutLogEvents request cannot span more than 24 hours."
	msgInvalidNextToken  = "The specified nextToken is invalid."
	retentionEnumMessage = "Member must satisfy enum value set: [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653]"
)

var validRetention = map[int]bool{1: true, 3: true, 5: true, 7: true, 14: true, 30: true, 60: true, 90: true,
	120: true, 150: true, 180: true, 365: true, 400: true, 545: true, 731: true, 1096: true, 1827: true,
	2192: true, 2557: true, 2922: true, 3288: true, 3653: true}

var (
	groupNameRE  = regexp.MustCompile(`^[\.\-_/#A-Za-z0-9]+$`)
	streamNameRE = regexp.MustCompile(`^[^:*]*$`)
)

type logGroup struct {
	name      string
	created   int64
	retention int // days; 0 = never expire
	streams   map[string]*logStream
}

type logStream struct {
	name        string
	created     int64
	events      []storedEvent // sorted by (ts, seq)
	lastIngest  int64
	storedBytes int64
	uploadToken string
}

type storedEvent struct {
	ts     int64
	ingest int64
	seq    uint64
	msg    string
}

// eventKey orders events the way the service returns them: by timestamp,
// then by arrival.
type eventKey struct {
	ts  int64
	seq uint64
}

func (a eventKey) less(b eventKey) bool {
	return a.ts < b.ts || (a.ts == b.ts && a.seq < b.seq)
}

func (ev storedEvent) key() eventKey { return eventKey{ev.ts, ev.seq} }

// Event is a stored log event, as tests see it.
type Event struct {
	Timestamp     time.Time
	IngestionTime time.Time
	Message       string
}

// Events returns the events stored in group/stream in the order the service
// returns them (timestamp, then arrival), or nil if the stream does not exist.
func (e *Emulator) Events(group, stream string) []Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	g, ok := e.groups[group]
	if !ok {
		return nil
	}
	s, ok := g.streams[stream]
	if !ok {
		return nil
	}
	out := make([]Event, len(s.events))
	for i, ev := range s.events {
		out[i] = Event{Timestamp: time.UnixMilli(ev.ts).UTC(), IngestionTime: time.UnixMilli(ev.ingest).UTC(), Message: ev.msg}
	}
	return out
}

// LogGroups returns the names of every log group, sorted.
func (e *Emulator) LogGroups() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]string, 0, len(e.groups))
	for n := range e.groups {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// LogStreams returns the names of the streams in group, sorted.
func (e *Emulator) LogStreams(group string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	g, ok := e.groups[group]
	if !ok {
		return nil
	}
	out := make([]string, 0, len(g.streams))
	for n := range g.streams {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// RetentionDays returns a group's retention (0: never expire) and whether
// the group exists.
func (e *Emulator) RetentionDays(group string) (int, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	g, ok := e.groups[group]
	if !ok {
		return 0, false
	}
	return g.retention, true
}

// logsError is a CloudWatch Logs error answer.
type logsError struct {
	status  int
	code    string
	message string
}

func (e *logsError) Error() string { return e.code + ": " + e.message }

func invalidParam(format string, args ...any) error {
	return &logsError{http.StatusBadRequest, "InvalidParameterException", fmt.Sprintf(format, args...)}
}

func notFound(msg string) error {
	return &logsError{http.StatusBadRequest, "ResourceNotFoundException", msg}
}

func writeLogsError(w http.ResponseWriter, le *logsError) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(le.status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": le.code, "message": le.message})
}

func (e *Emulator) serveLogs(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("x-amzn-RequestId", newRequestID())
	op := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), logsTargetPrefix)
	switch e.admit(r, op) {
	case faultAbandon:
		return
	case faultThrottle:
		writeLogsError(w, &logsError{http.StatusBadRequest, "ThrottlingException", "Rate exceeded"})
		return
	case faultServerError:
		writeLogsError(w, &logsError{http.StatusServiceUnavailable, "ServiceUnavailableException", "The service is unavailable. Please try again later."})
		return
	case faultDeny:
		writeLogsError(w, &logsError{http.StatusBadRequest, "AccessDeniedException", "User is not authorized to perform: logs:" + op})
		return
	}
	if r.Method != http.MethodPost {
		writeLogsError(w, &logsError{http.StatusMethodNotAllowed, "UnknownOperationException", ""})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
	if err != nil {
		writeLogsError(w, &logsError{http.StatusRequestEntityTooLarge, "SerializationException", "request body too large"})
		return
	}
	if f := e.authenticate(r, body); f != authOK {
		writeLogsError(w, logsAuthError(f))
		return
	}
	handlers := map[string]func([]byte) (any, error){
		"CreateLogGroup":        e.createLogGroup,
		"CreateLogStream":       e.createLogStream,
		"DeleteLogGroup":        e.deleteLogGroup,
		"DeleteLogStream":       e.deleteLogStream,
		"PutRetentionPolicy":    e.putRetentionPolicy,
		"DeleteRetentionPolicy": e.deleteRetentionPolicy,
		"DescribeLogGroups":     e.describeLogGroups,
		"DescribeLogStreams":    e.describeLogStreams,
		"PutLogEvents":          e.putLogEvents,
		"GetLogEvents":          e.getLogEvents,
		"FilterLogEvents":       e.filterLogEvents,
		"StartQuery":            e.startQuery,
		"GetQueryResults":       e.getQueryResults,
	}
	h, ok := handlers[op]
	if !ok {
		writeLogsError(w, &logsError{http.StatusBadRequest, "UnknownOperationException", ""})
		return
	}
	resp, err := h(body)
	if err != nil {
		var le *logsError
		if !errors.As(err, &le) {
			le = &logsError{http.StatusInternalServerError, "ServiceUnavailableException", err.Error()}
		}
		e.mu.Lock()
		e.counts[op+":"+le.code]++
		e.mu.Unlock()
		writeLogsError(w, le)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(resp)
}

// decode unmarshals a JSON 1.1 body; bad JSON is a SerializationException.
func decode(body []byte, v any) error {
	if len(strings.TrimSpace(string(body))) == 0 {
		body = []byte("{}")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return &logsError{http.StatusBadRequest, "SerializationException", err.Error()}
	}
	return nil
}

// checkGroupName validates a logGroupName parameter. strict adds the
// character pattern, which the service applies when creating.
func checkGroupName(v *validationErrors, name *string, member string, strict bool) {
	switch {
	case name == nil:
		v.add(nil, member, "Member must not be null")
	case len(*name) < 1:
		v.add(name, member, "Member must have length greater than or equal to 1")
	case len(*name) > 512:
		v.add(name, member, "Member must have length less than or equal to 512")
	case strict && !groupNameRE.MatchString(*name):
		v.add(name, member, `Member must satisfy regular expression pattern: [\.\-_/#A-Za-z0-9]+`)
	}
}

func checkStreamName(v *validationErrors, name *string, member string) {
	switch {
	case name == nil:
		v.add(nil, member, "Member must not be null")
	case len(*name) < 1:
		v.add(name, member, "Member must have length greater than or equal to 1")
	case len(*name) > 512:
		v.add(name, member, "Member must have length less than or equal to 512")
	case !streamNameRE.MatchString(*name):
		v.add(name, member, "Member must satisfy regular expression pattern: [^:*]*")
	}
}

func checkLimit(v *validationErrors, limit *int, max int) {
	if limit == nil {
		return
	}
	s := strconv.Itoa(*limit)
	switch {
	case *limit < 1:
		v.add(&s, "limit", "Member must have value greater than or equal to 1")
	case *limit > max:
		v.add(&s, "limit", fmt.Sprintf("Member must have value less than or equal to %d", max))
	}
}

func (v validationErrors) err() error {
	if len(v) == 0 {
		return nil
	}
	return invalidParam("%s", v.message())
}

// groupLocked finds a group or answers ResourceNotFound. e.mu held.
func (e *Emulator) groupLocked(name string) (*logGroup, error) {
	g, ok := e.groups[name]
	if !ok {
		return nil, notFound(msgGroupNotFound)
	}
	return g, nil
}

// resolveGroup picks the group from logGroupName or logGroupIdentifier
// (a name or an ARN), which some operations accept interchangeably.
func resolveGroup(name, identifier *string) (*string, error) {
	switch {
	case name != nil && identifier != nil:
		return nil, invalidParam("LogGroup name and LogGroup ARN are mutually exclusive parameters.")
	case identifier != nil:
		id := *identifier
		if strings.HasPrefix(id, "arn:") {
			if _, after, ok := strings.Cut(id, ":log-group:"); ok {
				id = strings.TrimSuffix(after, ":*")
			}
		}
		return &id, nil
	}
	return name, nil
}

func (e *Emulator) groupArn(name string) string {
	return fmt.Sprintf("arn:aws:logs:%s:%s:log-group:%s", e.region, e.accountID, name)
}

func (e *Emulator) createLogGroup(body []byte) (any, error) {
	name, err := decodeGroupRef(body, true)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.groups[name]; ok {
		return nil, &logsError{http.StatusBadRequest, "ResourceAlreadyExistsException", msgGroupExists}
	}
	e.groups[name] = &logGroup{name: name, created: e.now().UnixMilli(), streams: map[string]*logStream{}}
	return struct{}{}, nil
}

func (e *Emulator) createLogStream(body []byte) (any, error) {
	group, stream, err := decodeStreamRef(body)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	g, err := e.groupLocked(group)
	if err != nil {
		return nil, err
	}
	if _, ok := g.streams[stream]; ok {
		return nil, &logsError{http.StatusBadRequest, "ResourceAlreadyExistsException", msgStreamExists}
	}
	g.streams[stream] = &logStream{name: stream, created: e.now().UnixMilli()}
	return struct{}{}, nil
}

// decodeGroupRef decodes and validates a request naming one log group;
// strict applies CreateLogGroup's stricter name rules.
func decodeGroupRef(body []byte, strict bool) (string, error) {
	var in struct {
		LogGroupName *string `json:"logGroupName"`
	}
	if err := decode(body, &in); err != nil {
		return "", err
	}
	var v validationErrors
	checkGroupName(&v, in.LogGroupName, "logGroupName", strict)
	if err := v.err(); err != nil {
		return "", err
	}
	return *in.LogGroupName, nil
}

// decodeStreamRef decodes and validates a request naming one log stream.
func decodeStreamRef(body []byte) (group, stream string, err error) {
	var in struct {
		LogGroupName  *string `json:"logGroupName"`
		LogStreamName *string `json:"logStreamName"`
	}
	if err := decode(body, &in); err != nil {
		return "", "", err
	}
	var v validationErrors
	checkGroupName(&v, in.LogGroupName, "logGroupName", false)
	checkStreamName(&v, in.LogStreamName, "logStreamName")
	if err := v.err(); err != nil {
		return "", "", err
	}
	return *in.LogGroupName, *in.LogStreamName, nil
}

func (e *Emulator) deleteLogGroup(body []byte) (any, error) {
	name, err := decodeGroupRef(body, false)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, err := e.groupLocked(name); err != nil {
		return nil, err
	}
	delete(e.groups, name)
	return struct{}{}, nil
}

func (e *Emulator) deleteLogStream(body []byte) (any, error) {
	group, stream, err := decodeStreamRef(body)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	g, err := e.groupLocked(group)
	if err != nil {
		return nil, err
	}
	if _, ok := g.streams[stream]; !ok {
		return nil, notFound(msgStreamNotFound)
	}
	delete(g.streams, stream)
	return struct{}{}, nil
}

func (e *Emulator) putRetentionPolicy(body []byte) (any, error) {
	var in struct {
		LogGroupName    *string `json:"logGroupName"`
		RetentionInDays *int    `json:"retentionInDays"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	var v validationErrors
	checkGroupName(&v, in.LogGroupName, "logGroupName", false)
	switch {
	case in.RetentionInDays == nil:
		v.add(nil, "retentionInDays", "Member must not be null")
	case !validRetention[*in.RetentionInDays]:
		s := strconv.Itoa(*in.RetentionInDays)
		v.add(&s, "retentionInDays", retentionEnumMessage)
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	g, err := e.groupLocked(*in.LogGroupName)
	if err != nil {
		return nil, err
	}
	g.retention = *in.RetentionInDays
	return struct{}{}, nil
}

func (e *Emulator) deleteRetentionPolicy(body []byte) (any, error) {
	name, err := decodeGroupRef(body, false)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	g, err := e.groupLocked(name)
	if err != nil {
		return nil, err
	}
	g.retention = 0
	return struct{}{}, nil
}

// offsetToken and parseOffsetToken make the opaque nextToken of the
// Describe operations: a position in the sorted result.
// page returns the items from start, at most limit of them (never nil, so
// the JSON says [] as AWS does), and the token of the next page when more follow.
func page[T any](all []T, start, limit int) ([]T, string) {
	if start >= len(all) {
		return []T{}, ""
	}
	end := min(start+limit, len(all))
	if end < len(all) {
		return all[start:end], offsetToken(end)
	}
	return all[start:end], ""
}

func offsetToken(n int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("o/" + strconv.Itoa(n)))
}

func parseOffsetToken(tok *string) (int, error) {
	if tok == nil {
		return 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(*tok)
	if err != nil || !strings.HasPrefix(string(b), "o/") {
		return 0, invalidParam(msgInvalidNextToken)
	}
	n, err := strconv.Atoi(strings.TrimPrefix(string(b), "o/"))
	if err != nil || n < 0 {
		return 0, invalidParam(msgInvalidNextToken)
	}
	return n, nil
}

type logGroupOut struct {
	LogGroupName      string `json:"logGroupName"`
	CreationTime      int64  `json:"creationTime"`
	RetentionInDays   *int   `json:"retentionInDays,omitempty"`
	MetricFilterCount int    `json:"metricFilterCount"`
	Arn               string `json:"arn"`
	LogGroupArn       string `json:"logGroupArn"`
	StoredBytes       int64  `json:"storedBytes"`
	LogGroupClass     string `json:"logGroupClass"`
}

func (e *Emulator) describeLogGroups(body []byte) (any, error) {
	var in struct {
		LogGroupNamePrefix  *string `json:"logGroupNamePrefix"`
		LogGroupNamePattern *string `json:"logGroupNamePattern"`
		Limit               *int    `json:"limit"`
		NextToken           *string `json:"nextToken"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	var v validationErrors
	checkLimit(&v, in.Limit, 50)
	if err := v.err(); err != nil {
		return nil, err
	}
	if in.LogGroupNamePrefix != nil && in.LogGroupNamePattern != nil {
		return nil, invalidParam("LogGroupNamePrefix and LogGroupNamePattern are mutually exclusive parameters.")
	}
	start, err := parseOffsetToken(in.NextToken)
	if err != nil {
		return nil, err
	}
	limit := 50
	if in.Limit != nil {
		limit = *in.Limit
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var all []logGroupOut
	for _, g := range e.groups {
		if in.LogGroupNamePrefix != nil && !strings.HasPrefix(g.name, *in.LogGroupNamePrefix) {
			continue
		}
		if in.LogGroupNamePattern != nil && !strings.Contains(g.name, *in.LogGroupNamePattern) {
			continue
		}
		o := logGroupOut{
			LogGroupName:  g.name,
			CreationTime:  g.created,
			Arn:           e.groupArn(g.name) + ":*",
			LogGroupArn:   e.groupArn(g.name),
			LogGroupClass: "STANDARD",
		}
		if g.retention > 0 {
			r := g.retention
			o.RetentionInDays = &r
		}
		for _, s := range g.streams {
			o.StoredBytes += s.storedBytes
		}
		all = append(all, o)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].LogGroupName < all[j].LogGroupName })
	out := struct {
		LogGroups []logGroupOut `json:"logGroups"`
		NextToken string        `json:"nextToken,omitempty"`
	}{}
	out.LogGroups, out.NextToken = page(all, start, limit)
	return out, nil
}

type logStreamOut struct {
	LogStreamName       string `json:"logStreamName"`
	CreationTime        int64  `json:"creationTime"`
	FirstEventTimestamp *int64 `json:"firstEventTimestamp,omitempty"`
	LastEventTimestamp  *int64 `json:"lastEventTimestamp,omitempty"`
	LastIngestionTime   *int64 `json:"lastIngestionTime,omitempty"`
	UploadSequenceToken string `json:"uploadSequenceToken,omitempty"`
	Arn                 string `json:"arn"`
	StoredBytes         int64  `json:"storedBytes"`
}

func (e *Emulator) describeLogStreams(body []byte) (any, error) {
	var in struct {
		LogGroupName        *string `json:"logGroupName"`
		LogGroupIdentifier  *string `json:"logGroupIdentifier"`
		LogStreamNamePrefix *string `json:"logStreamNamePrefix"`
		OrderBy             *string `json:"orderBy"`
		Descending          bool    `json:"descending"`
		Limit               *int    `json:"limit"`
		NextToken           *string `json:"nextToken"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	name, err := resolveGroup(in.LogGroupName, in.LogGroupIdentifier)
	if err != nil {
		return nil, err
	}
	var v validationErrors
	checkGroupName(&v, name, "logGroupName", false)
	checkLimit(&v, in.Limit, 50)
	orderBy := "LogStreamName"
	if in.OrderBy != nil {
		orderBy = *in.OrderBy
		if orderBy != "LogStreamName" && orderBy != "LastEventTime" {
			v.add(in.OrderBy, "orderBy", "Member must satisfy enum value set: [LogStreamName, LastEventTime]")
		}
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	if orderBy == "LastEventTime" && in.LogStreamNamePrefix != nil {
		return nil, invalidParam("Cannot order by LastEventTime with a logStreamNamePrefix.")
	}
	start, err := parseOffsetToken(in.NextToken)
	if err != nil {
		return nil, err
	}
	limit := 50
	if in.Limit != nil {
		limit = *in.Limit
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	g, err := e.groupLocked(*name)
	if err != nil {
		return nil, err
	}
	var all []logStreamOut
	lastTS := map[string]int64{}
	for _, s := range g.streams {
		if in.LogStreamNamePrefix != nil && !strings.HasPrefix(s.name, *in.LogStreamNamePrefix) {
			continue
		}
		o := logStreamOut{
			LogStreamName:       s.name,
			CreationTime:        s.created,
			UploadSequenceToken: s.uploadToken,
			Arn:                 e.groupArn(g.name) + ":log-stream:" + s.name,
			StoredBytes:         s.storedBytes,
		}
		if n := len(s.events); n > 0 {
			first, last, ing := s.events[0].ts, s.events[n-1].ts, s.lastIngest
			o.FirstEventTimestamp, o.LastEventTimestamp, o.LastIngestionTime = &first, &last, &ing
			lastTS[s.name] = last
		}
		all = append(all, o)
	}
	sort.Slice(all, func(i, j int) bool {
		a, b := all[i], all[j]
		if orderBy == "LastEventTime" && lastTS[a.LogStreamName] != lastTS[b.LogStreamName] {
			return (lastTS[a.LogStreamName] < lastTS[b.LogStreamName]) != in.Descending
		}
		return (a.LogStreamName < b.LogStreamName) != in.Descending
	})
	out := struct {
		LogStreams []logStreamOut `json:"logStreams"`
		NextToken  string         `json:"nextToken,omitempty"`
	}{}
	out.LogStreams, out.NextToken = page(all, start, limit)
	return out, nil
}

type inputLogEvent struct {
	Timestamp *int64  `json:"timestamp"`
	Message   *string `json:"message"`
}

type rejectedInfo struct {
	TooNewLogEventStartIndex *int `json:"tooNewLogEventStartIndex,omitempty"`
	TooOldLogEventEndIndex   *int `json:"tooOldLogEventEndIndex,omitempty"`
	ExpiredLogEventEndIndex  *int `json:"expiredLogEventEndIndex,omitempty"`
}

// putLogEvents applies the documented limits in the order the service's
// layers do: request validation (null, counts, empty messages), then the
// resources, then sizes, order and span (each failing the whole call), and
// last the per-event age rules, which only reject events.
func (e *Emulator) putLogEvents(body []byte) (any, error) {
	var in struct {
		LogGroupName  *string          `json:"logGroupName"`
		LogStreamName *string          `json:"logStreamName"`
		LogEvents     *[]inputLogEvent `json:"logEvents"`
		SequenceToken *string          `json:"sequenceToken"` // ignored, as the service now does
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	var v validationErrors
	checkGroupName(&v, in.LogGroupName, "logGroupName", false)
	checkStreamName(&v, in.LogStreamName, "logStreamName")
	var events []inputLogEvent
	switch {
	case in.LogEvents == nil:
		v.add(nil, "logEvents", "Member must not be null")
	case len(*in.LogEvents) < 1:
		s := "[]"
		v.add(&s, "logEvents", "Member must have length greater than or equal to 1")
	case len(*in.LogEvents) > maxBatchEvents:
		s := fmt.Sprintf("[...%d log events...]", len(*in.LogEvents))
		v.add(&s, "logEvents", fmt.Sprintf("Member must have length less than or equal to %d", maxBatchEvents))
	default:
		events = *in.LogEvents
	}
	for i, ev := range events {
		member := fmt.Sprintf("logEvents.%d.member", i+1)
		if ev.Timestamp == nil {
			v.add(nil, member+".timestamp", "Member must not be null")
		}
		switch {
		case ev.Message == nil:
			v.add(nil, member+".message", "Member must not be null")
		case *ev.Message == "":
			v.add(ev.Message, member+".message", "Member must have length greater than or equal to 1")
		}
	}
	if err := v.err(); err != nil {
		return nil, err
	}

	e.mu.Lock()
	g, err := e.groupLocked(*in.LogGroupName)
	var retention int
	if err == nil {
		retention = g.retention
		if _, ok := g.streams[*in.LogStreamName]; !ok {
			err = notFound(msgStreamNotFound)
		}
	}
	e.mu.Unlock()
	if err != nil {
		return nil, err
	}

	total := 0
	for _, ev := range events {
		size := len(*ev.Message) + eventOverhead // len counts UTF-8 bytes
		if size > maxEventBytes {
			return nil, invalidParam("Log event too large: %d bytes exceeds limit of %d", size, maxEventBytes)
		}
		total += size
	}
	if total > maxBatchBytes {
		return nil, invalidParam("Upload too large: %d bytes exceeds limit of %d", total, maxBatchBytes)
	}
	for i := 1; i < len(events); i++ {
		if *events[i].Timestamp < *events[i-1].Timestamp {
			return nil, invalidParam(msgNotChronological)
		}
	}
	if *events[len(events)-1].Timestamp-*events[0].Timestamp > maxBatchSpan.Milliseconds() {
		return nil, invalidParam(msgSpanTooLong)
	}

	// Events are in order, so the too-old and expired ones form a prefix and
	// the too-new ones a suffix.
	now := e.now()
	nowMs := now.UnixMilli()
	oldest := nowMs - maxEventAge.Milliseconds()
	newest := nowMs + maxEventFuture.Milliseconds()
	tooOld, expired, tooNew := 0, 0, len(events)
	for i, ev := range events {
		ts := *ev.Timestamp
		if ts < oldest {
			tooOld = i + 1
		}
		if retention > 0 && ts < nowMs-int64(retention)*24*time.Hour.Milliseconds() {
			expired = i + 1
		}
		if ts > newest && tooNew == len(events) {
			tooNew = i
		}
	}
	var rejected *rejectedInfo
	if tooOld > 0 || expired > tooOld || tooNew < len(events) {
		rejected = &rejectedInfo{}
		if tooOld > 0 {
			rejected.TooOldLogEventEndIndex = &tooOld
		}
		if expired > tooOld {
			rejected.ExpiredLogEventEndIndex = &expired
		}
		if tooNew < len(events) {
			rejected.TooNewLogEventStartIndex = &tooNew
		}
	}
	first := max(tooOld, expired)

	e.mu.Lock()
	defer e.mu.Unlock()
	// The group or stream may have been deleted while we validated.
	g, err = e.groupLocked(*in.LogGroupName)
	if err != nil {
		return nil, err
	}
	s, ok := g.streams[*in.LogStreamName]
	if !ok {
		return nil, notFound(msgStreamNotFound)
	}
	for _, ev := range events[first:max(first, tooNew)] {
		e.eventSeq++
		s.insert(storedEvent{ts: *ev.Timestamp, ingest: nowMs, seq: e.eventSeq, msg: *ev.Message})
		s.storedBytes += int64(len(*ev.Message))
	}
	s.lastIngest = nowMs
	s.uploadToken = randomString(56, "0123456789")
	return struct {
		NextSequenceToken     string        `json:"nextSequenceToken"`
		RejectedLogEventsInfo *rejectedInfo `json:"rejectedLogEventsInfo,omitempty"`
	}{s.uploadToken, rejected}, nil
}

// insert keeps events sorted; the common case (newer than everything) is an
// append.
func (s *logStream) insert(ev storedEvent) {
	n := len(s.events)
	if n == 0 || !ev.key().less(s.events[n-1].key()) {
		s.events = append(s.events, ev)
		return
	}
	i := sort.Search(n, func(i int) bool { return ev.key().less(s.events[i].key()) })
	s.events = append(s.events, storedEvent{})
	copy(s.events[i+1:], s.events[i:])
	s.events[i] = ev
}

// window returns the events with start <= ts < end (nil bounds are open).
func (s *logStream) window(start, end *int64) []storedEvent {
	lo, hi := 0, len(s.events)
	if start != nil {
		lo = sort.Search(len(s.events), func(i int) bool { return s.events[i].ts >= *start })
	}
	if end != nil {
		hi = sort.Search(len(s.events), func(i int) bool { return s.events[i].ts >= *end })
	}
	if lo > hi {
		return nil
	}
	return s.events[lo:hi]
}

// GetLogEvents tokens carry a direction and the key of the boundary event:
// "f/<ts>/<seq>" continues after it, "b/<ts>/<seq>" before it.
func eventToken(dir byte, k eventKey) string {
	return fmt.Sprintf("%c/%d/%d", dir, k.ts, k.seq)
}

func parseEventToken(tok string) (byte, eventKey, error) {
	parts := strings.Split(tok, "/")
	if len(parts) != 3 || (parts[0] != "f" && parts[0] != "b") {
		return 0, eventKey{}, invalidParam(msgInvalidNextToken)
	}
	ts, err1 := strconv.ParseInt(parts[1], 10, 64)
	seq, err2 := strconv.ParseUint(parts[2], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, eventKey{}, invalidParam(msgInvalidNextToken)
	}
	return parts[0][0], eventKey{ts, seq}, nil
}

type outputLogEvent struct {
	Timestamp     int64  `json:"timestamp"`
	Message       string `json:"message"`
	IngestionTime int64  `json:"ingestionTime"`
}

func (e *Emulator) getLogEvents(body []byte) (any, error) {
	var in struct {
		LogGroupName       *string `json:"logGroupName"`
		LogGroupIdentifier *string `json:"logGroupIdentifier"`
		LogStreamName      *string `json:"logStreamName"`
		StartTime          *int64  `json:"startTime"`
		EndTime            *int64  `json:"endTime"`
		NextToken          *string `json:"nextToken"`
		Limit              *int    `json:"limit"`
		StartFromHead      bool    `json:"startFromHead"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	name, err := resolveGroup(in.LogGroupName, in.LogGroupIdentifier)
	if err != nil {
		return nil, err
	}
	var v validationErrors
	checkGroupName(&v, name, "logGroupName", false)
	checkStreamName(&v, in.LogStreamName, "logStreamName")
	checkLimit(&v, in.Limit, defaultPageLimit)
	if in.NextToken != nil && *in.NextToken == "" {
		v.add(in.NextToken, "nextToken", "Member must have length greater than or equal to 1")
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	limit := defaultPageLimit
	if in.Limit != nil {
		limit = *in.Limit
	}
	dir := byte('b')
	if in.StartFromHead {
		dir = 'f'
	}
	var bound *eventKey
	if in.NextToken != nil {
		d, k, err := parseEventToken(*in.NextToken)
		if err != nil {
			return nil, err
		}
		dir, bound = d, &k
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	g, err := e.groupLocked(*name)
	if err != nil {
		return nil, err
	}
	s, ok := g.streams[*in.LogStreamName]
	if !ok {
		return nil, notFound(msgStreamNotFound)
	}
	win := s.window(in.StartTime, in.EndTime)
	var page []storedEvent
	if dir == 'f' {
		lo := 0
		if bound != nil {
			lo = sort.Search(len(win), func(i int) bool { return bound.less(win[i].key()) })
		}
		page = capBytes(win[lo:min(lo+limit, len(win))], false)
	} else {
		hi := len(win)
		if bound != nil {
			hi = sort.Search(len(win), func(i int) bool { return !win[i].key().less(*bound) })
		}
		page = capBytes(win[max(0, hi-limit):hi], true)
	}

	out := struct {
		Events            []outputLogEvent `json:"events"`
		NextForwardToken  string           `json:"nextForwardToken"`
		NextBackwardToken string           `json:"nextBackwardToken"`
	}{Events: make([]outputLogEvent, 0, len(page))}
	for _, ev := range page {
		out.Events = append(out.Events, outputLogEvent{ev.ts, ev.msg, ev.ingest})
	}
	switch {
	case len(page) > 0:
		out.NextForwardToken = eventToken('f', page[len(page)-1].key())
		out.NextBackwardToken = eventToken('b', page[0].key())
	case bound != nil:
		// Nothing more this way: hand back the same position, which is
		// how SDK paginators know to stop.
		out.NextForwardToken = eventToken('f', *bound)
		out.NextBackwardToken = eventToken('b', *bound)
	default:
		var k eventKey
		if len(win) > 0 {
			k = win[len(win)-1].key()
		}
		out.NextForwardToken = eventToken('f', k)
		out.NextBackwardToken = eventToken('b', k)
	}
	return out, nil
}

// capBytes trims a page to the service's 1 MB answer size, keeping the
// events nearest the reading position (the end when reading backwards).
func capBytes(page []storedEvent, fromEnd bool) []storedEvent {
	total := 0
	if fromEnd {
		for i := len(page) - 1; i >= 0; i-- {
			total += len(page[i].msg) + eventOverhead
			if total > maxFilterBytes && i < len(page)-1 {
				return page[i+1:]
			}
		}
		return page
	}
	for i, ev := range page {
		total += len(ev.msg) + eventOverhead
		if total > maxFilterBytes && i > 0 {
			return page[:i]
		}
	}
	return page
}

type filteredEvent struct {
	LogStreamName string `json:"logStreamName"`
	Timestamp     int64  `json:"timestamp"`
	Message       string `json:"message"`
	IngestionTime int64  `json:"ingestionTime"`
	EventID       string `json:"eventId"`
}

type searchedStream struct {
	LogStreamName      string `json:"logStreamName"`
	SearchedCompletely bool   `json:"searchedCompletely"`
}

func (e *Emulator) filterLogEvents(body []byte) (any, error) {
	var in struct {
		LogGroupName        *string  `json:"logGroupName"`
		LogGroupIdentifier  *string  `json:"logGroupIdentifier"`
		LogStreamNames      []string `json:"logStreamNames"`
		LogStreamNamePrefix *string  `json:"logStreamNamePrefix"`
		StartTime           *int64   `json:"startTime"`
		EndTime             *int64   `json:"endTime"`
		FilterPattern       *string  `json:"filterPattern"`
		NextToken           *string  `json:"nextToken"`
		Limit               *int     `json:"limit"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	name, err := resolveGroup(in.LogGroupName, in.LogGroupIdentifier)
	if err != nil {
		return nil, err
	}
	var v validationErrors
	checkGroupName(&v, name, "logGroupName", false)
	checkLimit(&v, in.Limit, defaultPageLimit)
	if in.LogStreamNames != nil && (len(in.LogStreamNames) < 1 || len(in.LogStreamNames) > 100) {
		s := fmt.Sprintf("%v", in.LogStreamNames)
		v.add(&s, "logStreamNames", "Member must have length between 1 and 100")
	}
	if in.FilterPattern != nil && utf8.RuneCountInString(*in.FilterPattern) > 1024 {
		v.add(in.FilterPattern, "filterPattern", "Member must have length less than or equal to 1024")
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	if in.LogStreamNames != nil && in.LogStreamNamePrefix != nil {
		return nil, invalidParam("You cannot specify both LogStreamNames and LogStreamNamePrefix.")
	}
	pattern := ""
	if in.FilterPattern != nil {
		pattern = *in.FilterPattern
	}
	match, err := compileFilter(pattern)
	if err != nil {
		return nil, invalidParam("%s", err.Error())
	}
	limit := defaultPageLimit
	if in.Limit != nil {
		limit = *in.Limit
	}
	var after *eventKey
	if in.NextToken != nil {
		k, err := parseFilterToken(*in.NextToken)
		if err != nil {
			return nil, err
		}
		after = &k
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	g, err := e.groupLocked(*name)
	if err != nil {
		return nil, err
	}
	type hit struct {
		stream string
		ev     storedEvent
	}
	var (
		hits     []hit
		searched []searchedStream
	)
	wanted := map[string]bool{}
	for _, n := range in.LogStreamNames {
		wanted[n] = true
	}
	for _, s := range g.streams {
		if in.LogStreamNames != nil && !wanted[s.name] {
			continue
		}
		if in.LogStreamNamePrefix != nil && !strings.HasPrefix(s.name, *in.LogStreamNamePrefix) {
			continue
		}
		searched = append(searched, searchedStream{s.name, true})
		for _, ev := range s.window(in.StartTime, in.EndTime) {
			if after != nil && !after.less(ev.key()) {
				continue
			}
			if match(ev.msg) {
				hits = append(hits, hit{s.name, ev})
			}
		}
	}
	sort.Slice(hits, func(i, j int) bool { return hits[i].ev.key().less(hits[j].ev.key()) })
	sort.Slice(searched, func(i, j int) bool { return searched[i].LogStreamName < searched[j].LogStreamName })

	out := struct {
		Events             []filteredEvent  `json:"events"`
		SearchedLogStreams []searchedStream `json:"searchedLogStreams"`
		NextToken          string           `json:"nextToken,omitempty"`
	}{Events: []filteredEvent{}, SearchedLogStreams: searched}
	if out.SearchedLogStreams == nil {
		out.SearchedLogStreams = []searchedStream{}
	}
	total := 0
	for i, h := range hits {
		total += len(h.ev.msg) + eventOverhead
		if i == limit || (total > maxFilterBytes && i > 0) {
			out.NextToken = filterToken(hits[i-1].ev.key())
			break
		}
		out.Events = append(out.Events, filteredEvent{
			LogStreamName: h.stream,
			Timestamp:     h.ev.ts,
			Message:       h.ev.msg,
			IngestionTime: h.ev.ingest,
			EventID:       fmt.Sprintf("%040d", h.ev.seq),
		})
	}
	return out, nil
}

func filterToken(k eventKey) string {
	return base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf("e/%d/%d", k.ts, k.seq)))
}

func parseFilterToken(tok string) (eventKey, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return eventKey{}, invalidParam(msgInvalidNextToken)
	}
	parts := strings.Split(string(b), "/")
	if len(parts) != 3 || parts[0] != "e" {
		return eventKey{}, invalidParam(msgInvalidNextToken)
	}
	ts, err1 := strconv.ParseInt(parts[1], 10, 64)
	seq, err2 := strconv.ParseUint(parts[2], 10, 64)
	if err1 != nil || err2 != nil {
		return eventKey{}, invalidParam(msgInvalidNextToken)
	}
	return eventKey{ts, seq}, nil
}
