// Package sdp implements the SECC Discovery Protocol of ISO 15118-2: after
// the powerline link is up, the car (EVCC) multicasts a small UDP request to
// [ff02::1]:15118 and the wall (SECC) answers with the address and port of
// its server. The codec here is pure; Responder is the wall's side and
// Discover the car's.
package sdp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// V2GTP header fields and the SDP payload types (ISO 15118-2).
const (
	ProtocolVersion        = 0x01
	InverseProtocolVersion = 0xFE

	PayloadTypeSDPRequest  uint16 = 0x9000
	PayloadTypeSDPResponse uint16 = 0x9001

	HeaderLen = 8
	// Whole datagrams: header plus payload.
	RequestLen  = HeaderLen + requestPayloadLen
	ResponseLen = HeaderLen + responsePayloadLen

	requestPayloadLen  = 2
	responsePayloadLen = 20
)

// Security values.
const (
	SecurityTLS  byte = 0x00
	SecurityNone byte = 0x10
)

// Transport values.
const (
	TransportTCP byte = 0x00
	TransportUDP byte = 0x10
)

// DefaultPort is the UDP port SECCs listen on for requests.
const DefaultPort = 15118

// Request is what the car asks for.
type Request struct {
	Security  byte
	Transport byte
}

// Response is where the wall's server is. Addr has no zone on the wire;
// Discover zones link-local addresses with the interface's index.
type Response struct {
	Addr      netip.Addr
	Port      uint16
	Security  byte
	Transport byte
}

// Header is a V2GTP header.
type Header struct {
	PayloadType   uint16
	PayloadLength uint32
}

// Sentinel errors; every parse error wraps exactly one of them.
var (
	ErrTruncated      = errors.New("truncated")
	ErrVersion        = errors.New("wrong protocol version")
	ErrInverseVersion = errors.New("inverse protocol version mismatch")
	ErrPayloadType    = errors.New("unexpected payload type")
	ErrLength         = errors.New("payload length mismatch")
	ErrSecurity       = errors.New("unknown security value")
	ErrTransport      = errors.New("unknown transport value")
	ErrAddress        = errors.New("not an IPv6 address")
)

// faultKind names what is wrong with a datagram. Parsing works with these
// plain values and builds a *ParseError only when a caller wants an error,
// so a flood of garbage costs no allocation.
type faultKind uint8

const (
	faultNone        faultKind = iota
	faultShortHeader           // fewer than 8 bytes
	faultVersion
	faultInverse
	faultDatagramLen // length field disagrees with the datagram
	faultType
	faultShortPayload // length consistent but too short for the type
	faultLongPayload  // length consistent but too long for the type
	faultSecurity
	faultTransport
)

type fault struct {
	kind      faultKind
	off       int
	got, want uint32
}

// foreign reports a well-formed V2GTP message of another payload type:
// something to ignore, not garbage.
func (f fault) foreign() bool { return f.kind == faultType }

func (f fault) err() error {
	if f.kind == faultNone {
		return nil
	}
	return &ParseError{Offset: f.off, Got: f.got, Want: f.want, kind: f.kind}
}

// ParseError says what is wrong with a datagram and at which byte offset.
// It wraps one of the Err* sentinels.
type ParseError struct {
	// Offset is the byte the problem was found at; for a truncated
	// datagram, its length (where more bytes were needed).
	Offset int
	// Got is the offending value (or length); Want the expected one where
	// there is a single one.
	Got, Want uint32
	kind      faultKind
}

func (e *ParseError) Unwrap() error {
	switch e.kind {
	case faultShortHeader, faultShortPayload:
		return ErrTruncated
	case faultVersion:
		return ErrVersion
	case faultInverse:
		return ErrInverseVersion
	case faultDatagramLen, faultLongPayload:
		return ErrLength
	case faultType:
		return ErrPayloadType
	case faultSecurity:
		return ErrSecurity
	case faultTransport:
		return ErrTransport
	}
	return nil
}

func (e *ParseError) Error() string {
	var what string
	switch e.kind {
	case faultShortHeader:
		what = fmt.Sprintf("datagram of %d bytes is shorter than the %d-byte V2GTP header", e.Got, e.Want)
	case faultVersion:
		what = fmt.Sprintf("protocol version 0x%02x, want 0x%02x", e.Got, e.Want)
	case faultInverse:
		what = fmt.Sprintf("inverse protocol version 0x%02x, want 0x%02x", e.Got, e.Want)
	case faultDatagramLen:
		what = fmt.Sprintf("payload length field says %d but the datagram carries %d payload bytes", e.Got, e.Want)
	case faultType:
		what = fmt.Sprintf("payload type 0x%04x, want 0x%04x", e.Got, e.Want)
	case faultShortPayload:
		what = fmt.Sprintf("payload of %d bytes, an SDP message of this type needs %d", e.Got, e.Want)
	case faultLongPayload:
		what = fmt.Sprintf("payload length %d, an SDP message of this type has exactly %d", e.Got, e.Want)
	case faultSecurity:
		what = fmt.Sprintf("security 0x%02x, want 0x%02x (TLS) or 0x%02x (none)", e.Got, SecurityTLS, SecurityNone)
	case faultTransport:
		what = fmt.Sprintf("transport 0x%02x, want 0x%02x (TCP) or 0x%02x (UDP)", e.Got, TransportTCP, TransportUDP)
	}
	return fmt.Sprintf("sdp: byte %d: %s: %v", e.Offset, what, e.Unwrap())
}

func validSecurity(b byte) bool  { return b == SecurityTLS || b == SecurityNone }
func validTransport(b byte) bool { return b == TransportTCP || b == TransportUDP }

// checkHeader validates the V2GTP header of a whole datagram: version,
// inverse version, and a length field that matches what arrived.
func checkHeader(b []byte) (Header, fault) {
	if len(b) < HeaderLen {
		return Header{}, fault{faultShortHeader, len(b), uint32(len(b)), HeaderLen}
	}
	if b[0] != ProtocolVersion {
		return Header{}, fault{faultVersion, 0, uint32(b[0]), ProtocolVersion}
	}
	if b[1] != ^b[0] {
		return Header{}, fault{faultInverse, 1, uint32(b[1]), uint32(^b[0])}
	}
	h := Header{
		PayloadType:   binary.BigEndian.Uint16(b[2:4]),
		PayloadLength: binary.BigEndian.Uint32(b[4:8]),
	}
	if have := uint64(len(b) - HeaderLen); uint64(h.PayloadLength) != have {
		return h, fault{faultDatagramLen, 4, h.PayloadLength, uint32(have)}
	}
	return h, fault{}
}

// checkSDP validates a whole datagram as an SDP message of payload type
// want carrying n payload bytes.
func checkSDP(b []byte, want uint16, n uint32) fault {
	h, f := checkHeader(b)
	switch {
	case f.kind != faultNone:
		return f
	case h.PayloadType != want:
		return fault{faultType, 2, uint32(h.PayloadType), uint32(want)}
	case h.PayloadLength < n:
		return fault{faultShortPayload, len(b), h.PayloadLength, n}
	case h.PayloadLength > n:
		return fault{faultLongPayload, 4, h.PayloadLength, n}
	}
	return fault{}
}

func parseRequest(b []byte) (Request, fault) {
	if f := checkSDP(b, PayloadTypeSDPRequest, requestPayloadLen); f.kind != faultNone {
		return Request{}, f
	}
	r := Request{Security: b[8], Transport: b[9]}
	if !validSecurity(r.Security) {
		return Request{}, fault{faultSecurity, 8, uint32(r.Security), 0}
	}
	if !validTransport(r.Transport) {
		return Request{}, fault{faultTransport, 9, uint32(r.Transport), 0}
	}
	return r, fault{}
}

func parseResponse(b []byte) (Response, fault) {
	if f := checkSDP(b, PayloadTypeSDPResponse, responsePayloadLen); f.kind != faultNone {
		return Response{}, f
	}
	r := Response{
		Addr:      netip.AddrFrom16([16]byte(b[8:24])),
		Port:      binary.BigEndian.Uint16(b[24:26]),
		Security:  b[26],
		Transport: b[27],
	}
	if !validSecurity(r.Security) {
		return Response{}, fault{faultSecurity, 26, uint32(r.Security), 0}
	}
	if !validTransport(r.Transport) {
		return Response{}, fault{faultTransport, 27, uint32(r.Transport), 0}
	}
	return r, fault{}
}

// ParseHeader reads a V2GTP header from the start of b. It checks the
// version fields only, not the length against len(b), so it also serves
// streams (V2GTP over TCP) where the payload follows later.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderLen {
		return Header{}, fault{faultShortHeader, len(b), uint32(len(b)), HeaderLen}.err()
	}
	if b[0] != ProtocolVersion {
		return Header{}, fault{faultVersion, 0, uint32(b[0]), ProtocolVersion}.err()
	}
	if b[1] != ^b[0] {
		return Header{}, fault{faultInverse, 1, uint32(b[1]), uint32(^b[0])}.err()
	}
	return Header{
		PayloadType:   binary.BigEndian.Uint16(b[2:4]),
		PayloadLength: binary.BigEndian.Uint32(b[4:8]),
	}, nil
}

// ParseRequest parses a whole UDP datagram as an SDP request. It does not
// allocate unless it returns an error.
func ParseRequest(b []byte) (Request, error) {
	r, f := parseRequest(b)
	return r, f.err()
}

// ParseResponse parses a whole UDP datagram as an SDP response. Any port is
// accepted: real chargers announce 15118, 30000, 51111, 53537 and others.
func ParseResponse(b []byte) (Response, error) {
	r, f := parseResponse(b)
	return r, f.err()
}

// AppendHeader appends a V2GTP header.
func AppendHeader(dst []byte, payloadType uint16, payloadLength uint32) []byte {
	dst = append(dst, ProtocolVersion, InverseProtocolVersion)
	dst = binary.BigEndian.AppendUint16(dst, payloadType)
	return binary.BigEndian.AppendUint32(dst, payloadLength)
}

func checkValues(sec, tr byte) error {
	if !validSecurity(sec) {
		return fmt.Errorf("sdp: security 0x%02x: %w", sec, ErrSecurity)
	}
	if !validTransport(tr) {
		return fmt.Errorf("sdp: transport 0x%02x: %w", tr, ErrTransport)
	}
	return nil
}

// AppendRequest appends r as a whole datagram. It refuses values the
// standard does not define, so nothing sent can fail a peer's parser.
func AppendRequest(dst []byte, r Request) ([]byte, error) {
	if err := checkValues(r.Security, r.Transport); err != nil {
		return dst, err
	}
	dst = AppendHeader(dst, PayloadTypeSDPRequest, requestPayloadLen)
	return append(dst, r.Security, r.Transport), nil
}

// AppendResponse appends r as a whole datagram. Addr must be IPv6; its
// zone, if any, is not sent.
func AppendResponse(dst []byte, r Response) ([]byte, error) {
	if !r.Addr.Is6() {
		return dst, fmt.Errorf("sdp: response address %v: %w", r.Addr, ErrAddress)
	}
	if err := checkValues(r.Security, r.Transport); err != nil {
		return dst, err
	}
	dst = AppendHeader(dst, PayloadTypeSDPResponse, responsePayloadLen)
	a := r.Addr.As16()
	dst = append(dst, a[:]...)
	dst = binary.BigEndian.AppendUint16(dst, r.Port)
	return append(dst, r.Security, r.Transport), nil
}

// SecurityName and TransportName are for logs.
func SecurityName(b byte) string {
	switch b {
	case SecurityTLS:
		return "tls"
	case SecurityNone:
		return "none"
	}
	return fmt.Sprintf("0x%02x", b)
}

// TransportName: see SecurityName.
func TransportName(b byte) string {
	switch b {
	case TransportTCP:
		return "tcp"
	case TransportUDP:
		return "udp"
	}
	return fmt.Sprintf("0x%02x", b)
}
