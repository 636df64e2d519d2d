package sdp

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"

	"satwatt/internal/pcapng"
	"satwatt/internal/vehicledata"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sdpDatagrams returns the UDP datagrams to or from port 15118 in a capture.
func sdpDatagrams(t testing.TB, path string) []pcapng.UDPDatagram {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pkts, err := pcapng.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	var out []pcapng.UDPDatagram
	for _, p := range pkts {
		u, err := pcapng.DecodeUDP(p.LinkType, p.Data)
		if errors.Is(err, pcapng.ErrNotUDP) {
			continue
		}
		if err != nil {
			t.Fatalf("packet at byte %d: %v", p.Offset, err)
		}
		if u.Src.Port() == DefaultPort || u.Dst.Port() == DefaultPort {
			out = append(out, u)
		}
	}
	return out
}

// The real exchange between a Tesla Model Y and a pyPLC charger.
func TestRealCapture(t *testing.T) {
	path := vehicledata.Require(t, "modely-slac-sdp-v2g.pcapng")
	dgs := sdpDatagrams(t, path)
	for _, d := range dgs {
		t.Logf("%v -> %v: % x", d.Src, d.Dst, d.Payload)
	}
	if len(dgs) != 2 {
		t.Fatalf("%d SDP datagrams, want a request and a response", len(dgs))
	}
	car := netip.MustParseAddrPort("[fe80::9aed:5cff:feda:d998]:49153")
	charger := netip.MustParseAddr("fe80::c690:83f3:fbcb:980e")

	reqDg, respDg := dgs[0], dgs[1]
	if reqDg.Src != car || reqDg.Dst != netip.AddrPortFrom(AllNodes, DefaultPort) {
		t.Errorf("request %v -> %v, want %v -> [ff02::1]:15118", reqDg.Src, reqDg.Dst, car)
	}
	if respDg.Src != netip.AddrPortFrom(charger, DefaultPort) || respDg.Dst != car {
		t.Errorf("response %v -> %v, want [%v]:15118 -> %v", respDg.Src, respDg.Dst, charger, car)
	}

	req, err := ParseRequest(reqDg.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Request{Security: SecurityNone, Transport: TransportTCP}); req != want {
		t.Errorf("request %+v, want %+v", req, want)
	}
	resp, err := ParseResponse(respDg.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Response{Addr: charger, Port: 15118, Security: SecurityNone, Transport: TransportTCP}); resp != want {
		t.Errorf("response %+v, want %+v", resp, want)
	}

	if b, err := AppendRequest(nil, req); err != nil || !bytes.Equal(b, reqDg.Payload) {
		t.Errorf("request re-encodes as % x (%v), captured % x", b, err, reqDg.Payload)
	}
	if b, err := AppendResponse(nil, resp); err != nil || !bytes.Equal(b, respDg.Payload) {
		t.Errorf("response re-encodes as % x (%v), captured % x", b, err, respDg.Payload)
	}
}

// Ports real chargers announce, and the extremes: none is refused.
func TestResponseAnyPort(t *testing.T) {
	for _, port := range []uint16{15118, 30000, 51111, 53537, 0, 1, 65535} {
		in := Response{Addr: netip.MustParseAddr("fe80::1"), Port: port, Security: SecurityTLS, Transport: TransportTCP}
		b, err := AppendResponse(nil, in)
		if err != nil {
			t.Fatal(err)
		}
		out, err := ParseResponse(b)
		if err != nil || out != in {
			t.Errorf("port %d: round trip gives %+v, %v", port, out, err)
		}
	}
}

func TestEncode(t *testing.T) {
	tests := []struct {
		name string
		got  func() ([]byte, error)
		want string
	}{
		{"request tls tcp", func() ([]byte, error) { return AppendRequest(nil, Request{SecurityTLS, TransportTCP}) }, "01fe9000 00000002 0000"},
		{"request none udp", func() ([]byte, error) { return AppendRequest(nil, Request{SecurityNone, TransportUDP}) }, "01fe9000 00000002 1010"},
		{"appends", func() ([]byte, error) { return AppendRequest([]byte{0xaa}, Request{SecurityNone, TransportTCP}) }, "aa 01fe9000 00000002 1000"},
		{"response zone dropped", func() ([]byte, error) {
			return AppendResponse(nil, Response{netip.MustParseAddr("fe80::1%eth0"), 53537, SecurityNone, TransportTCP})
		}, "01fe9001 00000014 fe800000000000000000000000000001 d121 1000"},
		{"header", func() ([]byte, error) { return AppendHeader(nil, 0x8001, 0x01020304), nil }, "01fe8001 01020304"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.got()
			if err != nil {
				t.Fatal(err)
			}
			if want := unhex(t, tt.want); !bytes.Equal(got, want) {
				t.Errorf("got % x, want % x", got, want)
			}
		})
	}
}

func TestEncodeRefuses(t *testing.T) {
	tests := []struct {
		name string
		call func() ([]byte, error)
		want error
	}{
		{"request security", func() ([]byte, error) { return AppendRequest(nil, Request{0x01, TransportTCP}) }, ErrSecurity},
		{"request transport", func() ([]byte, error) { return AppendRequest(nil, Request{SecurityTLS, 0x11}) }, ErrTransport},
		{"response ipv4", func() ([]byte, error) {
			return AppendResponse(nil, Response{netip.MustParseAddr("192.0.2.1"), 1, SecurityTLS, TransportTCP})
		}, ErrAddress},
		{"response no address", func() ([]byte, error) { return AppendResponse(nil, Response{Port: 1}) }, ErrAddress},
		{"response security", func() ([]byte, error) {
			return AppendResponse(nil, Response{netip.MustParseAddr("::1"), 1, 0xff, TransportTCP})
		}, ErrSecurity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.call()
			if !errors.Is(err, tt.want) {
				t.Errorf("error %v, want %v", err, tt.want)
			}
			if len(b) != 0 {
				t.Errorf("appended % x despite the error", b)
			}
		})
	}
}

const (
	validRequest  = "01fe9000 00000002 1000"
	validResponse = "01fe9001 00000014 fe800000000000000001000200030004 3b0e 1000"
)

func TestParseErrors(t *testing.T) {
	type parser int
	const (
		request parser = iota
		response
	)
	tests := []struct {
		name   string
		parse  parser
		in     string
		want   error
		offset int
		msg    string
	}{
		{"empty", request, "", ErrTruncated, 0, "datagram of 0 bytes is shorter than the 8-byte V2GTP header"},
		{"header cut", request, "01fe9000 000000", ErrTruncated, 7, "datagram of 7 bytes"},
		{"version 2", request, "02fd9000 00000002 1000", ErrVersion, 0, "protocol version 0x02, want 0x01"},
		{"inverse mismatch", request, "01ff9000 00000002 1000", ErrInverseVersion, 1, "inverse protocol version 0xff, want 0xfe"},
		{"length field too big", request, "01fe9000 00000003 1000", ErrLength, 4, "length field says 3 but the datagram carries 2"},
		{"length field too small", request, "01fe9000 00000002 100000", ErrLength, 4, "says 2 but the datagram carries 3"},
		{"length field huge", request, "01fe9000 ffffffff 1000", ErrLength, 4, "says 4294967295"},
		{"response to request parser", request, validResponse, ErrPayloadType, 2, "payload type 0x9001, want 0x9000"},
		{"exi message", request, "01fe8001 00000002 8098", ErrPayloadType, 2, "payload type 0x8001"},
		{"request payload short", request, "01fe9000 00000001 10", ErrTruncated, 9, "payload of 1 bytes, an SDP message of this type needs 2"},
		{"request payload long", request, "01fe9000 00000003 100000", ErrLength, 4, "payload length 3, an SDP message of this type has exactly 2"},
		{"request security", request, "01fe9000 00000002 0100", ErrSecurity, 8, "security 0x01"},
		{"request transport", request, "01fe9000 00000002 1020", ErrTransport, 9, "transport 0x20"},
		{"request to response parser", response, validRequest, ErrPayloadType, 2, "payload type 0x9000, want 0x9001"},
		{"response cut", response, "01fe9001 00000012 fe800000000000000001000200030004 3b0e", ErrTruncated, 26, "payload of 18 bytes"},
		{"response trailing byte", response, validResponse + "00", ErrLength, 4, "says 20 but the datagram carries 21"},
		{"response security", response, "01fe9001 00000014 fe800000000000000001000200030004 3b0e 1100", ErrSecurity, 26, "security 0x11"},
		{"response transport", response, "01fe9001 00000014 fe800000000000000001000200030004 3b0e 10ff", ErrTransport, 27, "transport 0xff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := unhex(t, tt.in)
			var err error
			if tt.parse == request {
				_, err = ParseRequest(b)
			} else {
				_, err = ParseResponse(b)
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Offset != tt.offset {
				t.Errorf("error %v: offset %+v, want %d", err, pe, tt.offset)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not say %q", err, tt.msg)
			}
		})
	}
}

func TestParseHeader(t *testing.T) {
	// A stream header need not match the bytes that follow it.
	h, err := ParseHeader(unhex(t, "01fe8001 00000100"))
	if err != nil || h != (Header{PayloadType: 0x8001, PayloadLength: 256}) {
		t.Errorf("got %+v, %v", h, err)
	}
	for in, want := range map[string]error{
		"01fe80":            ErrTruncated,
		"00ff8001 00000000": ErrVersion,
		"01fd8001 00000000": ErrInverseVersion,
	} {
		if _, err := ParseHeader(unhex(t, in)); !errors.Is(err, want) {
			t.Errorf("%s: error %v, want %v", in, err, want)
		}
	}
}

func TestParseDoesNotAllocate(t *testing.T) {
	req, resp := unhex(t, validRequest), unhex(t, validResponse)
	garbage := unhex(t, "01ff9000 00000002 1000")
	for name, fn := range map[string]func(){
		"ParseRequest":            func() { _, _ = ParseRequest(req) },
		"ParseResponse":           func() { _, _ = ParseResponse(resp) },
		"parseRequest of garbage": func() { _, _ = parseRequest(garbage) },
	} {
		if n := testing.AllocsPerRun(100, fn); n != 0 {
			t.Errorf("%s: %v allocations per run", name, n)
		}
	}
}

func BenchmarkParseRequest(b *testing.B) {
	req := unhex(b, validRequest)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseRequest(req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseResponse(b *testing.B) {
	resp := unhex(b, validResponse)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseResponse(resp); err != nil {
			b.Fatal(err)
		}
	}
}
