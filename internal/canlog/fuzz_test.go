package canlog

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"go.einride.tech/can"

	"satwatt/internal/fuzzcheck"
	"satwatt/internal/vehicledata"
)

// Fuzz targets for CAN log files: the two line parsers and the Reader over
// a whole file. Logs come from other people's tools and cars, so any bytes
// at all may turn up. Real lines and the first lines of the shared Model 3
// recordings (candump and GVRET, the bench one with CRLF line ends) are
// read where they are by realLogs and added as seeds; the edge cases are
// added below. testdata/fuzz/ holds only crash regressions.

// allocBound is the fixed allowance for one parse: a refused line costs a
// LineError of a few hundred bytes, the rest is headroom for what the
// fuzzing engine allocates in the same process meanwhile.
const allocBound = 16 << 10

// noAlloc fails t if fn allocates: a valid line costs no garbage, so a
// long replay makes none. Averaged over runs, so that an allocation
// elsewhere in the process during one run is not counted.
func noAlloc(t *testing.T, what string, fn func()) {
	t.Helper()
	if n := testing.AllocsPerRun(20, fn); n != 0 {
		t.Fatalf("%s: %v allocations, want none", what, n)
	}
}

// checkFrame asserts what every parsed frame must be: valid, with no data
// beyond its length (a remote frame has none at all).
func checkFrame(t *testing.T, line []byte, f can.Frame) {
	t.Helper()
	if err := f.Validate(); err != nil {
		t.Fatalf("%q parsed as invalid frame %v: %v", line, f, err)
	}
	n := int(f.Length)
	if f.IsRemote {
		n = 0
	}
	for _, b := range f.Data[n:] {
		if b != 0 {
			t.Fatalf("%q parsed as %v with data beyond its length: % x", line, f, f.Data)
		}
	}
}

// checkLineError asserts what a refused line's error says: the package and
// parser, and the start of the line itself.
func checkLineError(t *testing.T, err error, prefix string, line []byte) *LineError {
	t.Helper()
	var le *LineError
	if !errors.As(err, &le) {
		t.Fatalf("error %q is not a *LineError", err)
	}
	fuzzcheck.ErrorSays(t, err, prefix)
	// The text is the line's start, cut to maxErrorText bytes (less up
	// to three, not to split a UTF-8 sequence); the reason is bounded too.
	want := min(len(trimEOL(line)), maxErrorText-3)
	if le.Reason == "" || len(le.Text) > maxErrorText || len(le.Text) < want || !bytes.HasPrefix(line, []byte(le.Text)) {
		t.Fatalf("error %q: reason %q, text %q is not the line's first %d to %d bytes", err, le.Reason, le.Text, want, maxErrorText)
	}
	if len(le.Reason) > 200 {
		t.Fatalf("error %q: reason of %d bytes", err, len(le.Reason))
	}
	return le
}

// Shared recordings the targets take real seeds from.
const (
	chargeportCandump = "model3-2019-chargeport-open.candump.log"
	chargeportGVRET   = "model3-2019-chargeport-open.gvret.csv"
	benchGVRET        = "model3-pcs-bench-charging-500w.gvret.csv"
)

// realLog is the start of one shared recording.
type realLog struct {
	// head is the file's first lines, line ends (LF or CRLF) included.
	head []byte
	// lines are those lines one by one, line ends included.
	lines [][]byte
}

// readHead reads the first n lines of the shared recording name, where it
// is. Without the shared folder the target is skipped, or fails under
// CI=true (vehicledata.Require).
func readHead(f *testing.F, name string, n int) realLog {
	f.Helper()
	file, err := os.Open(vehicledata.Require(f, name))
	if err != nil {
		f.Fatal(err)
	}
	defer file.Close()
	var rl realLog
	br := bufio.NewReader(file)
	for len(rl.lines) < n {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			rl.lines = append(rl.lines, line)
			rl.head = append(rl.head, line...)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			f.Fatalf("%s: %v", name, err)
		}
	}
	if len(rl.lines) < n {
		f.Fatalf("%s: %d lines, want at least %d", name, len(rl.lines), n)
	}
	return rl
}

// firstOfEachLength returns, from the recording name, the first line of a
// frame of each data length from 1 to 8 (line end cut), as recorded: short
// frames are rarer than full ones, so a few real lines cover every length.
// A GVRET header line on the first line comes first.
func firstOfEachLength(f *testing.F, name string, format Format) [][]byte {
	f.Helper()
	file, err := os.Open(vehicledata.Require(f, name))
	if err != nil {
		f.Fatal(err)
	}
	defer file.Close()
	var out [][]byte
	found := map[uint8][]byte{}
	br := bufio.NewReader(file)
	for lineNo := 1; len(found) < 8; lineNo++ {
		line, err := br.ReadBytes('\n')
		if err == io.EOF && len(line) == 0 {
			break
		}
		if err != nil && err != io.EOF {
			f.Fatalf("%s: %v", name, err)
		}
		line = bytes.TrimRight(line, "\r\n")
		if lineNo == 1 && format == GVRET && IsGVRETHeader(line) {
			out = append(out, line)
			continue
		}
		var fr can.Frame
		if format == GVRET {
			_, _, err = ParseGVRET(line, &fr)
		} else {
			_, _, err = ParseCandump(line, &fr)
		}
		if err != nil {
			f.Fatalf("%s line %d: %v", name, lineNo, err)
		}
		if _, ok := found[fr.Length]; !ok && fr.Length > 0 && !fr.IsRemote {
			found[fr.Length] = line
		}
	}
	if len(found) < 8 {
		f.Fatalf("%s: frames of %d data lengths, want all 8", name, len(found))
	}
	for n := uint8(1); n <= 8; n++ {
		out = append(out, found[n])
	}
	return out
}

var candumpSeeds = []string{
	"", " ", "\r\n", "(", "()", "(.)", "(1.)",
	"(1600000018.846853) can0 118#5704221800000000",
	"(1600000018.846853) can0 118#57042218000000",     // odd digits
	"(1600000018.846853) can0 118#570422180000000000", // 9 bytes
	"(1600000018.846853) can0 1F334455#R8",
	"(1600000018.846853) can0 1F334455#r",
	"(1600000018.846853) can0 7FF#de.ad.be.ef\r\n",
	"(1600000018.846853) can0 123##0112",   // CAN FD
	"(1600000018.846853) can0 20000123#00", // error frame flag
	"(9223372035.999999999) can0 000#",     // largest timestamp
	"(9223372036.000000000) can0 000#",     // one second past it
	"(0.0000000001) can0 000#",             // ten fraction digits
	"(1600000018.846853) can0 118#5704221800000000 trailing",
	"(1600000018.846853)\tcan0\t118#5704221800000000",
	"(1600000018.846853) can\xff 118#57",
}

// formatCandump writes a frame the way `candump -l` does; the test's own
// encoder for the round trip.
func formatCandump(ts time.Duration, iface []byte, f can.Frame) []byte {
	return fmt.Appendf(nil, "(%d.%09d) %s %s", ts/time.Second, ts%time.Second, iface, f.String())
}

func FuzzParseCandump(f *testing.F) {
	for _, s := range candumpSeeds {
		f.Add([]byte(s))
	}
	// Real lines: a frame of each data length of the Model 3 recording.
	for _, line := range firstOfEachLength(f, chargeportCandump, Candump) {
		f.Add(line)
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		var fr can.Frame
		var ts time.Duration
		var iface []byte
		var err error
		fuzzcheck.Alloc(t, "ParseCandump", len(line), 0, allocBound, func() { ts, iface, err = ParseCandump(line, &fr) })
		if err != nil {
			checkLineError(t, err, "canlog: candump: ", line)
			return
		}
		noAlloc(t, "ParseCandump of a valid line", func() { _, _, _ = ParseCandump(line, &fr) })
		checkFrame(t, line, fr)
		if ts < 0 || len(iface) == 0 || bytes.ContainsAny(iface, " \t\r\n") {
			t.Fatalf("%q parsed at %v on interface %q", line, ts, iface)
		}
		// Round trip: written as candump writes it, the line reads the same.
		re := formatCandump(ts, iface, fr)
		var again can.Frame
		ts2, iface2, err := ParseCandump(re, &again)
		if err != nil || again != fr || ts2 != ts || !bytes.Equal(iface2, iface) {
			t.Fatalf("%q parsed as %v at %v on %q; re-written %q gives %v at %v on %q, %v",
				line, fr, ts, iface, re, again, ts2, iface2, err)
		}
	})
}

var gvretSeeds = []string{
	"", ",", ",,,,,,", "Time Stamp,ID,Extended,Dir,Bus,LEN,D1,D2,D3,D4,D5,D6,D7,D8",
	"18846853,00000118,false,Rx,0,8,57,04,22,18,00,00,00,00,",
	"18846853,00000118,false,Rx,0,8,57,04,22,18,00,00,00,00",
	"18846853,00000118,false,Rx,0,3,57,04,22",
	"18846853,00000118,false,Rx,0,3,57,04",                    // fewer columns than LEN
	"18846853,00000118,false,Rx,0,9,00,00,03,0D,00,00,DD,00,", // LEN 9
	"18846853,0x1FFFFFFF,TRUE,Tx,255,0,",
	"18846853,20000000,true,Tx,0,0,", // 30-bit ID
	"18846853,800,false,Tx,0,0,",     // standard ID too big
	"9223372036854775,0,0,,0,0",      // largest time stamp
	"9223372036854776,0,0,,0,0",      // one past it
	"18846853,00000118,false,Rx,256,0,",
	"18846853,00000118,false,Rx,0,8,57,04,22,18,00,00,00,00,00,",
	"18846853,00000118,false,Rx,0,1,5,,",
	"4362730132,0000022A,false,Rx,0,4,00,00,70,17,00,00,00,00,\r\n",
}

// formatGVRET writes a frame the way SavvyCAN does.
func formatGVRET(ts time.Duration, bus int, f can.Frame) []byte {
	b := fmt.Appendf(nil, "%d,%08X,%t,Rx,%d,%d,", ts/time.Microsecond, f.ID, f.IsExtended, bus, f.Length)
	for i := range can.MaxDataLength {
		b = fmt.Appendf(b, "%02X,", f.Data[i])
	}
	return b
}

func FuzzParseGVRET(f *testing.F) {
	for _, s := range gvretSeeds {
		f.Add([]byte(s))
	}
	// Real lines: the header and a frame of each data length of the Model
	// 3 recording, and the first lines of the bench recording with their
	// CRLF line ends.
	for _, line := range firstOfEachLength(f, chargeportGVRET, GVRET) {
		f.Add(line)
	}
	for _, line := range readHead(f, benchGVRET, 4).lines {
		f.Add(line)
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		var fr can.Frame
		var ts time.Duration
		var bus int
		var err error
		fuzzcheck.Alloc(t, "ParseGVRET", len(line), 0, allocBound, func() { ts, bus, err = ParseGVRET(line, &fr) })
		if err != nil {
			checkLineError(t, err, "canlog: gvret: ", line)
			return
		}
		noAlloc(t, "ParseGVRET of a valid line", func() { _, _, _ = ParseGVRET(line, &fr) })
		checkFrame(t, line, fr)
		if fr.IsRemote || ts < 0 || ts%time.Microsecond != 0 || bus < 0 || bus > 255 || IsGVRETHeader(line) {
			t.Fatalf("%q parsed as %v at %v on bus %d", line, fr, ts, bus)
		}
		re := formatGVRET(ts, bus, fr)
		var again can.Frame
		ts2, bus2, err := ParseGVRET(re, &again)
		if err != nil || again != fr || ts2 != ts || bus2 != bus {
			t.Fatalf("%q parsed as %v at %v on bus %d; re-written %q gives %v at %v on bus %d, %v",
				line, fr, ts, bus, re, again, ts2, bus2, err)
		}
	})
}

// readResult is what one Reader.Next gave.
type readResult struct {
	line  int
	frame can.Frame
	ts    time.Duration
	err   string
}

func readLog(t *testing.T, r *Reader) []readResult {
	t.Helper()
	var out []readResult
	for {
		var f can.Frame
		ts, err := r.Next(&f)
		if err == io.EOF {
			return out
		}
		res := readResult{line: r.Line(), frame: f, ts: ts}
		if err != nil {
			var le *LineError
			if !errors.As(err, &le) {
				t.Fatalf("read error %v from an in-memory log", err)
			}
			if le.Line != r.Line() {
				t.Fatalf("error %q on line %d, Reader.Line %d", err, le.Line, r.Line())
			}
			res = readResult{line: r.Line(), err: err.Error()}
		}
		if n := len(out); n > 0 && res.line <= out[n-1].line {
			t.Fatalf("line %d after line %d", res.line, out[n-1].line)
		}
		out = append(out, res)
	}
}

// FuzzReader reads a whole log. The frames and errors must not depend on
// how the bytes arrive, a Reset must give them again, each must agree with
// the line parser on the same line, and memory must stay bounded by the
// file however long its lines.
func FuzzReader(f *testing.F) {
	f.Add([]byte(strings.Join(candumpSeeds, "\n")), false)
	f.Add([]byte(strings.Join(gvretSeeds, "\n")), true)
	f.Add([]byte(strings.Join(candumpSeeds, "\r\n")), false)
	f.Add([]byte("\n\n\n"), true)
	f.Add([]byte(strings.Repeat("x", MaxLine)+"\n"+strings.Repeat("y", MaxLine+1)+"\n(1.0) can0 123#"), false)
	f.Add([]byte(strings.Repeat("7", MaxLine+1)), true)
	// The start of each real recording, line ends as recorded.
	f.Add(readHead(f, chargeportCandump, 25).head, false)
	f.Add(readHead(f, chargeportGVRET, 20).head, true)
	f.Add(readHead(f, benchGVRET, 25).head, true)
	f.Fuzz(func(t *testing.T, data []byte, gvret bool) {
		format, parse := Candump, func(b []byte, fr *can.Frame) (time.Duration, error) {
			ts, _, err := ParseCandump(b, fr)
			return ts, err
		}
		if gvret {
			format, parse = GVRET, func(b []byte, fr *can.Frame) (time.Duration, error) {
				ts, _, err := ParseGVRET(b, fr)
				return ts, err
			}
		}
		fuzzcheck.Alloc(t, "Reader", len(data), 256, 64<<10+allocBound, func() {
			r := NewReader(bytes.NewReader(data), format)
			var fr can.Frame
			for {
				if _, err := r.Next(&fr); err == io.EOF {
					return
				}
			}
		})

		r := NewReader(bytes.NewReader(data), format)
		whole := readLog(t, r)
		r.Reset(bytes.NewReader(data))
		if again := readLog(t, r); !reflect.DeepEqual(again, whole) {
			t.Fatalf("after Reset: %+v; first pass: %+v", again, whole)
		}
		for name, src := range map[string]io.Reader{
			"one byte at a time": iotest.OneByteReader(bytes.NewReader(data)),
			"half reads":         iotest.HalfReader(bytes.NewReader(data)),
			"EOF with the data":  iotest.DataErrReader(bytes.NewReader(data)),
		} {
			if got := readLog(t, NewReader(src, format)); !reflect.DeepEqual(got, whole) {
				t.Fatalf("%s: %+v; whole: %+v", name, got, whole)
			}
		}

		// Each result agrees with the line parser on that line.
		lines := bytes.Split(data, []byte("\n"))
		prefix := "canlog: " + format.String() + " line "
		for _, res := range whole {
			if res.line < 1 || res.line > len(lines) {
				t.Fatalf("result on line %d of %d", res.line, len(lines))
			}
			line := lines[res.line-1]
			var fr can.Frame
			ts, err := parse(line, &fr)
			switch {
			case len(line) > MaxLine:
				fuzzcheck.ErrorSays(t, errors.New(res.err), prefix, fmt.Sprintf("line %d: line longer than %d bytes", res.line, MaxLine))
			case res.err != "":
				fuzzcheck.ErrorSays(t, errors.New(res.err), fmt.Sprintf("%s%d: ", prefix, res.line))
				var le *LineError
				if !errors.As(err, &le) || !strings.Contains(res.err, le.Reason) {
					t.Fatalf("line %d %q: Reader says %q, the line parser %v", res.line, line, res.err, err)
				}
			default:
				if err != nil || fr != res.frame || ts != res.ts {
					t.Fatalf("line %d %q: Reader gives %v at %v, the line parser %v at %v, %v", res.line, line, res.frame, res.ts, fr, ts, err)
				}
				checkFrame(t, line, fr)
			}
		}
	})
}
