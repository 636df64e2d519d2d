package rapi

import (
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"reflect"
	"strings"
	"testing"

	"satwatt/internal/fuzzcheck"
)

// Fuzz targets for what comes in over the serial line from the OpenEVSE:
// the stream of bytes (cut into lines by Splitter, then handled by the
// driver's reader), the lines themselves, and the numbers and states in
// the replies. The seeds are lines in the formats the firmware really
// sends (rapi_proc.cpp and its documentation, as rapisim reproduces them),
// plus line noise: truncated lines, garbage, overlong lines.

// realLines are replies and notices as OpenEVSE firmware sends them; cs
// adds the checksum the firmware computes.
var realLines = []string{
	"$OK^20", "$NK^21",
	cs("$OK 8.2.2 5.1.2 :01"),               // $GV with a sequence id
	cs("$OK 01 0 01 0000"),                  // $GS after boot
	cs("$OK 03 1234 03 0140"),               // $GS while charging
	cs("$OK fe 600 02 0100"),                // $GS asleep, vehicle connected
	cs("$OK 03 60"),                         // $GS of firmware before 4.x
	cs("$OK 31950 239800"),                  // $GG while charging
	cs("$OK -1 240000"),                     // $GG without an ammeter
	cs("$OK 7200000 1234"),                  // $GU
	cs("$OK 4294967295 4294967295"),         // $GU at the firmware's uint32 maximum
	cs("$OK 16"), cs("$NK 32"), cs("$NK 6"), // $SC set, capped down, clamped up
	cs("$OK 30 6 0"), // $SY
	cs("$AT 03 03 32 0140"), cs("$AT fe 02 16 0100"),
	cs("$ST 08"),
	cs("$AB 00 D9.0.0"),
	cs("$OK 32000 240000 :2A"),
	"$GL^2f", // lower-case checksum digits
}

// noise is what a serial line delivers when things go wrong.
var noise = []string{
	"", "\r", "$", "$O", "$OK", "$OK^", "$OK^2", "$OK 3 0",
	"$OK 03 1234 03 01", // cut mid-line
	"$OK^20$NK^21",      // CR lost between two lines
	"$FE*AF",            // additive checksum, commands only
	"\x00\xff$OK^20",
	"$OK " + strings.Repeat("9", 70), // overlong
	cs("$OK :00"), cs("$OK 1 :G1"), cs("$OK 1  2"),
	cs("$OK 9223372036854775807 9223372036854775807"),
	cs("$OK -9223372036854775808 1"),
}

func addLineSeeds(f *testing.F) {
	for _, s := range append(realLines, noise...) {
		f.Add([]byte(s))
		f.Add([]byte(s + "\r"))
	}
}

// allocBound is the fixed allowance for one parse: a line costs its fields
// or a LineError, a few hundred bytes; the rest is headroom for what the
// fuzzing engine allocates in the same process meanwhile (5.5 KB has been
// seen in a worker's first runs).
const allocBound = 16 << 10

var lineKinds = []error{ErrChecksum, ErrNoChecksum, ErrMalformed, ErrTooLong, ErrTruncated}

// checkLineError asserts what a refused line's error says: the package,
// the kind, and the line itself, clipped.
func checkLineError(t *testing.T, err error) {
	t.Helper()
	var le *LineError
	if !errors.As(err, &le) {
		t.Fatalf("error %q is not a *LineError", err)
	}
	fuzzcheck.ErrorSays(t, err, "rapi: ", le.Kind.Error(), " in line ")
	n := 0
	for _, k := range lineKinds {
		if errors.Is(err, k) {
			n++
		}
	}
	if n != 1 || len(le.Line) > clipLen || le.Len < len(le.Line) {
		t.Fatalf("error %q: %d kinds, line %d of %d bytes", err, n, len(le.Line), le.Len)
	}
}

// checkFrame asserts what parsed: the frame is one the firmware could have
// sent, and it re-encodes to a line that parses to the same frame.
func checkFrame(t *testing.T, line []byte, fr Frame, lenient bool) {
	t.Helper()
	if !validName(fr.Name) || (fr.Fields != nil && len(fr.Fields) == 0) {
		t.Fatalf("%q parsed as %#v", line, fr)
	}
	enc, err := fr.Append(nil)
	if err != nil {
		// A command line without a checksum grows by three bytes.
		trimmed := strings.TrimRight(string(line), "\r\n")
		if lenient && !strings.ContainsAny(trimmed, "^*") && len(trimmed)+3 > MaxLineLen &&
			strings.Contains(err.Error(), "longer than") {
			return
		}
		t.Fatalf("%q parsed as %#v, which does not re-encode: %v", line, fr, err)
	}
	again, err := parse(enc, lenient)
	if err != nil || !reflect.DeepEqual(again, fr) {
		t.Fatalf("%q parsed as %#v; re-encoded %q parses as %#v, %v", line, fr, enc, again, err)
	}
}

func FuzzParseLine(f *testing.F) {
	addLineSeeds(f)
	f.Fuzz(func(t *testing.T, line []byte) {
		var fr Frame
		var err error
		fuzzcheck.Alloc(t, "ParseLine", len(line), 4, allocBound, func() { fr, err = ParseLine(line) })
		if err != nil {
			checkLineError(t, err)
			return
		}
		checkFrame(t, line, fr, false)
	})
}

func FuzzParseCommandLine(f *testing.F) {
	addLineSeeds(f)
	for _, s := range []string{"$FE", "$SC 16 V", "$SC 16 V :0A", "$FE*AF", "$SY 30 6", cs("$GS :05")} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		var fr Frame
		var err error
		fuzzcheck.Alloc(t, "ParseCommandLine", len(line), 4, allocBound, func() { fr, err = ParseCommandLine(line) })
		if err != nil {
			checkLineError(t, err)
			return
		}
		checkFrame(t, line, fr, true)
		// Whatever the EVSE accepts strictly, a command parser accepts.
		if strict, err := ParseLine(line); err == nil && !reflect.DeepEqual(strict, fr) {
			t.Fatalf("%q: ParseLine %#v, ParseCommandLine %#v", line, strict, fr)
		}
	})
}

// emitted is one thing Splitter.Feed emitted.
type emitted struct {
	line string
	err  string
}

func split(chunks [][]byte) []emitted {
	var s Splitter
	var out []emitted
	for _, c := range chunks {
		s.Feed(c, func(line []byte, err error) {
			e := emitted{line: string(line)}
			if err != nil {
				e.err = err.Error()
			}
			out = append(out, e)
		})
	}
	return out
}

// chunked cuts b into pieces of n bytes.
func chunked(b []byte, n int) [][]byte {
	var out [][]byte
	for len(b) > n {
		out = append(out, b[:n])
		b = b[n:]
	}
	return append(out, b)
}

// FuzzSerialStream feeds raw serial input through the driver's reading
// path: Splitter, then handleLine. The lines found must not depend on how
// the bytes arrive, every line must be bounded, and each line the driver
// handles must reach the waiting command exactly when it is a reply or
// unreadable (a command waiting for its answer fails fast on noise).
func FuzzSerialStream(f *testing.F) {
	f.Add([]byte(strings.Join(realLines, "\r")+"\r"), uint8(7))
	f.Add([]byte(strings.Join(noise, "\r")), uint8(3))
	f.Add([]byte(strings.Join(realLines, "\r\n")), uint8(1))
	f.Add([]byte(strings.Repeat("$", 100)), uint8(2))
	f.Add([]byte(strings.Repeat("x", 200)+"\r$OK^20\r"), uint8(64))
	quiet := slog.New(slog.DiscardHandler)
	f.Fuzz(func(t *testing.T, stream []byte, chunk uint8) {
		var whole []emitted
		fuzzcheck.Alloc(t, "Splitter.Feed", len(stream), 256, allocBound, func() {
			var s Splitter
			s.Feed(stream, func([]byte, error) {})
		})
		whole = split([][]byte{stream})
		for _, n := range []int{1, int(chunk)%MaxLineLen + 1} {
			if got := split(chunked(stream, n)); !reflect.DeepEqual(got, whole) {
				t.Fatalf("fed in %d-byte pieces: %q; whole: %q", n, got, whole)
			}
		}

		d := &Driver{log: quiet, changes: make(chan struct{}, 1), kick: make(chan struct{}, 1)}
		c := &conn{replies: make(chan reply, 4)}
		var s Splitter
		s.Feed(stream, func(line []byte, lerr error) {
			if lerr == nil {
				if len(line) == 0 || len(line) > MaxLineLen || strings.ContainsAny(string(line), "\r\n") ||
					strings.LastIndexByte(string(line), '$') > 0 {
					t.Fatalf("Splitter emitted %q", line)
				}
			} else if !errors.Is(lerr, ErrTruncated) && !errors.Is(lerr, ErrTooLong) {
				t.Fatalf("Splitter reported %v", lerr)
			}
			fr, perr := ParseLine(line)
			wantReply := (lerr == nil && perr == nil && fr.IsReply()) || ((lerr != nil || perr != nil) && !looksAsync(line))
			d.handleLine(c, line, lerr)
			select {
			case r := <-c.replies:
				if !wantReply || (r.err == nil) != (lerr == nil && perr == nil) {
					t.Fatalf("line %q (%v, %v): delivered %+v", line, lerr, perr, r)
				}
			default:
				if wantReply {
					t.Fatalf("line %q (%v, %v): nothing delivered", line, lerr, perr)
				}
			}
		})
	})
}

// FuzzReplyValues turns the fields of a reply into numbers and states the
// way Status, Enable and the notice handler do. What parses must be in the
// firmware's range (no negative energy, no overflowed power) and survive a
// round trip; what does not must say which reply and which field.
func FuzzReplyValues(f *testing.F) {
	for _, s := range append(realLines, noise...) {
		f.Add([]byte(s), uint8(16))
	}
	f.Add([]byte(cs("$NK 0")), uint8(32))
	f.Add([]byte(cs("$OK")), uint8(32))
	f.Fuzz(func(t *testing.T, line []byte, askedA uint8) {
		fr, err := ParseLine(line)
		if err != nil {
			return
		}
		noFmtBugs := func(err error) {
			t.Helper()
			if err != nil && strings.Contains(err.Error(), "%!") {
				t.Fatalf("error %q has a formatting mistake", err)
			}
		}

		// $GS: state, elapsed, pilot, flags.
		gs, err := parseGS(fr.Fields)
		noFmtBugs(err)
		if err != nil {
			fuzzcheck.ErrorSays(t, err, "$GS")
		} else {
			if gs.Elapsed < 0 || gs.HasPilot != (len(fr.Fields) == 4) {
				t.Fatalf("$GS %q parsed as %+v", fr.Fields, gs)
			}
			re := []string{fmt.Sprintf("%02x", uint8(gs.EVSE)), fmt.Sprint(gs.Elapsed)}
			if gs.HasPilot {
				re = append(re, fmt.Sprintf("%02x", uint8(gs.Pilot)), fmt.Sprintf("%04x", gs.VFlags))
			}
			if again, err := parseGS(re); err != nil || again != gs {
				t.Fatalf("$GS %q parsed as %+v; re-encoded %q gives %+v, %v", fr.Fields, gs, re, again, err)
			}
		}

		// $GG and $GU, as Status reads them into the status.
		gg, ggErr := parseInts("$GG", true, fr.Fields, "milliamps", "millivolts")
		gu, guErr := parseInts("$GU", false, fr.Fields, "watt-seconds", "watt-hours")
		noFmtBugs(ggErr)
		noFmtBugs(guErr)
		if ggErr != nil {
			fuzzcheck.ErrorSays(t, ggErr, "$GG")
		}
		if guErr != nil {
			fuzzcheck.ErrorSays(t, guErr, "$GU")
		}
		if ggErr == nil && guErr == nil {
			m := meterReply{CurrentMA: gg[0], VoltageMV: gg[1], SessionWs: gu[0], TotalWh: gu[1]}
			st := buildStatus(stateReply{EVSE: StateC}, m)
			power := new(big.Int).Mul(big.NewInt(st.VoltageMV), big.NewInt(st.CurrentMA))
			power.Quo(power, big.NewInt(1_000_000))
			if st.VoltageMV < 0 || st.CurrentMA < 0 || st.SessionMWh < 0 || st.PowerW < 0 ||
				!power.IsInt64() || power.Int64() != st.PowerW {
				t.Fatalf("meter %+v gives status %+v (power should be %v W)", m, st, power)
			}
			if want := new(big.Int).Quo(new(big.Int).Mul(big.NewInt(max(m.SessionWs, 0)), big.NewInt(5)), big.NewInt(18)); !want.IsInt64() || want.Int64() != st.SessionMWh {
				t.Fatalf("session %d Ws gives %d mWh, want %v", m.SessionWs, st.SessionMWh, want)
			}
		}

		// $AT and $ST notices.
		n, err := ParseStateNotice(fr)
		noFmtBugs(err)
		switch {
		case err != nil:
			fuzzcheck.ErrorSays(t, err, "rapi: $"+fr.Name)
		case fr.Name == "AT":
			if n.CurrentA < 0 {
				t.Fatalf("%q: current capacity %d A", line, n.CurrentA)
			}
			re := Frame{Name: "AT", Fields: []string{fmt.Sprintf("%02x", uint8(n.EVSE)), fmt.Sprintf("%02x", uint8(n.Pilot)),
				fmt.Sprint(n.CurrentA), fmt.Sprintf("%04x", n.VFlags)}}
			if again, err := ParseStateNotice(re); err != nil || again != n {
				t.Fatalf("%q parsed as %+v; re-encoded %v gives %+v, %v", line, n, re, again, err)
			}
		}

		// The reply to $SC: what the EVSE set, as Enable checks it.
		asked := MinCurrentA + int(askedA)%(MaxCurrentA-MinCurrentA+1)
		var refused error
		if !fr.OK() {
			refused = fmt.Errorf("%w: test", ErrRefused)
		}
		set, err := setCurrentReply(asked, fr, refused)
		noFmtBugs(err)
		if err != nil {
			fuzzcheck.ErrorSays(t, err, "rapi: ", "$SC")
		} else if set < MinCurrentA || set > asked {
			t.Fatalf("reply %q to $SC %d V accepted as %d A", line, asked, set)
		}
	})
}
