package client

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// sseEvent is one dispatched Server-Sent Event.
type sseEvent struct {
	Event string // "message" when the server named none
	Data  string // data lines joined by "\n"
	ID    string
}

// maxSSELine bounds one SSE line; a task log line is far smaller, but an
// "end" event carries a whole task record.
const maxSSELine = 4 << 20

// readSSE parses a text/event-stream (WHATWG HTML §9.2) and calls fn for
// every event until fn reports done, fn fails, or the stream ends. Comment
// lines (keep-alives) and retry fields are ignored. Unlike a browser it also
// dispatches a final event that lacks its terminating blank line, so that a
// server closing the stream right after "event: end" still counts as ended.
func readSSE(r io.Reader, fn func(sseEvent) (done bool, err error)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxSSELine)
	var (
		event, id string
		data      []string
		hasData   bool
	)
	dispatch := func() (bool, error) {
		if !hasData {
			event = ""
			return false, nil
		}
		ev := sseEvent{Event: event, Data: strings.Join(data, "\n"), ID: id}
		if ev.Event == "" {
			ev.Event = "message"
		}
		event, data, hasData = "", data[:0], false
		return fn(ev)
	}
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if line == "" {
			done, err := dispatch()
			if err != nil || done {
				return err
			}
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue // comment / keep-alive
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			event = value
		case "data":
			data = append(data, value)
			hasData = true
		case "id":
			if !strings.ContainsRune(value, 0) {
				id = value
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read event stream: %w", err)
	}
	_, err := dispatch()
	return err
}
