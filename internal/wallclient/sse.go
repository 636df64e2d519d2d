package wallclient

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Limits on the status stream. The wall's status events are a few hundred
// bytes; a line or event past these is a broken or hostile stream.
const (
	MaxSSELine  = 64 << 10 // bytes in one line, without its end
	MaxSSEEvent = 64 << 10 // bytes of one event's data
)

// statusEvent is the event type the wall sends its status under.
const statusEvent = "status"

// ErrSSE is wrapped by the errors that make the parser give up on a
// stream: an overlong line or event, or a stream cut inside an event.
var ErrSSE = errors.New("bad event stream")

// sseEvent is one dispatched server-sent event.
type sseEvent struct {
	Type string // "message" when the event named none
	Data []byte // the data lines joined by \n
	Line int    // line number of the blank line that ended it
}

// sseReader splits a text/event-stream into events as the WHATWG HTML
// standard says (lines end in CRLF, LF or CR; ":" starts a comment; one
// space after the field's colon is dropped; data lines join with \n; an
// event without data is not dispatched; a leading BOM is ignored), with
// hard limits on line and event size. id and retry are ignored: after a
// reconnect the car fetches the status afresh and keeps its own backoff.
type sseReader struct {
	r       *bufio.Reader
	line    int  // lines completed
	afterCR bool // the last line ended in CR: a following LF belongs to it
	buf     []byte

	typ     string
	data    []byte
	pending bool // a field of an undispatched event has been read
}

func newSSEReader(r io.Reader) *sseReader {
	return &sseReader{r: bufio.NewReader(r)}
}

// Next returns the next event. At a clean end of the stream it returns
// io.EOF; an end inside an event or line is an error wrapping ErrSSE and
// io.ErrUnexpectedEOF. Errors name the line.
func (s *sseReader) Next() (sseEvent, error) {
	for {
		line, err := s.readLine()
		if err != nil {
			return sseEvent{}, err
		}
		if s.line == 1 {
			line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf"))
		}
		if len(line) == 0 {
			ev, ok := s.dispatch()
			if ok {
				return ev, nil
			}
			continue
		}
		if line[0] == ':' {
			continue // comment, such as the wall's keep-alive
		}
		s.pending = true
		field, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			value = bytes.TrimPrefix(value, []byte(" "))
		}
		switch string(field) {
		case "event":
			s.typ = string(value)
		case "data":
			if len(s.data)+len(value)+1 > MaxSSEEvent {
				return sseEvent{}, fmt.Errorf("%w: line %d: event data over %d bytes", ErrSSE, s.line, MaxSSEEvent)
			}
			s.data = append(s.data, value...)
			s.data = append(s.data, '\n')
		}
	}
}

// dispatch ends the event at a blank line.
func (s *sseReader) dispatch() (sseEvent, bool) {
	typ, data := s.typ, s.data
	s.typ, s.data, s.pending = "", nil, false
	if len(data) == 0 {
		return sseEvent{}, false
	}
	if typ == "" {
		typ = "message"
	}
	return sseEvent{Type: typ, Data: data[:len(data)-1], Line: s.line}, true
}

// readLine returns the next line without its end. The slice is valid
// until the next call.
func (s *sseReader) readLine() ([]byte, error) {
	s.buf = s.buf[:0]
	for {
		ch, err := s.r.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				if len(s.buf) > 0 || s.pending {
					return nil, fmt.Errorf("%w: line %d: stream ended inside an event: %w", ErrSSE, s.line+1, io.ErrUnexpectedEOF)
				}
				return nil, io.EOF
			}
			return nil, fmt.Errorf("line %d: %w", s.line+1, err)
		}
		switch ch {
		case '\n':
			if s.afterCR {
				s.afterCR = false
				continue
			}
			s.line++
			return s.buf, nil
		case '\r':
			s.afterCR = true
			s.line++
			return s.buf, nil
		}
		s.afterCR = false
		if len(s.buf) >= MaxSSELine {
			return nil, fmt.Errorf("%w: line %d: longer than %d bytes", ErrSSE, s.line+1, MaxSSELine)
		}
		s.buf = append(s.buf, ch)
	}
}

// parseSSE reads the wall's status stream from r until it ends: each
// "status" event whose data is a valid WallStatus goes to emit, each one
// that is not goes to bad with its line number; other event types and
// comments are skipped. It returns io.EOF at a clean end of the stream,
// else the error that ended it.
func parseSSE(r io.Reader, emit func(WallStatus), bad func(line int, err error)) error {
	s := newSSEReader(r)
	for {
		ev, err := s.Next()
		if err != nil {
			return err
		}
		if ev.Type != statusEvent {
			continue
		}
		st, err := decodeStatus(ev.Data)
		if err != nil {
			bad(ev.Line, err)
			continue
		}
		emit(st)
	}
}
