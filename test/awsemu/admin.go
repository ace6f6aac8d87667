package awsemu

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
)

// adminPrefix is where the admin API lives. It is not an AWS path, so it
// cannot collide with a real request.
const adminPrefix = "/_awsemu/"

// serveAdmin implements the admin API; see AdminHandler.
//
// It lets processes that do not share memory with the emulator (the demo,
// benchmarks, curl) inspect counters and change faults at runtime:
//
//	GET    /_awsemu/counts          {"PutLogEvents": 12, ...}
//	GET    /_awsemu/faults          {"PutLogEvents": {"throttleEvery": 7}, ...}
//	PUT    /_awsemu/faults/<op>     body: {"throttleEvery":7,"serverErrorEvery":11,"latency":"200ms","blackhole":false}
//	DELETE /_awsemu/faults/<op>     clear one fault
//	DELETE /_awsemu/faults          clear every fault
func (e *Emulator) serveAdmin(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, adminPrefix)
	switch {
	case rest == "counts" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, e.Counts())
	case rest == "faults" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, e.Faults())
	case rest == "faults" && r.Method == http.MethodDelete:
		e.ClearFaults()
		w.WriteHeader(http.StatusNoContent)
	case strings.HasPrefix(rest, "faults/"):
		op := strings.TrimPrefix(rest, "faults/")
		if op == "" {
			http.Error(w, "missing operation name", http.StatusBadRequest)
			return
		}
		switch r.Method {
		case http.MethodPut, http.MethodPost:
			var f Fault
			body, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
			if err == nil {
				err = json.Unmarshal(body, &f)
			}
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			e.SetFault(op, f)
			writeJSON(w, http.StatusOK, f)
		case http.MethodDelete:
			e.SetFault(op, Fault{})
			w.WriteHeader(http.StatusNoContent)
		default:
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}
	default:
		http.NotFound(w, r)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
