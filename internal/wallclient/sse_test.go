package wallclient

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// parsed is what parseSSE made of a stream.
type parsed struct {
	delivered []int64 // session.delivered_mwh of each status, -1 without a session
	bad       []int   // lines of the bad events
	err       error
}

func parseAll(r io.Reader) parsed {
	var p parsed
	p.err = parseSSE(r, func(st WallStatus) {
		d := int64(-1)
		if st.Session != nil {
			d = st.Session.DeliveredMWh
		}
		p.delivered = append(p.delivered, d)
	}, func(line int, err error) {
		p.bad = append(p.bad, line)
	})
	return p
}

func TestParseSSE(t *testing.T) {
	idle := `{"connector":"idle","ready":true}`
	long := func(n int) string { return strings.Repeat("x", n) }
	errBoom := errors.New("connection reset")
	tests := []struct {
		name      string
		in        string
		tail      error // the reader fails with this after in
		delivered []int64
		bad       []int
		wantErr   error  // nil: io.EOF
		errText   string // in the error
	}{
		{name: "empty"},
		{name: "two events", in: event(1) + event(2), delivered: []int64{1, 2}},
		{
			name:      "keep-alive comments",
			in:        ": keep-alive\n\n" + event(1) + ": keep-alive\n\n: keep-alive\n\n" + event(2) + ": keep-alive\n\n",
			delivered: []int64{1, 2},
		},
		{
			name:      "comment inside an event",
			in:        "event: status\n: hello\ndata: " + statusJSON(5) + "\n\n",
			delivered: []int64{5},
		},
		{
			name:      "CRLF line endings",
			in:        strings.ReplaceAll(": keep-alive\n\n"+event(1)+event(2), "\n", "\r\n"),
			delivered: []int64{1, 2},
		},
		{
			name:      "CR line endings",
			in:        strings.ReplaceAll(event(1)+event(2), "\n", "\r"),
			delivered: []int64{1, 2},
		},
		{
			name:      "mixed line endings",
			in:        "event: status\r\ndata: " + statusJSON(3) + "\r\r\nevent: status\rdata: " + statusJSON(4) + "\n\r\n",
			delivered: []int64{3, 4},
		},
		{
			name:      "multi-line data",
			in:        "event: status\ndata: {\"connector\":\ndata: \"energising\",\ndata:\"session\":{\"id\":\"s\",\"delivered_mwh\":9}}\n\n",
			delivered: []int64{9},
		},
		{name: "no space after the colon", in: "event:status\ndata:" + idle + "\n\n", delivered: []int64{-1}},
		{name: "byte order mark", in: "\xef\xbb\xbf" + event(7), delivered: []int64{7}},
		{name: "id and retry ignored", in: "id: 5\nretry: 1\nevent: status\ndata: " + idle + "\nunknown: x\nfieldonly\n\n", delivered: []int64{-1}},
		{
			name:      "unknown event types skipped",
			in:        "event: price\ndata: " + idle + "\n\ndata: " + idle + "\n\n" + event(1),
			delivered: []int64{1},
		},
		{name: "event without data not dispatched", in: "event: status\n\n" + event(2), delivered: []int64{2}},
		{name: "empty data dispatched as bad", in: "event: status\ndata\n\n" + event(2), delivered: []int64{2}, bad: []int{3}},
		{
			name:      "garbage JSON skipped",
			in:        "event: status\ndata: not json\n\n" + event(1) + "event: status\ndata: {\"connector\":\n\n" + event(2),
			delivered: []int64{1, 2},
			bad:       []int{3, 9},
		},
		{
			name:      "wrong types skipped",
			in:        "event: status\ndata: {\"connector\":\"x\",\"session\":{\"id\":\"s\",\"paid_msat\":1.5}}\n\nevent: status\ndata: []\n\nevent: status\ndata: {}\n\n" + event(4),
			delivered: []int64{4},
			bad:       []int{3, 6, 9},
		},
		{
			name:      "truncated inside data",
			in:        event(1) + "event: status\ndata: {\"connec",
			delivered: []int64{1},
			wantErr:   io.ErrUnexpectedEOF,
			errText:   "line 5",
		},
		{
			name:      "truncated before the blank line",
			in:        event(1) + "event: status\ndata: " + idle + "\n",
			delivered: []int64{1},
			wantErr:   io.ErrUnexpectedEOF,
		},
		{name: "truncated after the event line", in: "event: status\n", wantErr: io.ErrUnexpectedEOF},
		{name: "ends after a comment", in: event(1) + ": keep-alive\n", delivered: []int64{1}},
		{
			name:    "oversized line",
			in:      event(1) + "event: status\ndata: " + long(MaxSSELine) + "\n\n",
			wantErr: ErrSSE, errText: "line 5: longer than 65536 bytes",
			delivered: []int64{1},
		},
		{
			name:    "oversized comment line",
			in:      ":" + long(MaxSSELine) + "\n\n" + event(1),
			wantErr: ErrSSE, errText: "line 1",
		},
		{
			name:      "largest event allowed",
			in:        "event: status\n" + strings.Repeat("data: "+long(1023)+"\n", 64) + "\n" + event(1),
			delivered: []int64{1},
			bad:       []int{66},
		},
		{name: "longest line allowed", in: ":" + long(MaxSSELine-1) + "\n\n" + event(1), delivered: []int64{1}},
		{
			name:    "oversized event",
			in:      "event: status\n" + strings.Repeat("data: "+long(1023)+"\n", 65) + "\n",
			wantErr: ErrSSE, errText: "line 66: event data over 65536 bytes",
		},
		{
			name:      "read error",
			in:        event(1) + "event: status\n",
			tail:      errBoom,
			delivered: []int64{1},
			wantErr:   errBoom,
			errText:   "line 5",
		},
	}
	for _, tc := range tests {
		readers := map[string]func() io.Reader{
			"whole":    func() io.Reader { return strings.NewReader(tc.in) },
			"one byte": func() io.Reader { return iotest.OneByteReader(strings.NewReader(tc.in)) },
		}
		for rname, mk := range readers {
			t.Run(tc.name+"/"+rname, func(t *testing.T) {
				r := mk()
				if tc.tail != nil {
					r = io.MultiReader(r, iotest.ErrReader(tc.tail))
				}
				p := parseAll(r)
				if fmt.Sprint(p.delivered) != fmt.Sprint(tc.delivered) {
					t.Errorf("delivered %v, want %v", p.delivered, tc.delivered)
				}
				if fmt.Sprint(p.bad) != fmt.Sprint(tc.bad) {
					t.Errorf("bad events at lines %v, want %v", p.bad, tc.bad)
				}
				want := tc.wantErr
				if want == nil {
					want = io.EOF
				}
				if !errors.Is(p.err, want) {
					t.Fatalf("err = %v, want %v", p.err, want)
				}
				if !strings.Contains(fmt.Sprint(p.err), tc.errText) {
					t.Errorf("err = %v, want it to say %q", p.err, tc.errText)
				}
			})
		}
	}
}

// FuzzParseSSE feeds parseSSE arbitrary streams: it must not panic, must
// end with an error (io.EOF at least), must deliver no more events than
// the stream has lines, and must not depend on how the bytes arrive.
func FuzzParseSSE(f *testing.F) {
	for _, s := range []string{
		"",
		event(1),
		event(1) + ": keep-alive\n\n" + event(2),
		strings.ReplaceAll(event(3), "\n", "\r\n"),
		strings.ReplaceAll(event(4), "\n", "\r"),
		"event: status\ndata: {\"connector\":\ndata: \"idle\"}\n\n",
		"event: status\ndata: not json\n\n",
		"event: other\ndata: {}\n\n",
		"\xef\xbb\xbfdata\n\n",
		"event: status\ndata: {\"connec",
		"event: status\r\ndata: {\"connector\":\"x\",\"session\":{\"id\":\"s\",\"paid_msat\":1e3}}\r\r\n",
		":" + strings.Repeat("x", 100) + "\r\n\n\n\r\r",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		whole := parseAll(bytes.NewReader(in))
		split := parseAll(iotest.OneByteReader(bytes.NewReader(in)))
		if whole.err == nil {
			t.Fatal("parseSSE returned no error")
		}
		if w, s := fmt.Sprint(whole.delivered, whole.bad, whole.err), fmt.Sprint(split.delivered, split.bad, split.err); w != s {
			t.Fatalf("depends on chunking:\nwhole %s\nsplit %s", w, s)
		}
		lines := bytes.Count(in, []byte("\n")) + bytes.Count(in, []byte("\r"))
		if n := len(whole.delivered) + len(whole.bad); n > lines/2 {
			t.Fatalf("%d events from %d line ends", n, lines)
		}
		if len(in) <= MaxSSELine && errors.Is(whole.err, ErrSSE) && strings.Contains(whole.err.Error(), "longer than") {
			t.Fatalf("a %d-byte stream has an overlong line: %v", len(in), whole.err)
		}
	})
}
