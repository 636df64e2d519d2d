package canlog

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"go.einride.tech/can"

	"satwatt/internal/vehicledata"
)

func frame(id uint32, ext bool, data ...byte) can.Frame {
	f := can.Frame{ID: id, IsExtended: ext, Length: uint8(len(data))}
	copy(f.Data[:], data)
	return f
}

func TestParseCandump(t *testing.T) {
	tests := []struct {
		name   string
		line   string
		want   can.Frame
		ts     time.Duration
		iface  string
		reason string // non-empty: expect a *LineError containing it
	}{
		{name: "standard", line: "(1600000018.846853) can0 118#5704221800000000",
			want: frame(0x118, false, 0x57, 0x04, 0x22, 0x18, 0, 0, 0, 0),
			ts:   1600000018*time.Second + 846853*time.Microsecond, iface: "can0"},
		{name: "short data", line: "(1600000018.846872) can0 1A5#E50200\n",
			want: frame(0x1A5, false, 0xE5, 0x02, 0x00),
			ts:   1600000018*time.Second + 846872*time.Microsecond, iface: "can0"},
		{name: "extended", line: "(0000000001.000001) vcan0 1F334455#DEADBEEF",
			want: frame(0x1F334455, true, 0xDE, 0xAD, 0xBE, 0xEF),
			ts:   time.Second + time.Microsecond, iface: "vcan0"},
		{name: "empty data", line: "(1.5) can1 123#",
			want: frame(0x123, false), ts: 1500 * time.Millisecond, iface: "can1"},
		{name: "remote", line: "(2.000000) can0 123#R",
			want: can.Frame{ID: 0x123, IsRemote: true}, ts: 2 * time.Second, iface: "can0"},
		{name: "remote with length", line: "(2.000000) can0 00000123#r8",
			want: can.Frame{ID: 0x123, IsExtended: true, IsRemote: true, Length: 8}, ts: 2 * time.Second, iface: "can0"},
		{name: "lower case and dots, CRLF", line: "(3.000000)\tcan0  7ff#de.ad.be.ef\r\n",
			want: frame(0x7FF, false, 0xDE, 0xAD, 0xBE, 0xEF), ts: 3 * time.Second, iface: "can0"},
		{name: "nanosecond fraction", line: "(3.123456789) can0 001#00",
			want: frame(0x001, false, 0), ts: 3*time.Second + 123456789, iface: "can0"},

		{name: "missing hash", line: "(1.000000) can0 1185704", reason: "missing '#'"},
		{name: "bad hex in ID", line: "(1.000000) can0 1Z5#00", reason: "bad hex digit 'Z' in ID"},
		{name: "bad hex in data", line: "(1.000000) can0 123#0G", reason: "bad hex digit 'G' in data"},
		{name: "nine bytes", line: "(1.000000) can0 123#010203040506070809", reason: "data length 9 exceeds 8"},
		{name: "odd digits", line: "(1.000000) can0 123#012", reason: "odd number of hex digits"},
		{name: "split byte", line: "(1.000000) can0 123#0.123", reason: "'.' splits a data byte"},
		{name: "two digit ID", line: "(1.000000) can0 12#00", reason: "ID must have 3 or 8 hex digits"},
		{name: "standard ID too big", line: "(1.000000) can0 FFF#00", reason: "standard ID 0xFFF exceeds 0x7FF"},
		{name: "extended ID too big", line: "(1.000000) can0 C0000000#00", reason: "exceeds 29 bits"},
		{name: "error frame", line: "(1.000000) can0 20000004#0004000000000000", reason: "error frame"},
		{name: "CAN FD", line: "(1.000000) can0 123##1AABB", reason: "CAN FD"},
		{name: "bad remote length", line: "(1.000000) can0 123#R9", reason: "bad remote frame length '9'"},
		{name: "no paren", line: "1.000000 can0 123#00", reason: "missing '('"},
		{name: "no fraction", line: "(1) can0 123#00", reason: "missing '.'"},
		{name: "bad seconds", line: "(x.1) can0 123#00", reason: "bad timestamp"},
		{name: "overflowing seconds", line: "(99999999999999999999.1) can0 123#00", reason: "bad timestamp"},
		{name: "no close paren", line: "(1.000000 can0 123#00", reason: "missing ')'"},
		// Found by FuzzParseCandump: a stray CR mid-line was taken for
		// an interface called "\r".
		{name: "control character for interface", line: "(0.0) \r 000#", reason: `control character '\r' in the interface name`},
		{name: "control character in interface", line: "(0.0) can\x000 000#", reason: `control character '\x00'`},
		{name: "no interface", line: "(1.000000) ", reason: "missing space"},
		{name: "no frame", line: "(1.000000) can0", reason: "missing frame"},
		{name: "trailing text", line: "(1.000000) can0 123#00 extra", reason: "unexpected text after the frame"},
		{name: "empty", line: "\n", reason: "empty line"},
		{name: "control byte", line: "(1.000000) can0 12\x01#00", reason: `bad hex digit '\x01' in ID`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f can.Frame
			ts, iface, err := ParseCandump([]byte(tt.line), &f)
			if tt.reason != "" {
				var le *LineError
				if !errors.As(err, &le) {
					t.Fatalf("err = %v, want a *LineError", err)
				}
				if !strings.Contains(le.Reason, tt.reason) {
					t.Errorf("reason = %q, want it to contain %q", le.Reason, tt.reason)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if f != tt.want {
				t.Errorf("frame = %+v, want %+v", f, tt.want)
			}
			if ts != tt.ts {
				t.Errorf("ts = %v, want %v", ts, tt.ts)
			}
			if string(iface) != tt.iface {
				t.Errorf("iface = %q, want %q", iface, tt.iface)
			}
		})
	}
}

func TestParseGVRET(t *testing.T) {
	tests := []struct {
		name   string
		line   string
		want   can.Frame
		ts     time.Duration
		bus    int
		reason string
	}{
		{name: "padded with trailing comma", line: "18846872,000001A5,false,Rx,0,3,E5,02,00,00,00,00,00,00,",
			want: frame(0x1A5, false, 0xE5, 0x02, 0x00), ts: 18846872 * time.Microsecond},
		{name: "full", line: "18846853,00000118,false,Rx,0,8,57,04,22,18,00,00,00,00,\r\n",
			want: frame(0x118, false, 0x57, 0x04, 0x22, 0x18, 0, 0, 0, 0), ts: 18846853 * time.Microsecond},
		{name: "unpadded extended", line: "5,18DAF110,true,Tx,1,2,AA,BB",
			want: frame(0x18DAF110, true, 0xAA, 0xBB), ts: 5 * time.Microsecond, bus: 1},
		{name: "zero length", line: "7,0x7DF,FALSE,Rx,2,0,", want: frame(0x7DF, false), ts: 7 * time.Microsecond, bus: 2},
		{name: "single digit bytes", line: "7,123,false,Rx,0,2,A,5", want: frame(0x123, false, 0x0A, 0x05), ts: 7 * time.Microsecond},

		{name: "header", line: "Time Stamp,ID,Extended,Dir,Bus,LEN,D1,D2,D3,D4,D5,D6,D7,D8", reason: "header line"},
		{name: "nine bytes", line: "1,123,false,Rx,0,9,00,00,00,00,00,00,00,00,00,", reason: "data length 9 exceeds 8"},
		{name: "bad ID", line: "1,12Z,false,Rx,0,0,", reason: "bad hex digit 'Z' in ID"},
		{name: "bad data", line: "1,123,false,Rx,0,2,0G,00,", reason: "bad hex digit 'G' in data column D1"},
		{name: "too few data", line: "1,123,false,Rx,0,4,00,00,", reason: "LEN is 4 but only 2 data columns"},
		{name: "too many columns", line: "1,123,false,Rx,0,1,00,00,00,00,00,00,00,00,00,", reason: "more than 8 data columns"},
		{name: "bad extended", line: "1,123,yes,Rx,0,0,", reason: "Extended must be true or false"},
		{name: "standard ID too big", line: "1,800,false,Rx,0,0,", reason: "exceeds 0x7FF"},
		{name: "bad time", line: "-1,123,false,Rx,0,0,", reason: "bad time stamp"},
		{name: "short line", line: "1,123", reason: "missing Extended column"},
		{name: "bad length", line: "1,123,false,Rx,0,x,", reason: "bad LEN"},
		// Found by FuzzParseGVRET: the reason quoted the whole field, so
		// a long garbage line made an error four times its size.
		{name: "long bad time stamp", line: strings.Repeat("\x8f", 1000) + ",123,false,Rx,0,0,",
			reason: `bad time stamp "\x8f\x8f\x8f\x8f\x8f\x8f\x8f\x8f\x8f\x8f\x8f\x8f\x8f\x8f\x8f\x8f\x8f\x8f\x8f\x8f\x8f\x8f\x8f\x8f"... (microseconds)`},
		{name: "long bad data column", line: "1,123,false,Rx,0,1," + strings.Repeat("é", 100), reason: `data column D1 "éééééééééééé"... is not`},
		{name: "wide byte", line: "1,123,false,Rx,0,1,123,", reason: "is not one hex byte"},
		{name: "empty", line: "", reason: "empty line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f can.Frame
			ts, bus, err := ParseGVRET([]byte(tt.line), &f)
			if tt.reason != "" {
				var le *LineError
				if !errors.As(err, &le) {
					t.Fatalf("err = %v, want a *LineError", err)
				}
				if !strings.Contains(le.Reason, tt.reason) {
					t.Errorf("reason = %q, want it to contain %q", le.Reason, tt.reason)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if f != tt.want || ts != tt.ts || bus != tt.bus {
				t.Errorf("got %+v ts=%v bus=%d, want %+v ts=%v bus=%d", f, ts, bus, tt.want, tt.ts, tt.bus)
			}
		})
	}
}

func TestLineErrorText(t *testing.T) {
	long := "(1.000000) can0 123#" + strings.Repeat("é", 100)
	var f can.Frame
	_, _, err := ParseCandump([]byte(long), &f)
	var le *LineError
	if !errors.As(err, &le) {
		t.Fatalf("err = %v, want *LineError", err)
	}
	if len(le.Text) > 80 || !strings.HasPrefix(long, le.Text) {
		t.Errorf("Text = %q (%d bytes), want a prefix of at most 80 bytes", le.Text, len(le.Text))
	}
	if !strings.HasPrefix(le.Error(), "canlog: candump: bad hex digit") {
		t.Errorf("Error() = %q", le.Error())
	}

	// Binary garbage (no UTF-8 sequence starts) is cut, not dropped:
	// the error once showed an empty line.
	_, _, err = ParseCandump(bytes.Repeat([]byte{0x8f}, 200), &f)
	if !errors.As(err, &le) || le.Text != strings.Repeat("\x8f", 80) {
		t.Errorf("error for binary garbage: %v", err)
	}
}

// The message names the package, the parser and the line, so a log record
// says which file format and which line were bad.
func TestLineErrorMessage(t *testing.T) {
	tests := []struct {
		err  LineError
		want string
	}{
		{LineError{Format: Candump, Line: 6, Reason: "bad hex digit 'Z' in ID", Text: "x"}, `canlog: candump line 6: bad hex digit 'Z' in ID: "x"`},
		{LineError{Format: GVRET, Reason: "bad LEN \"9x\"", Text: "x"}, `canlog: gvret: bad LEN "9x": "x"`},
		{LineError{Line: 2, Reason: "empty line"}, `canlog: line 2: empty line: ""`},
		{LineError{Reason: "empty line"}, `canlog: empty line: ""`},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %s, want %s", got, tt.want)
		}
	}
}

func TestParseAllocs(t *testing.T) {
	tests := []struct {
		name  string
		line  string
		parse func([]byte, *can.Frame) error
	}{
		{"candump", "(1600000018.846853) can0 118#5704221800000000", func(b []byte, f *can.Frame) error {
			_, _, err := ParseCandump(b, f)
			return err
		}},
		{"candump remote", "(1600000018.846853) can0 1F334455#R", func(b []byte, f *can.Frame) error {
			_, _, err := ParseCandump(b, f)
			return err
		}},
		{"gvret", "18846853,00000118,false,Rx,0,8,57,04,22,18,00,00,00,00,", func(b []byte, f *can.Frame) error {
			_, _, err := ParseGVRET(b, f)
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			line := []byte(tt.line)
			var f can.Frame
			var err error
			allocs := testing.AllocsPerRun(1000, func() { err = tt.parse(line, &f) })
			if err != nil {
				t.Fatal(err)
			}
			if allocs != 0 {
				t.Errorf("%v allocations per line, want 0", allocs)
			}
		})
	}
}

func TestReader(t *testing.T) {
	type result struct {
		line int
		id   uint32
		err  string // reason fragment for a bad line
	}
	tests := []struct {
		file   string
		format Format
		want   []result
	}{
		{"mixed.candump.log", Candump, []result{
			{line: 1, id: 0x118},
			{line: 3, id: 0x2E5},
			{line: 4, err: "missing '('"},
			{line: 5, id: 0x1A5},
			{line: 6, err: "bad hex digit 'Z' in ID"},
			{line: 7, id: 0x1F334455},
			{line: 8, err: "line longer than 1024 bytes"},
			{line: 9, err: "data length 10 exceeds 8"},
			{line: 10, id: 0x123},
			{line: 11, id: 0x0AB},
		}},
		{"mixed.gvret.csv", GVRET, []result{
			{line: 2, id: 0x118},
			{line: 3, err: "data length 9 exceeds 8"},
			{line: 4, id: 0x1A5},
			{line: 5, err: "bad time stamp"},
			{line: 6, id: 0x18DAF110},
		}},
	}
	// However the bytes arrive, the same lines come out. A reader that
	// returns EOF along with its last bytes (as compress/gzip does) once
	// lost every line after an overlong one.
	readers := []struct {
		name string
		wrap func(io.Reader) io.Reader
	}{
		{"whole", func(r io.Reader) io.Reader { return r }},
		{"EOF with the last bytes", iotest.DataErrReader},
		{"one byte at a time", iotest.OneByteReader},
	}
	for _, tt := range tests {
		for _, rd := range readers {
			t.Run(tt.file+"/"+rd.name, func(t *testing.T) {
				data, err := os.ReadFile(filepath.Join("testdata", tt.file))
				if err != nil {
					t.Fatal(err)
				}
				r := NewReader(rd.wrap(bytes.NewReader(data)), tt.format)
				var got []result
				for {
					var f can.Frame
					_, err := r.Next(&f)
					if err == io.EOF {
						break
					}
					var le *LineError
					switch {
					case errors.As(err, &le):
						if le.Line != r.Line() {
							t.Errorf("LineError.Line = %d, Reader.Line = %d", le.Line, r.Line())
						}
						got = append(got, result{line: le.Line, err: le.Reason})
					case err != nil:
						t.Fatalf("read error: %v", err)
					default:
						got = append(got, result{line: r.Line(), id: f.ID})
					}
				}
				if len(got) != len(tt.want) {
					t.Fatalf("got %d results %+v, want %d %+v", len(got), got, len(tt.want), tt.want)
				}
				for i := range got {
					w, g := tt.want[i], got[i]
					if g.line != w.line || g.id != w.id || !strings.Contains(g.err, w.err) || (w.err == "") != (g.err == "") {
						t.Errorf("result %d = %+v, want %+v", i, g, w)
					}
				}
			})
		}
	}
}

type logFrame struct {
	f  can.Frame
	ts time.Duration
}

func readAll(t *testing.T, path string, format Format) []logFrame {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	r := NewReader(fh, format)
	var out []logFrame
	for {
		var f can.Frame
		ts, err := r.Next(&f)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", filepath.Base(path), err)
		}
		out = append(out, logFrame{f, ts})
	}
}

func TestRealRecordingsAgree(t *testing.T) {
	cd := readAll(t, vehicledata.Require(t, "model3-2019-chargeport-open.candump.log"), Candump)
	gv := readAll(t, vehicledata.Require(t, "model3-2019-chargeport-open.gvret.csv"), GVRET)
	const want = 14991
	if len(cd) != want || len(gv) != want {
		t.Fatalf("candump %d frames, gvret %d frames, want %d each", len(cd), len(gv), want)
	}
	// The candump file was converted from the CSV with 1600000000 s added
	// to the recorder's microsecond stamps.
	const offset = 1600000000 * time.Second
	for i := range cd {
		if cd[i].f != gv[i].f {
			t.Fatalf("frame %d: candump %v, gvret %v", i, cd[i].f, gv[i].f)
		}
		if cd[i].ts != gv[i].ts+offset {
			t.Fatalf("frame %d: candump time %v, gvret time %v + %v", i, cd[i].ts, gv[i].ts, offset)
		}
	}
}

func TestRealPCSBenchLog(t *testing.T) {
	frames := readAll(t, vehicledata.Require(t, "model3-pcs-bench-charging-500w.gvret.csv"), GVRET)
	if len(frames) != 26716 {
		t.Fatalf("%d frames, want 26716", len(frames))
	}
	span := frames[len(frames)-1].ts - frames[0].ts
	if span < 50*time.Second || span > 60*time.Second {
		t.Errorf("recording spans %v, want about 55 s", span)
	}
}

func BenchmarkParseCandumpLine(b *testing.B) {
	line := []byte("(1600000018.846853) can0 118#5704221800000000")
	var f can.Frame
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		if _, _, err := ParseCandump(line, &f); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseGVRETLine(b *testing.B) {
	line := []byte("18846853,00000118,false,Rx,0,8,57,04,22,18,00,00,00,00,")
	var f can.Frame
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		if _, _, err := ParseGVRET(line, &f); err != nil {
			b.Fatal(err)
		}
	}
}
