package sdp

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"satwatt/internal/clock"
	"satwatt/internal/fuzzcheck"
	"satwatt/internal/vehicledata"
)

// Fuzz targets for the bytes SDP reads from the network: every UDP datagram
// the wall's Responder and the car's Discover receive goes through these
// parsers. The real request and response of a Tesla Model Y and a pyPLC
// charger are seeds, taken at run time from the shared recording
// modely-slac-sdp-v2g.pcapng where it is (realSeeds); the edge cases below
// are added by hand.

// fuzzSeeds are the hand-made edge cases every target starts from.
var fuzzSeeds = []string{
	"",                         // nothing at all
	"01",                       // one byte of a header
	"01fe9000 000000",          // header cut one byte short
	"01fe9000 00000000",        // header alone, no payload
	"01fe9000 ffffffff 1000",   // length field at its maximum
	"01fe9000 00000002 1000",   // request: no TLS, TCP
	"01fe9000 00000002 0010",   // request: TLS, UDP
	"01fe9000 00000002 1000ff", // request with a trailing byte
	"01fe9000 00000001 10",     // request payload cut short
	"02fd9000 00000002 1000",   // another protocol version
	"01ff9000 00000002 1000",   // inverse version wrong
	"01fe8001 00000002 8098",   // an EXI message, not SDP
	"01fe9001 00000014 fe800000000000000001000200030004 3b0e 1000", // response
	"01fe9001 00000014 ff020000000000000000000000000001 3b0e 1000", // multicast address
	"01fe9001 00000014 00000000000000000000000000000000 0000 0010", // unspecified, port 0
	"01fe9001 00000014 00000000000000000000ffffc0000201 d121 1000", // IPv4-mapped
	"01fe9001 ffffffff fe800000000000000001000200030004 3b0e 1000", // length at max
	"01fe9001 00000002 1000", // response type, request payload
}

// addSeeds adds the hand-made edge cases and the real datagrams.
func addSeeds(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(unhex(f, s))
	}
	realSeeds(f)
}

// realSeeds adds the SDP payloads of the shared Model Y capture: the car's
// request and the pyPLC charger's response, read with the pcapng package
// from the recording where it is. Without the shared folder the target is
// skipped, or fails under CI=true (vehicledata.Require).
func realSeeds(f *testing.F) {
	f.Helper()
	dgs := sdpDatagrams(f, vehicledata.Require(f, "modely-slac-sdp-v2g.pcapng"))
	if len(dgs) != 2 {
		f.Fatalf("%d SDP datagrams in the capture, want a request and a response", len(dgs))
	}
	for _, d := range dgs {
		f.Add(d.Payload)
	}
}

// sentinels are the kinds a *ParseError wraps; exactly one must match.
var sentinels = []error{ErrTruncated, ErrVersion, ErrInverseVersion, ErrPayloadType, ErrLength, ErrSecurity, ErrTransport}

// checkParseError asserts what every refusal must say: the package, the
// byte offset (within the datagram) and exactly one kind of fault.
func checkParseError(t *testing.T, err error, b []byte) {
	t.Helper()
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("error %q is not a *ParseError", err)
	}
	if pe.Offset < 0 || pe.Offset > len(b) {
		t.Fatalf("error %q: offset %d outside the %d-byte datagram", err, pe.Offset, len(b))
	}
	fuzzcheck.ErrorSays(t, err, "sdp: ", fmt.Sprintf("byte %d: ", pe.Offset))
	n := 0
	for _, s := range sentinels {
		if errors.Is(err, s) {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("error %q wraps %d of the sentinel errors, want exactly 1", err, n)
	}
}

// allocBound is the fixed allowance for one parse. The parsers allocate
// only an error, a few hundred bytes; the rest is headroom for what the
// fuzzing engine allocates in the same process meanwhile.
const allocBound = 16 << 10

// noAlloc fails t if fn allocates. A valid datagram never allocates (it is
// the responder's per-datagram cost). Averaged over runs, so that an
// allocation elsewhere in the process during one run is not counted.
func noAlloc(t *testing.T, what string, fn func()) {
	t.Helper()
	if n := testing.AllocsPerRun(50, fn); n != 0 {
		t.Fatalf("%s: %v allocations, want none", what, n)
	}
}

func FuzzParseHeader(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		var h Header
		var err error
		fuzzcheck.Alloc(t, "ParseHeader", len(b), 0, allocBound, func() { h, err = ParseHeader(b) })
		if err != nil {
			checkParseError(t, err, b)
			// Only the first 8 bytes matter to a stream header.
			if len(b) >= HeaderLen && !errors.Is(err, ErrVersion) && !errors.Is(err, ErrInverseVersion) {
				t.Fatalf("% x: refused for %q, which is not about the version bytes", b, err)
			}
			return
		}
		if len(b) < HeaderLen || b[0] != ProtocolVersion || b[1] != InverseProtocolVersion {
			t.Fatalf("% x accepted as a header", b)
		}
		// Round trip: the header re-encodes to the bytes it came from.
		enc := AppendHeader(nil, h.PayloadType, h.PayloadLength)
		if !bytes.Equal(enc, b[:HeaderLen]) {
			t.Fatalf("header %+v re-encodes as % x, read from % x", h, enc, b[:HeaderLen])
		}
		if h2, err := ParseHeader(enc); err != nil || h2 != h {
			t.Fatalf("re-encoded header parses as %+v, %v; want %+v", h2, err, h)
		}
	})
}

func FuzzParseRequest(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Request
		var err error
		fuzzcheck.Alloc(t, "ParseRequest", len(b), 0, allocBound, func() { r, err = ParseRequest(b) })
		if err != nil {
			checkParseError(t, err, b)
			// A datagram with a bad header is refused for its header,
			// whatever parser reads it.
			if _, herr := ParseHeader(b); herr != nil && herr.Error() != err.Error() {
				t.Fatalf("ParseHeader says %q, ParseRequest %q", herr, err)
			}
			return
		}
		noAlloc(t, "ParseRequest of a valid request", func() { _, _ = ParseRequest(b) })
		if len(b) != RequestLen || !validSecurity(r.Security) || !validTransport(r.Transport) {
			t.Fatalf("% x accepted as %+v", b, r)
		}
		// Round trip: what parsed re-encodes to the very datagram.
		enc, err := AppendRequest(nil, r)
		if err != nil || !bytes.Equal(enc, b) {
			t.Fatalf("request %+v re-encodes as % x (%v), read from % x", r, enc, err, b)
		}
		// A request is never also a response: a responder hearing its
		// own kind of message must not take it for an answer.
		if _, err := ParseResponse(b); !errors.Is(err, ErrPayloadType) {
			t.Fatalf("request % x as a response: %v, want ErrPayloadType", b, err)
		}
	})
}

func FuzzParseResponse(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Response
		var err error
		fuzzcheck.Alloc(t, "ParseResponse", len(b), 0, allocBound, func() { r, err = ParseResponse(b) })
		if err != nil {
			checkParseError(t, err, b)
			if _, herr := ParseHeader(b); herr != nil && herr.Error() != err.Error() {
				t.Fatalf("ParseHeader says %q, ParseResponse %q", herr, err)
			}
			return
		}
		noAlloc(t, "ParseResponse of a valid response", func() { _, _ = ParseResponse(b) })
		if len(b) != ResponseLen || !r.Addr.Is6() || r.Addr.Zone() != "" ||
			!validSecurity(r.Security) || !validTransport(r.Transport) {
			t.Fatalf("% x accepted as %+v", b, r)
		}
		enc, err := AppendResponse(nil, r)
		if err != nil || !bytes.Equal(enc, b) {
			t.Fatalf("response %+v re-encodes as % x (%v), read from % x", r, enc, err, b)
		}
		if _, err := ParseRequest(b); !errors.Is(err, ErrPayloadType) {
			t.Fatalf("response % x as a request: %v, want ErrPayloadType", b, err)
		}
	})
}

// FuzzReceivedDatagram feeds one datagram to what each side does with it
// after reading it off the socket: the wall's Responder.handle and the
// car's discovery.accept. Both must count every datagram exactly once,
// answer or accept only what the parsers accept, and the wall must not
// allocate for it once its log lines are rate-limited.
func FuzzReceivedDatagram(f *testing.F) {
	addSeeds(f)
	announce := Response{Addr: netip.MustParseAddr("fe80::1:2:3:4"), Port: 15118, Security: SecurityNone, Transport: TransportTCP}
	answer, err := AppendResponse(nil, announce)
	if err != nil {
		f.Fatal(err)
	}
	src := netip.MustParseAddrPort("[fe80::9aed:5cff:feda:d998%3]:49153")
	quiet := slog.New(slog.DiscardHandler)
	f.Fuzz(func(t *testing.T, b []byte) {
		clk := clock.NewManual(time.Unix(1713625315, 0))

		// The wall's side.
		r, err := NewResponder(ResponderConfig{Iface: "plc0", Announce: netip.AddrPortFrom(announce.Addr, announce.Port),
			Security: announce.Security, Transport: announce.Transport, Clock: clk, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		r.answer = answer
		r.handle(b, src) // the first of each kind is logged, which may allocate
		var got []byte
		var req Request
		fuzzcheck.Alloc(t, "Responder.handle", len(b), 0, allocBound, func() { got, req = r.handle(b, src) })
		wantReq, reqErr := ParseRequest(b)
		st := r.Stats()
		// Once its log line is rate-limited, a datagram costs nothing.
		noAlloc(t, "Responder.handle", func() { r.handle(b, src) })
		switch {
		case reqErr == nil:
			if !bytes.Equal(got, answer) || req != wantReq || st != (Stats{}) {
				t.Fatalf("request % x: answer % x for %+v, stats %+v", b, got, req, st)
			}
		case errors.Is(reqErr, ErrPayloadType):
			if got != nil || st != (Stats{Ignored: 2}) {
				t.Fatalf("foreign message % x: answer % x, stats %+v", b, got, st)
			}
		default:
			if got != nil || st != (Stats{Malformed: 2}) {
				t.Fatalf("malformed % x (%v): answer % x, stats %+v", b, reqErr, got, st)
			}
		}

		// The car's side, with the modem's interface index as zone.
		d := discovery{log: quiet, clk: clk, zone: "3",
			badLog: limiter{every: DefaultLogEvery}, ignoreLog: limiter{every: DefaultLogEvery}}
		resp, fault := parseResponse(b)
		ok := d.accept(datagram{resp: resp, from: src, f: fault, n: len(b)})
		wantResp, respErr := ParseResponse(b)
		res := d.res
		switch {
		case ok:
			if respErr != nil || !usable(wantResp) {
				t.Fatalf("accepted % x: %+v, %v", b, wantResp, respErr)
			}
			a := res.Response.Addr
			if a.WithZone("") != wantResp.Addr || res.Response.Port != wantResp.Port || res.Malformed+res.Ignored != 0 {
				t.Fatalf("accepted % x as %+v, parsed %+v", b, res, wantResp)
			}
			if wantZone := map[bool]string{true: "3", false: ""}[a.IsLinkLocalUnicast()]; a.Zone() != wantZone {
				t.Fatalf("accepted address %v, want zone %q", a, wantZone)
			}
		case respErr == nil && usable(wantResp):
			t.Fatalf("usable response % x (%+v) not accepted", b, wantResp)
		case errors.Is(respErr, ErrPayloadType) || respErr == nil:
			if res.Ignored != 1 || res.Malformed != 0 {
				t.Fatalf("ignorable % x (%v): counts %+v", b, respErr, res)
			}
		default:
			if res.Malformed != 1 || res.Ignored != 0 {
				t.Fatalf("malformed % x (%v): counts %+v", b, respErr, res)
			}
		}
	})
}
