package record

import "github.com/nodekit/nodekit/pkg/logship/filepos"

// Chunk is a run of records from one file, each in its wire form: JSON-
// escaped, as it appears between the quotes of a PutLogEvents event's
// "message" (AppendWire writes that), so request bodies are read from the
// chunks as they are. Every record of the chunk ends with Tail (the
// Encoder's WireTail), which the chunk holds once: Buf[Start:End] followed
// by Tail is the event's message. It is what the record stage hands to
// the sender; Buf and Tail must not be written once it is handed over.
type Chunk struct {
	// Path and ID name the file the records come from.
	Path   string
	ID     filepos.Identity
	Buf    []byte
	Tail   []byte
	Events []Event
}

// Event is one record in a Chunk: Buf[Start:End], at Timestamp (Unix ms),
// after which the file may be resumed from Pos. Size is the record's size
// as CloudWatch counts it (its UTF-8 bytes).
type Event struct {
	Timestamp  int64
	Start, End int
	Size       int
	Pos        int64
}
