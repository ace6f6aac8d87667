package awsemu

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// This file answers StartQuery/GetQueryResults for a small subset of the
// CloudWatch Logs Insights language, enough for demos and the SRE query
// command's tests:
//
//	fields a, b, @timestamp            (choose the result columns)
//	display a, b                       (same, final)
//	filter <expr>                      =, !=, <, >, <=, >=, like /re/, like "substr",
//	                                   not like, in [..], and, or, not, parentheses
//	sort <field> asc|desc [, ...]      (the direction is required)
//	limit N
//	stats count(*) [as name] [by f1, f2]
//
// Fields are @timestamp, @message, @logStream, @log, @ingestionTime and the
// keys of JSON messages flattened with dots (kubernetes.namespace_name,
// tags.0). Queries run to completion inside StartQuery; GetQueryResults
// always answers status Complete. Anything else is a MalformedQueryException
// naming what the emulator does not support.

type queryRecord map[string]string

type queryState struct {
	rows      [][]resultField
	matched   int
	scanned   int
	bytes     int
	createdAt time.Time
}

type resultField struct {
	Field string `json:"field"`
	Value string `json:"value"`
}

func malformed(format string, args ...any) error {
	return &logsError{http.StatusBadRequest, "MalformedQueryException", fmt.Sprintf(format, args...)}
}

func (e *Emulator) startQuery(body []byte) (any, error) {
	var in struct {
		LogGroupName        *string  `json:"logGroupName"`
		LogGroupNames       []string `json:"logGroupNames"`
		LogGroupIdentifiers []string `json:"logGroupIdentifiers"`
		StartTime           *int64   `json:"startTime"`
		EndTime             *int64   `json:"endTime"`
		QueryString         *string  `json:"queryString"`
		Limit               *int     `json:"limit"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	var v validationErrors
	if in.StartTime == nil {
		v.add(nil, "startTime", "Member must not be null")
	}
	if in.EndTime == nil {
		v.add(nil, "endTime", "Member must not be null")
	}
	if in.QueryString == nil {
		v.add(nil, "queryString", "Member must not be null")
	}
	checkLimit(&v, in.Limit, defaultPageLimit)
	if err := v.err(); err != nil {
		return nil, err
	}
	var groups []string
	if in.LogGroupName != nil {
		groups = append(groups, *in.LogGroupName)
	}
	groups = append(groups, in.LogGroupNames...)
	for _, id := range in.LogGroupIdentifiers {
		name, _ := resolveGroup(nil, &id)
		groups = append(groups, *name)
	}
	if len(groups) == 0 {
		return nil, invalidParam("Log group name(s) or identifiers must be specified.")
	}
	if *in.EndTime < *in.StartTime {
		return nil, invalidParam("End time should not be before the start time")
	}
	q, err := parseQuery(*in.QueryString)
	if err != nil {
		return nil, err
	}
	limit := defaultPageLimit
	if in.Limit != nil {
		limit = *in.Limit
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	var records []queryRecord
	st := &queryState{createdAt: e.now()}
	for _, name := range groups {
		g, err := e.groupLocked(name)
		if err != nil {
			return nil, err
		}
		for _, s := range g.streams {
			for _, ev := range s.events {
				if sec := ev.ts / 1000; sec < *in.StartTime || sec > *in.EndTime {
					continue
				}
				st.scanned++
				st.bytes += len(ev.msg)
				records = append(records, makeRecord(e.accountID, g.name, s.name, ev))
			}
		}
	}
	// Stable base order: time, then arrival.
	sort.SliceStable(records, func(i, j int) bool {
		a, _ := strconv.ParseInt(records[i]["@ts"], 10, 64)
		b, _ := strconv.ParseInt(records[j]["@ts"], 10, 64)
		if a != b {
			return a < b
		}
		return records[i]["@seq"] < records[j]["@seq"]
	})
	rows, matched := q.run(records, limit)
	st.rows, st.matched = rows, matched
	id := newRequestID()
	if e.queries == nil {
		e.queries = map[string]*queryState{}
	}
	e.queries[id] = st
	return map[string]string{"queryId": id}, nil
}

func (e *Emulator) getQueryResults(body []byte) (any, error) {
	var in struct {
		QueryID *string `json:"queryId"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if in.QueryID == nil {
		return nil, invalidParam("1 validation error detected: Value null at 'queryId' failed to satisfy constraint: Member must not be null")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	st, ok := e.queries[*in.QueryID]
	if !ok {
		return nil, notFound("The specified query does not exist.")
	}
	rows := st.rows
	if rows == nil {
		rows = [][]resultField{}
	}
	return map[string]any{
		"status":  "Complete",
		"results": rows,
		"statistics": map[string]float64{
			"recordsMatched": float64(st.matched),
			"recordsScanned": float64(st.scanned),
			"bytesScanned":   float64(st.bytes),
		},
	}, nil
}

func makeRecord(account, group, stream string, ev storedEvent) queryRecord {
	r := queryRecord{
		"@timestamp":     time.UnixMilli(ev.ts).UTC().Format("2006-01-02 15:04:05.000"),
		"@ingestionTime": time.UnixMilli(ev.ingest).UTC().Format("2006-01-02 15:04:05.000"),
		"@message":       ev.msg,
		"@logStream":     stream,
		"@log":           account + ":" + group,
		"@ptr":           fmt.Sprintf("awsemu/%d", ev.seq),
		"@ts":            strconv.FormatInt(ev.ts, 10),
		"@seq":           fmt.Sprintf("%020d", ev.seq),
	}
	var doc any
	dec := json.NewDecoder(strings.NewReader(ev.msg))
	dec.UseNumber()
	if dec.Decode(&doc) == nil {
		if m, ok := doc.(map[string]any); ok {
			flatten("", m, r)
		}
	}
	return r
}

func flatten(prefix string, v any, out queryRecord) {
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			flatten(joinKey(prefix, k), c, out)
		}
	case []any:
		for i, c := range x {
			flatten(joinKey(prefix, strconv.Itoa(i)), c, out)
		}
	case nil:
	default:
		if s, ok := scalarText(x); ok && prefix != "" {
			if _, taken := out[prefix]; !taken {
				out[prefix] = s
			}
		}
	}
}

func joinKey(prefix, k string) string {
	if prefix == "" {
		return k
	}
	return prefix + "." + k
}

// query is a parsed pipeline.
type query struct {
	stages []func(records []queryRecord) []queryRecord
	// display is the result column list; nil means the default columns.
	display []string
	limit   int // 0: none
	// matched counts records surviving the filters before stats/limit.
	matchedAt int
}

func (q *query) run(records []queryRecord, maxRows int) ([][]resultField, int) {
	matched := len(records)
	for i, st := range q.stages {
		records = st(records)
		if i < q.matchedAt {
			matched = len(records)
		}
	}
	limit := maxRows
	if q.limit > 0 && q.limit < limit {
		limit = q.limit
	}
	if len(records) > limit {
		records = records[:limit]
	}
	cols := q.display
	if cols == nil {
		cols = []string{"@timestamp", "@message", "@logStream", "@log"}
	}
	rows := make([][]resultField, 0, len(records))
	for _, r := range records {
		var row []resultField
		for _, c := range cols {
			if v, ok := r[c]; ok {
				row = append(row, resultField{c, v})
			}
		}
		if p, ok := r["@ptr"]; ok {
			row = append(row, resultField{"@ptr", p})
		}
		rows = append(rows, row)
	}
	return rows, matched
}

// splitPipes splits on | outside quotes, backticks and /regex/.
func splitPipes(s string) []string {
	var parts []string
	var quote byte
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'' || c == '`':
			quote = c
		case c == '/' && (strings.HasSuffix(strings.TrimRight(s[start:i], " \t\n"), "like") ||
			strings.HasSuffix(strings.TrimRight(s[start:i], " \t\n"), "=~")):
			quote = '/'
		case c == '|':
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

var commandRE = regexp.MustCompile(`^\s*([A-Za-z]+)\b\s*(.*?)\s*$`)

func parseQuery(src string) (*query, error) {
	q := &query{}
	sawStats := false
	for _, part := range splitPipes(src) {
		m := commandRE.FindStringSubmatch(strings.ReplaceAll(part, "\n", " "))
		if m == nil {
			return nil, malformed("unexpected symbol in query: %q", strings.TrimSpace(part))
		}
		cmd, arg := strings.ToLower(m[1]), m[2]
		switch cmd {
		case "fields", "display":
			cols, err := parseFieldList(arg)
			if err != nil {
				return nil, err
			}
			if cmd == "fields" && q.display != nil && !sawStats {
				q.display = append(q.display, cols...)
			} else {
				q.display = cols
			}
		case "filter":
			pred, err := parseInsightsExpr(arg)
			if err != nil {
				return nil, err
			}
			q.stages = append(q.stages, func(rs []queryRecord) []queryRecord {
				var out []queryRecord
				for _, r := range rs {
					if pred(r) {
						out = append(out, r)
					}
				}
				return out
			})
			if !sawStats {
				q.matchedAt = len(q.stages)
			}
		case "sort":
			st, err := parseSort(arg)
			if err != nil {
				return nil, err
			}
			q.stages = append(q.stages, st)
		case "limit":
			n, err := strconv.Atoi(arg)
			if err != nil || n < 1 || n > defaultPageLimit {
				return nil, malformed("limit must be a number between 1 and %d, got %q", defaultPageLimit, arg)
			}
			q.limit = n
		case "stats":
			st, cols, err := parseStats(arg)
			if err != nil {
				return nil, err
			}
			q.stages = append(q.stages, st)
			q.display = cols
			sawStats = true
		default:
			return nil, malformed("awsemu does not support the %q command", cmd)
		}
	}
	return q, nil
}

var fieldRE = regexp.MustCompile("^(@?[A-Za-z0-9_][A-Za-z0-9_.\\-]*|@[A-Za-z]+|`[^`]+`)$")

func parseField(s string) (string, error) {
	s = strings.TrimSpace(s)
	if !fieldRE.MatchString(s) {
		return "", malformed("awsemu does not support the field expression %q", s)
	}
	return strings.Trim(s, "`"), nil
}

func parseFieldList(arg string) ([]string, error) {
	var cols []string
	for _, f := range strings.Split(arg, ",") {
		name, err := parseField(f)
		if err != nil {
			return nil, err
		}
		cols = append(cols, name)
	}
	return cols, nil
}

func parseSort(arg string) (func([]queryRecord) []queryRecord, error) {
	type key struct {
		field string
		desc  bool
	}
	var keys []key
	for _, part := range strings.Split(arg, ",") {
		words := strings.Fields(part)
		if len(words) != 2 || (words[1] != "asc" && words[1] != "desc") {
			return nil, malformed("awsemu needs sort <field> asc|desc, got %q", strings.TrimSpace(part))
		}
		f, err := parseField(words[0])
		if err != nil {
			return nil, err
		}
		keys = append(keys, key{f, words[1] == "desc"})
	}
	return func(rs []queryRecord) []queryRecord {
		sort.SliceStable(rs, func(i, j int) bool {
			for _, k := range keys {
				c := compareValues(rs[i], rs[j], k.field)
				if c != 0 {
					return (c < 0) != k.desc
				}
			}
			return false
		})
		return rs
	}, nil
}

// compareValues orders by a field: missing values last, numbers
// numerically, else as strings. @timestamp sorts by the raw time.
func compareValues(a, b queryRecord, field string) int {
	if field == "@timestamp" {
		field = "@ts"
	}
	av, aok := a[field]
	bv, bok := b[field]
	switch {
	case !aok && !bok:
		return 0
	case !aok:
		return 1
	case !bok:
		return -1
	}
	an, aNum := parseNumber(av)
	bn, bNum := parseNumber(bv)
	if aNum && bNum {
		return an.Cmp(bn)
	}
	return strings.Compare(av, bv)
}

var statsRE = regexp.MustCompile(`^count\(\s*\*?\s*\)(?:\s+as\s+([A-Za-z_][A-Za-z0-9_]*))?(?:\s+by\s+(.+))?$`)

func parseStats(arg string) (func([]queryRecord) []queryRecord, []string, error) {
	m := statsRE.FindStringSubmatch(strings.TrimSpace(arg))
	if m == nil {
		return nil, nil, malformed("awsemu supports only stats count(*) [as name] [by fields], got %q", arg)
	}
	name := "count(*)"
	if m[1] != "" {
		name = m[1]
	}
	var by []string
	if m[2] != "" {
		var err error
		if by, err = parseFieldList(m[2]); err != nil {
			return nil, nil, err
		}
	}
	cols := append(append([]string{}, by...), name)
	return func(rs []queryRecord) []queryRecord {
		counts := map[string]int{}
		groups := map[string]queryRecord{}
		var order []string
		for _, r := range rs {
			g := queryRecord{}
			var parts []string
			for _, f := range by {
				v, ok := r[f]
				if ok {
					g[f] = v
				}
				parts = append(parts, strconv.Quote(v)+strconv.FormatBool(ok))
			}
			k := strings.Join(parts, "\x00")
			if _, seen := groups[k]; !seen {
				groups[k] = g
				order = append(order, k)
			}
			counts[k]++
		}
		sort.Strings(order)
		out := make([]queryRecord, 0, len(order))
		for _, k := range order {
			g := groups[k]
			g[name] = strconv.Itoa(counts[k])
			out = append(out, g)
		}
		return out
	}, cols, nil
}

// Filter expressions.

type insightsPred func(queryRecord) bool

type exprLexer struct {
	toks []string
	pos  int
	src  string
}

var exprTokRE = regexp.MustCompile(`^(\s+|"[^"]*"|'[^']*'|` + "`[^`]+`" + `|/(?:[^/\\]|\\.)*/|<=|>=|!=|=~|[=<>(),\[\]]|[^\s=<>!(),\[\]"'/]+)`)

func lexExpr(s string) ([]string, error) {
	var toks []string
	for rest := s; rest != ""; {
		m := exprTokRE.FindString(rest)
		if m == "" {
			return nil, malformed("unexpected symbol %q in filter %q", rest[:1], s)
		}
		if strings.TrimSpace(m) != "" {
			toks = append(toks, m)
		}
		rest = rest[len(m):]
	}
	return toks, nil
}

func parseInsightsExpr(src string) (insightsPred, error) {
	toks, err := lexExpr(src)
	if err != nil {
		return nil, err
	}
	l := &exprLexer{toks: toks, src: src}
	p, err := l.or()
	if err != nil {
		return nil, err
	}
	if l.pos != len(l.toks) {
		return nil, malformed("unexpected %q in filter %q", l.toks[l.pos], src)
	}
	return p, nil
}

func (l *exprLexer) peek() string {
	if l.pos < len(l.toks) {
		return l.toks[l.pos]
	}
	return ""
}

func (l *exprLexer) next() string {
	t := l.peek()
	if l.pos < len(l.toks) {
		l.pos++
	}
	return t
}

func (l *exprLexer) or() (insightsPred, error) {
	left, err := l.and()
	if err != nil {
		return nil, err
	}
	for strings.EqualFold(l.peek(), "or") {
		l.next()
		right, err := l.and()
		if err != nil {
			return nil, err
		}
		a, b := left, right
		left = func(r queryRecord) bool { return a(r) || b(r) }
	}
	return left, nil
}

func (l *exprLexer) and() (insightsPred, error) {
	left, err := l.not()
	if err != nil {
		return nil, err
	}
	for strings.EqualFold(l.peek(), "and") {
		l.next()
		right, err := l.not()
		if err != nil {
			return nil, err
		}
		a, b := left, right
		left = func(r queryRecord) bool { return a(r) && b(r) }
	}
	return left, nil
}

func (l *exprLexer) not() (insightsPred, error) {
	if strings.EqualFold(l.peek(), "not") {
		l.next()
		p, err := l.not()
		if err != nil {
			return nil, err
		}
		return func(r queryRecord) bool { return !p(r) }, nil
	}
	if l.peek() == "(" {
		l.next()
		p, err := l.or()
		if err != nil {
			return nil, err
		}
		if l.next() != ")" {
			return nil, malformed("missing ) in filter %q", l.src)
		}
		return p, nil
	}
	return l.comparison()
}

// operand is a field reference or a literal.
type operand struct {
	field   string
	literal string
	isField bool
}

func (o operand) value(r queryRecord) (string, bool) {
	if !o.isField {
		return o.literal, true
	}
	f := o.field
	if f == "@timestamp" {
		f = "@ts"
	}
	v, ok := r[f]
	return v, ok
}

func (l *exprLexer) operand() (operand, error) {
	t := l.next()
	switch {
	case t == "":
		return operand{}, malformed("filter %q ends early", l.src)
	case len(t) >= 2 && (t[0] == '"' || t[0] == '\''):
		return operand{literal: t[1 : len(t)-1]}, nil
	}
	if _, ok := parseNumber(t); ok {
		return operand{literal: t}, nil
	}
	f, err := parseField(t)
	if err != nil {
		return operand{}, err
	}
	return operand{field: f, isField: true}, nil
}

func (l *exprLexer) comparison() (insightsPred, error) {
	left, err := l.operand()
	if err != nil {
		return nil, err
	}
	negate := false
	op := strings.ToLower(l.next())
	if op == "not" {
		negate = true
		op = strings.ToLower(l.next())
		if op != "like" && op != "in" {
			return nil, malformed("expected like or in after not in filter %q", l.src)
		}
	}
	var p insightsPred
	switch op {
	case "like", "=~":
		pat := l.next()
		var match func(string) bool
		switch {
		case len(pat) >= 2 && pat[0] == '/':
			re, err := regexp.Compile(strings.ReplaceAll(pat[1:len(pat)-1], `\/`, `/`))
			if err != nil {
				return nil, malformed("bad regular expression %s: %v", pat, err)
			}
			match = re.MatchString
		case len(pat) >= 2 && (pat[0] == '"' || pat[0] == '\''):
			sub := pat[1 : len(pat)-1]
			match = func(s string) bool { return strings.Contains(s, sub) }
		default:
			return nil, malformed("like needs /regex/ or a quoted string in filter %q", l.src)
		}
		p = func(r queryRecord) bool { v, ok := left.value(r); return ok && match(v) }
	case "in":
		if l.next() != "[" {
			return nil, malformed("in needs a [list] in filter %q", l.src)
		}
		var set []operand
		for {
			o, err := l.operand()
			if err != nil {
				return nil, err
			}
			set = append(set, o)
			t := l.next()
			if t == "]" {
				break
			}
			if t != "," {
				return nil, malformed("bad list in filter %q", l.src)
			}
		}
		p = func(r queryRecord) bool {
			v, ok := left.value(r)
			if !ok {
				return false
			}
			for _, o := range set {
				if w, _ := o.value(r); equalValues(v, w) {
					return true
				}
			}
			return false
		}
	case "=", "!=", "<", ">", "<=", ">=":
		right, err := l.operand()
		if err != nil {
			return nil, err
		}
		p = func(r queryRecord) bool {
			a, aok := left.value(r)
			b, bok := right.value(r)
			if !aok || !bok {
				return false
			}
			switch op {
			case "=":
				return equalValues(a, b)
			case "!=":
				return !equalValues(a, b)
			}
			an, aNum := parseNumber(a)
			bn, bNum := parseNumber(b)
			if !aNum || !bNum {
				return false
			}
			c := an.Cmp(bn)
			return orderHolds(op, c)
		}
	default:
		return nil, malformed("awsemu does not support %q in filter %q", op, l.src)
	}
	if negate {
		inner := p
		p = func(r queryRecord) bool {
			if _, ok := left.value(r); !ok {
				return false
			}
			return !inner(r)
		}
	}
	return p, nil
}

func equalValues(a, b string) bool {
	an, aNum := parseNumber(a)
	bn, bNum := parseNumber(b)
	if aNum && bNum {
		return an.Cmp(bn) == 0
	}
	return a == b
}
