package awsemu

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"strconv"
	"strings"
)

// This file implements the part of CloudWatch Logs' filter pattern syntax
// the emulator can answer faithfully. Anything else is refused with an
// error (which the caller turns into InvalidParameterException), because a
// test that silently gets a wrong answer is worse than one that is told the
// emulator cannot help.
//
// Supported:
//   - "" (every event)
//   - terms: ERROR, "exact phrase", ERROR -Exiting (all of / none of),
//     ?ERROR ?WARN (any of); terms are case-sensitive and match whole words
//     (a term is not found inside a longer run of letters, digits or _)
//   - %regex% on its own (the documented regex subset, compiled with RE2)
//   - JSON: { SELECTOR OP VALUE }, with $.a.b and $.a[0] selectors, = and !=
//     on strings (with * wildcards) and numbers, < > <= >= on numbers,
//     %regex% values, IS TRUE/FALSE/NULL, NOT EXISTS, parentheses, and &&
//     or || (mixing them at one level needs parentheses).
//
// Refused: space-delimited patterns ([a, b]), mixing ? terms with plain
// ones, unquoted terms with punctuation, $.a[*] and other selector forms.

// matchFunc reports whether a log event message matches a pattern.
type matchFunc func(msg string) bool

// errUnsupported marks syntax the emulator does not implement, as opposed to
// a pattern that is simply malformed.
var errUnsupported = errors.New("awsemu does not support this filter pattern syntax")

func compileFilter(p string) (matchFunc, error) {
	p = strings.TrimSpace(p)
	switch {
	case p == "":
		return func(string) bool { return true }, nil
	case strings.HasPrefix(p, "{"):
		return compileJSONPattern(p)
	case strings.HasPrefix(p, "["):
		return nil, fmt.Errorf("%w: space-delimited pattern %q", errUnsupported, p)
	case len(p) >= 2 && p[0] == '%' && p[len(p)-1] == '%' && strings.Count(p, "%") == 2:
		re, err := compileRegexValue(p)
		if err != nil {
			return nil, err
		}
		return re.MatchString, nil
	}
	return compileTerms(p)
}

// regexCharsRE is the character set the regex documentation allows.
var regexCharsRE = regexp.MustCompile(`^[A-Za-z0-9_#=@/;,:\- ^$?\[\]{}|\\*+.]*$`)

func compileRegexValue(p string) (*regexp.Regexp, error) {
	body := p[1 : len(p)-1]
	if body == "" || !regexCharsRE.MatchString(body) {
		return nil, fmt.Errorf("Invalid regex pattern %s", p)
	}
	re, err := regexp.Compile(body)
	if err != nil {
		return nil, fmt.Errorf("Invalid regex pattern %s", p)
	}
	return re, nil
}

type term struct {
	text string
	op   byte // 0 (must contain), '?' (any of), '-' (must not contain)
}

var bareTermRE = regexp.MustCompile(`^[A-Za-z0-9_]+$`)

func compileTerms(p string) (matchFunc, error) {
	var terms []term
	for i := 0; i < len(p); {
		if p[i] == ' ' || p[i] == '\t' {
			i++
			continue
		}
		var t term
		if p[i] == '?' || p[i] == '-' {
			t.op = p[i]
			i++
		}
		if i < len(p) && p[i] == '"' {
			end := strings.IndexByte(p[i+1:], '"')
			if end < 0 {
				return nil, fmt.Errorf("Invalid filter pattern: unterminated quote in %q", p)
			}
			t.text = p[i+1 : i+1+end]
			i += end + 2
			if strings.ContainsRune(t.text, '\\') {
				return nil, fmt.Errorf("%w: escapes in quoted term %q", errUnsupported, t.text)
			}
		} else {
			end := strings.IndexAny(p[i:], " \t")
			if end < 0 {
				end = len(p) - i
			}
			t.text = p[i : i+end]
			i += end
			if !bareTermRE.MatchString(t.text) {
				return nil, fmt.Errorf("Invalid character(s) in term '%s'", t.text)
			}
		}
		if t.text == "" {
			return nil, fmt.Errorf("Invalid filter pattern: empty term in %q", p)
		}
		terms = append(terms, t)
	}
	anyOf := 0
	for _, t := range terms {
		if t.op == '?' {
			anyOf++
		}
	}
	if anyOf > 0 && anyOf != len(terms) {
		return nil, fmt.Errorf("%w: ? terms mixed with other terms in %q", errUnsupported, p)
	}
	return func(msg string) bool {
		if anyOf > 0 {
			for _, t := range terms {
				if containsWord(msg, t.text) {
					return true
				}
			}
			return false
		}
		for _, t := range terms {
			if containsWord(msg, t.text) == (t.op == '-') {
				return false
			}
		}
		return true
	}, nil
}

func isWordByte(b byte) bool {
	return b == '_' || (b >= '0' && b <= '9') || (b >= 'A' && b <= 'Z') || (b >= 'a' && b <= 'z')
}

// containsWord finds needle in s where it is not glued to surrounding word
// characters (a boundary is only required where needle itself starts or
// ends with a word character).
func containsWord(s, needle string) bool {
	for from := 0; from <= len(s)-len(needle); {
		i := strings.Index(s[from:], needle)
		if i < 0 {
			return false
		}
		i += from
		j := i + len(needle)
		leftOK := i == 0 || !isWordByte(needle[0]) || !isWordByte(s[i-1])
		rightOK := j == len(s) || !isWordByte(needle[len(needle)-1]) || !isWordByte(s[j])
		if leftOK && rightOK {
			return true
		}
		from = i + 1
	}
	return false
}

// JSON patterns.

type jsonTok struct {
	kind string // "{", "}", "(", ")", "&&", "||", "op", "sel", "str", "re", "word", "eof"
	text string
}

func lexJSONPattern(p string) ([]jsonTok, error) {
	var toks []jsonTok
	for i := 0; i < len(p); {
		c := p[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			i++
		case c == '{' || c == '}' || c == '(' || c == ')':
			toks = append(toks, jsonTok{string(c), string(c)})
			i++
		case strings.HasPrefix(p[i:], "&&"), strings.HasPrefix(p[i:], "||"):
			toks = append(toks, jsonTok{p[i : i+2], p[i : i+2]})
			i += 2
		case strings.HasPrefix(p[i:], "!="), strings.HasPrefix(p[i:], "<="), strings.HasPrefix(p[i:], ">="):
			toks = append(toks, jsonTok{"op", p[i : i+2]})
			i += 2
		case c == '=' || c == '<' || c == '>':
			toks = append(toks, jsonTok{"op", string(c)})
			i++
		case c == '"':
			end := strings.IndexByte(p[i+1:], '"')
			if end < 0 {
				return nil, fmt.Errorf("Invalid filter pattern: unterminated quote in %q", p)
			}
			s := p[i+1 : i+1+end]
			if strings.ContainsRune(s, '\\') {
				return nil, fmt.Errorf("%w: escapes in %q", errUnsupported, s)
			}
			toks = append(toks, jsonTok{"str", s})
			i += end + 2
		case c == '%':
			end := strings.IndexByte(p[i+1:], '%')
			if end < 0 {
				return nil, fmt.Errorf("Invalid filter pattern: unterminated regex in %q", p)
			}
			toks = append(toks, jsonTok{"re", p[i : i+end+2]})
			i += end + 2
		default:
			end := i
			for end < len(p) && !strings.ContainsRune(" \t\n{}()&|=!<>\"", rune(p[end])) {
				end++
			}
			if end == i {
				return nil, fmt.Errorf("Invalid filter pattern: unexpected %q in %q", c, p)
			}
			w := p[i:end]
			kind := "word"
			if strings.HasPrefix(w, "$") {
				kind = "sel"
			}
			toks = append(toks, jsonTok{kind, w})
			i = end
		}
	}
	return append(toks, jsonTok{"eof", ""}), nil
}

type jsonParser struct {
	toks []jsonTok
	pos  int
	src  string
}

func (p *jsonParser) peek() jsonTok { return p.toks[p.pos] }
func (p *jsonParser) next() jsonTok {
	t := p.toks[p.pos]
	if p.pos < len(p.toks)-1 {
		p.pos++
	}
	return t
}

func (p *jsonParser) errorf(format string, args ...any) error {
	return fmt.Errorf("Invalid filter pattern %q: %s", p.src, fmt.Sprintf(format, args...))
}

// jsonPred evaluates against a decoded JSON document.
type jsonPred func(doc any) bool

func compileJSONPattern(src string) (matchFunc, error) {
	toks, err := lexJSONPattern(src)
	if err != nil {
		return nil, err
	}
	p := &jsonParser{toks: toks, src: src}
	if p.next().kind != "{" {
		return nil, p.errorf("must start with {")
	}
	pred, err := p.expr()
	if err != nil {
		return nil, err
	}
	if p.next().kind != "}" {
		return nil, p.errorf("expected }")
	}
	if p.next().kind != "eof" {
		return nil, p.errorf("unexpected text after }")
	}
	return func(msg string) bool {
		dec := json.NewDecoder(strings.NewReader(msg))
		dec.UseNumber()
		var doc any
		if err := dec.Decode(&doc); err != nil {
			return false
		}
		if dec.More() {
			return false
		}
		if _, ok := doc.(map[string]any); !ok {
			return false
		}
		return pred(doc)
	}, nil
}

func (p *jsonParser) expr() (jsonPred, error) {
	first, err := p.unary()
	if err != nil {
		return nil, err
	}
	preds := []jsonPred{first}
	conj := ""
	for p.peek().kind == "&&" || p.peek().kind == "||" {
		op := p.next().kind
		if conj != "" && op != conj {
			return nil, fmt.Errorf("%w: && and || mixed without parentheses in %q", errUnsupported, p.src)
		}
		conj = op
		next, err := p.unary()
		if err != nil {
			return nil, err
		}
		preds = append(preds, next)
	}
	if len(preds) == 1 {
		return first, nil
	}
	if conj == "&&" {
		return func(doc any) bool {
			for _, q := range preds {
				if !q(doc) {
					return false
				}
			}
			return true
		}, nil
	}
	return func(doc any) bool {
		for _, q := range preds {
			if q(doc) {
				return true
			}
		}
		return false
	}, nil
}

func (p *jsonParser) unary() (jsonPred, error) {
	if p.peek().kind == "(" {
		p.next()
		e, err := p.expr()
		if err != nil {
			return nil, err
		}
		if p.next().kind != ")" {
			return nil, p.errorf("expected )")
		}
		return e, nil
	}
	return p.comparison()
}

// pathStep is one selector step: a member name or an array index.
type pathStep struct {
	name  string
	index int // -1 for a member step
}

var selectorNameRE = regexp.MustCompile(`^[A-Za-z0-9_\-]+`)

func (p *jsonParser) selector(s string) ([]pathStep, error) {
	if !strings.HasPrefix(s, "$") || len(s) == 1 {
		return nil, fmt.Errorf("%w: selector %q", errUnsupported, s)
	}
	var steps []pathStep
	rest := s[1:]
	for rest != "" {
		switch rest[0] {
		case '.':
			name := selectorNameRE.FindString(rest[1:])
			if name == "" {
				return nil, fmt.Errorf("%w: selector %q", errUnsupported, s)
			}
			steps = append(steps, pathStep{name: name, index: -1})
			rest = rest[1+len(name):]
		case '[':
			end := strings.IndexByte(rest, ']')
			if end < 0 {
				return nil, p.errorf("unterminated [ in selector %q", s)
			}
			n, err := strconv.Atoi(rest[1:end])
			if err != nil || n < 0 {
				return nil, fmt.Errorf("%w: selector %q", errUnsupported, s)
			}
			steps = append(steps, pathStep{index: n})
			rest = rest[end+1:]
		default:
			return nil, fmt.Errorf("%w: selector %q", errUnsupported, s)
		}
	}
	return steps, nil
}

// lookup follows a selector; ok is false when any step is missing.
func lookup(doc any, steps []pathStep) (any, bool) {
	cur := doc
	for _, st := range steps {
		if st.index < 0 {
			m, ok := cur.(map[string]any)
			if !ok {
				return nil, false
			}
			cur, ok = m[st.name]
			if !ok {
				return nil, false
			}
			continue
		}
		a, ok := cur.([]any)
		if !ok || st.index >= len(a) {
			return nil, false
		}
		cur = a[st.index]
	}
	return cur, true
}

func (p *jsonParser) comparison() (jsonPred, error) {
	t := p.next()
	if t.kind != "sel" {
		return nil, p.errorf("expected a $ selector, got %q", t.text)
	}
	steps, err := p.selector(t.text)
	if err != nil {
		return nil, err
	}
	switch op := p.next(); {
	case op.kind == "word" && op.text == "IS":
		switch v := p.next(); v.text {
		case "NULL":
			return func(doc any) bool { x, ok := lookup(doc, steps); return ok && x == nil }, nil
		case "TRUE", "FALSE":
			want := v.text == "TRUE"
			return func(doc any) bool { x, ok := lookup(doc, steps); b, isB := x.(bool); return ok && isB && b == want }, nil
		default:
			return nil, p.errorf("expected NULL, TRUE or FALSE after IS")
		}
	case op.kind == "word" && op.text == "NOT":
		if p.next().text != "EXISTS" {
			return nil, p.errorf("expected EXISTS after NOT")
		}
		return func(doc any) bool { _, ok := lookup(doc, steps); return !ok }, nil
	case op.kind == "op":
		return p.valueComparison(steps, op.text)
	default:
		return nil, p.errorf("expected an operator after %s", t.text)
	}
}

func (p *jsonParser) valueComparison(steps []pathStep, op string) (jsonPred, error) {
	v := p.next()
	switch v.kind {
	case "str", "word", "re":
	default:
		return nil, p.errorf("expected a value after %s", op)
	}
	num, isNum := parseNumber(v.text)
	if v.kind == "str" {
		isNum = false
	}
	switch op {
	case "<", ">", "<=", ">=":
		if !isNum {
			return nil, p.errorf("%s needs a number, got %q", op, v.text)
		}
		return func(doc any) bool {
			x, ok := lookup(doc, steps)
			if !ok {
				return false
			}
			n, isN := x.(json.Number)
			if !isN {
				return false
			}
			f, ok := parseNumber(string(n))
			if !ok {
				return false
			}
			c := f.Cmp(num)
			return orderHolds(op, c)
		}, nil
	}
	var eq func(x any) (matched, comparable bool)
	switch {
	case v.kind == "re":
		re, err := compileRegexValue(v.text)
		if err != nil {
			return nil, err
		}
		eq = func(x any) (bool, bool) {
			s, ok := scalarText(x)
			return ok && re.MatchString(s), ok
		}
	case isNum:
		eq = func(x any) (bool, bool) {
			if n, ok := x.(json.Number); ok {
				f, ok := parseNumber(string(n))
				return ok && f.Cmp(num) == 0, ok
			}
			s, ok := scalarText(x)
			return ok && s == v.text, ok
		}
	default:
		wild := wildcard(v.text)
		eq = func(x any) (bool, bool) {
			s, ok := scalarText(x)
			return ok && wild(s), ok
		}
	}
	if op == "=" {
		return func(doc any) bool {
			x, ok := lookup(doc, steps)
			if !ok {
				return false
			}
			m, _ := eq(x)
			return m
		}, nil
	}
	if op == "!=" {
		// A missing field or a non-scalar is neither equal nor unequal.
		return func(doc any) bool {
			x, ok := lookup(doc, steps)
			if !ok {
				return false
			}
			m, comparable := eq(x)
			return comparable && !m
		}, nil
	}
	return nil, p.errorf("unknown operator %s", op)
}

// parseNumber accepts JSON-style numbers exactly (big.Float avoids float64
// rounding making 9007199254740993 equal its neighbour).
func parseNumber(s string) (*big.Float, bool) {
	if s == "" || !(s[0] == '-' || (s[0] >= '0' && s[0] <= '9')) {
		return nil, false
	}
	f, ok := new(big.Float).SetPrec(256).SetString(s)
	return f, ok
}

// scalarText renders a JSON scalar the way a filter compares it as text.
func scalarText(x any) (string, bool) {
	switch v := x.(type) {
	case string:
		return v, true
	case json.Number:
		return string(v), true
	case bool:
		return strconv.FormatBool(v), true
	}
	return "", false
}

// wildcard compiles a value where * matches any run of characters.
func wildcard(pat string) func(string) bool {
	if !strings.Contains(pat, "*") {
		return func(s string) bool { return s == pat }
	}
	var b bytes.Buffer
	b.WriteString("^")
	for i, part := range strings.Split(pat, "*") {
		if i > 0 {
			b.WriteString(".*")
		}
		b.WriteString(regexp.QuoteMeta(part))
	}
	b.WriteString("$")
	re := regexp.MustCompile("(?s)" + b.String())
	return re.MatchString
}

// orderHolds reports whether a comparison result c (as from big.Float.Cmp)
// satisfies the ordering operator op: <, >, <= or >=.
func orderHolds(op string, c int) bool {
	switch op {
	case "<":
		return c < 0
	case ">":
		return c > 0
	case "<=":
		return c <= 0
	}
	return c >= 0
}
