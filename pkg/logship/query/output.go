package query

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"

	"github.com/nodekit/nodekit/pkg/logship/record"
)

// Output formats of -o.
const (
	formatPlain = "plain"
	formatJSON  = "json"
	formatRaw   = "raw"
)

// event is one FilteredLogEvent with its record decoded.
type event struct {
	raw      types.FilteredLogEvent
	rec      record.Record
	isRecord bool // the message is a JSON record in the shipper's shape
}

func decodeEvent(ev types.FilteredLogEvent) event {
	e := event{raw: ev}
	msg := aws.ToString(ev.Message)
	if strings.HasPrefix(msg, "{") && json.Unmarshal([]byte(msg), &e.rec) == nil {
		e.isRecord = true
	} else {
		// Something else wrote to the group: show the message as it is.
		e.rec.Log = msg
	}
	return e
}

// timestamp is when the line was written: the record's runtime timestamp
// (nanoseconds) when it has one, else the event's (milliseconds).
func (e event) timestamp() time.Time {
	if e.rec.Time != "" {
		if t, err := time.Parse(time.RFC3339Nano, e.rec.Time); err == nil {
			return t.UTC()
		}
	}
	return time.UnixMilli(aws.ToInt64(e.raw.Timestamp)).UTC()
}

// source is namespace/pod/container, or the stream name for foreign events.
func (e event) source() string {
	k := e.rec.Kubernetes
	if e.isRecord && k.NamespaceName != "" {
		return k.NamespaceName + "/" + k.PodName + "/" + k.ContainerName
	}
	return aws.ToString(e.raw.LogStreamName)
}

// jsonEvent is one line of -o json.
type jsonEvent struct {
	Time          string             `json:"time"`
	Namespace     string             `json:"namespace,omitempty"`
	Pod           string             `json:"pod,omitempty"`
	Container     string             `json:"container,omitempty"`
	Stream        string             `json:"stream,omitempty"`
	Log           string             `json:"log"`
	LogStream     string             `json:"logStream"`
	EventID       string             `json:"eventId"`
	IngestionTime string             `json:"ingestionTime"`
	Kubernetes    *record.Kubernetes `json:"kubernetes,omitempty"`
}

const plainTime = "2006-01-02T15:04:05.000Z07:00"

// printer writes events in one format. Output is buffered; flush after
// each batch so --follow shows lines as they come.
type printer struct {
	w      *bufio.Writer
	format string
}

func newPrinter(w io.Writer, format string) *printer {
	return &printer{w: bufio.NewWriter(w), format: format}
}

func (p *printer) print(e event) error {
	switch p.format {
	case formatRaw:
		p.w.WriteString(aws.ToString(e.raw.Message))
		return p.w.WriteByte('\n')
	case formatJSON:
		k := e.rec.Kubernetes
		je := jsonEvent{
			Time:          e.timestamp().Format(time.RFC3339Nano),
			Stream:        e.rec.Stream,
			Log:           e.rec.Log,
			LogStream:     aws.ToString(e.raw.LogStreamName),
			EventID:       aws.ToString(e.raw.EventId),
			IngestionTime: time.UnixMilli(aws.ToInt64(e.raw.IngestionTime)).UTC().Format(time.RFC3339Nano),
		}
		if e.isRecord {
			je.Namespace, je.Pod, je.Container, je.Kubernetes = k.NamespaceName, k.PodName, k.ContainerName, &k
		}
		b, err := json.Marshal(je)
		if err != nil {
			return fmt.Errorf("encoding event %s: %w", je.EventID, err)
		}
		p.w.Write(b)
		return p.w.WriteByte('\n')
	default:
		p.w.WriteString(e.source())
		p.w.WriteString("  ")
		p.w.WriteString(e.timestamp().Format(plainTime))
		p.w.WriteString("  ")
		p.w.WriteString(strings.TrimRight(e.rec.Log, "\n"))
		return p.w.WriteByte('\n')
	}
}

func (p *printer) flush() error {
	if err := p.w.Flush(); err != nil {
		return fmt.Errorf("writing output: %w", err)
	}
	return nil
}

// printTable writes Logs Insights results: a tab-aligned table with the
// columns in the order they first appear (@ptr, an opaque pointer, left
// out), or one JSON object per row for -o json/raw.
func printTable(w io.Writer, rows [][]types.ResultField, format string) error {
	var cols []string
	seen := map[string]bool{}
	for _, row := range rows {
		for _, f := range row {
			name := aws.ToString(f.Field)
			if name == "@ptr" || seen[name] {
				continue
			}
			seen[name] = true
			cols = append(cols, name)
		}
	}
	bw := bufio.NewWriter(w)
	if format == formatJSON || format == formatRaw {
		for _, row := range rows {
			obj := map[string]string{}
			for _, f := range row {
				if name := aws.ToString(f.Field); name != "@ptr" {
					obj[name] = aws.ToString(f.Value)
				}
			}
			b, err := json.Marshal(obj)
			if err != nil {
				return fmt.Errorf("encoding result row: %w", err)
			}
			bw.Write(b)
			bw.WriteByte('\n')
		}
		if err := bw.Flush(); err != nil {
			return fmt.Errorf("writing output: %w", err)
		}
		return nil
	}
	if len(cols) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(bw, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(cols, "\t"))
	for _, row := range rows {
		vals := map[string]string{}
		for _, f := range row {
			vals[aws.ToString(f.Field)] = aws.ToString(f.Value)
		}
		cells := make([]string, len(cols))
		for i, c := range cols {
			// Tabs and newlines inside a value would break the table.
			cells[i] = strings.NewReplacer("\t", " ", "\n", `\n`).Replace(strings.TrimRight(vals[c], "\n"))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("writing output: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("writing output: %w", err)
	}
	return nil
}
