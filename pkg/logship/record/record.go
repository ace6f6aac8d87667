// Package record builds the JSON log records logship ships: the shape of
// fluent-bit's kubernetes filter, so existing Logs Insights queries keep
// working:
//
//	{"log":"...","stream":"stdout","time":"<RFC3339Nano>","kubernetes":{...}}
//
// Records are appended to a caller's buffer with no allocation per line: the
// "kubernetes" object is serialised once per file (it changes only when the
// pod's metadata does) and the log text is escaped in a single pass that
// also replaces invalid UTF-8 with U+FFFD, since CloudWatch rejects a batch
// holding invalid UTF-8.
package record

import (
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"
)

// Kubernetes is the metadata object of a record; the field names are
// fluent-bit's.
type Kubernetes struct {
	PodName        string            `json:"pod_name"`
	NamespaceName  string            `json:"namespace_name"`
	PodID          string            `json:"pod_id,omitempty"`
	Host           string            `json:"host,omitempty"`
	ContainerName  string            `json:"container_name"`
	DockerID       string            `json:"docker_id"`
	ContainerImage string            `json:"container_image,omitempty"`
	Labels         map[string]string `json:"labels,omitempty"`
}

// Encoder encodes the records of one file. It is not safe for concurrent use.
type Encoder struct {
	suffix   []byte // `,"kubernetes":{...}}`
	maxBytes int
	wire     wire // the constant parts escaped for AppendWire
}

// New returns an encoder whose records never exceed maxBytes (a CloudWatch
// event's message limit); longer messages are split over several records.
func New(k Kubernetes, maxBytes int) (*Encoder, error) {
	kb, err := json.Marshal(k)
	if err != nil {
		return nil, fmt.Errorf("encoding kubernetes metadata of pod %s/%s: %w", k.NamespaceName, k.PodName, err)
	}
	suffix := append([]byte(`,"kubernetes":`), kb...)
	suffix = append(suffix, '}')
	e := &Encoder{suffix: suffix, maxBytes: maxBytes, wire: newWire(suffix)}
	if e.budget(len(time.RFC3339Nano)+10) < 64 {
		return nil, fmt.Errorf("record limit of %d bytes leaves no room for the log of pod %s/%s", maxBytes, k.NamespaceName, k.PodName)
	}
	return e, nil
}

const (
	headLog    = `{"log":"`
	headStream = `","stream":"`
	headTime   = `","time":"`
)

// budget is how many bytes of escaped log fit in one record.
func (e *Encoder) budget(timeLen int) int {
	return e.maxBytes - len(headLog) - len(headStream) - len("stdout") - len(headTime) - timeLen - 1 - len(e.suffix)
}

// safe marks bytes copied as they are inside a JSON string.
var safe = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// shortEscape holds the second byte of two-byte escapes.
var shortEscape = func() (t [utf8.RuneSelf]byte) {
	t['"'], t['\\'], t['\n'], t['\r'], t['\t'] = '"', '\\', 'n', 'r', 't'
	return t
}()

// AppendEscaped appends the JSON string body of src to dst, writing at most
// budget bytes, and returns how many bytes of src it consumed (always at
// least one rune when budget allows six bytes). Invalid UTF-8 becomes U+FFFD.
func AppendEscaped(dst, src []byte, budget int) ([]byte, int) {
	limit := len(dst) + budget
	i := 0
	for i < len(src) {
		// Copy the run of plain ASCII in one append.
		end := min(len(src), i+limit-len(dst))
		j := i
		for j < end && safe[src[j]] {
			j++
		}
		dst = append(dst, src[i:j]...)
		i = j
		if i >= len(src) || len(dst) >= limit {
			break
		}
		c := src[i]
		if c < utf8.RuneSelf {
			if esc := shortEscape[c]; esc != 0 {
				if len(dst)+2 > limit {
					break
				}
				dst = append(dst, '\\', esc)
			} else {
				if len(dst)+6 > limit {
					break
				}
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(src[i:])
		if r == utf8.RuneError && size == 1 {
			if len(dst)+3 > limit {
				break
			}
			dst = append(dst, "\uFFFD"...)
			i++
			continue
		}
		// U+2028 and U+2029 are valid JSON but break JavaScript readers;
		// encoding/json escapes them too.
		if r == '\u2028' || r == '\u2029' {
			if len(dst)+6 > limit {
				break
			}
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			continue
		}
		if len(dst)+size > limit {
			break
		}
		dst = append(dst, src[i:i+size]...)
		i += size
	}
	return dst, i
}
