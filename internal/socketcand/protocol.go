// Package socketcand speaks the socketcand TCP protocol (linux-can's
// socketcand, doc/protocol.md) in raw mode: a client that reads and sends
// CAN frames on a remote bus, and a server that hosts virtual buses in this
// process, so a simulated car and the gateway can share a bus over TCP or,
// inside one process, without it.
//
// The protocol is a stream of ASCII elements, each between '<' and '>':
//
//	server: < hi >                          greeting
//	client: < open vcan0 >     server: < ok >
//	client: < rawmode >        server: < ok >
//	server: < frame 123 23.424242 11223344 >   one received frame
//	client: < send 123 4 11 22 33 44 >         one frame to transmit
//	server: < error some text >
//
// An ID of 8 hex digits is an extended (29-bit) ID, 3 digits a standard one.
package socketcand

import (
	"bufio"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.einride.tech/can"

	"satwatt/internal/asciinum"
)

// DefaultPort is socketcand's usual TCP port.
const DefaultPort = 29536

// MaxElement is the longest element, brackets included, either side accepts.
// socketcand itself reads commands into a buffer of about this size.
const MaxElement = 256

// maxBusName is socketcand's limit on a bus name.
const maxBusName = 16

// errTooLong means the peer sent more than MaxElement bytes without closing
// an element. The server closes such a connection; the client skips to the
// next '>' and goes on.
var errTooLong = errors.New("element longer than 256 bytes")

// ProtocolError is something the peer sent that does not parse. The
// connection is still usable: the next Receive reads the next element.
type ProtocolError struct {
	Reason  string
	Element string // the offending text, cut to MaxElement bytes
}

func (e *ProtocolError) Error() string {
	if e.Element == "" {
		return "socketcand: " + e.Reason
	}
	return fmt.Sprintf("socketcand: %s: %q", e.Reason, e.Element)
}

// ServerError is an `< error TEXT >` element from the server. socketcand
// also reports CAN error frames this way in raw mode.
type ServerError struct {
	Text string
}

func (e *ServerError) Error() string { return "socketcand: server error: " + e.Text }

func protocolError(reason string, el []byte) *ProtocolError {
	if len(el) > MaxElement {
		el = el[:MaxElement]
	}
	return &ProtocolError{Reason: reason, Element: string(el)}
}

// elementReader splits the byte stream into elements. It keeps its state
// between calls, so a read interrupted by a deadline resumes where it was.
type elementReader struct {
	r        *bufio.Reader
	buf      [MaxElement]byte
	n        int
	in       bool // between '<' and '>'
	skipping bool // inside an overlong element, waiting for its '>'
	junk     [32]byte
	junkN    int // bytes outside any element since the last one
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// next returns the text between the next '<' and '>', trimmed. The slice is
// valid until the following call. Stray text between elements comes back
// as a *ProtocolError once the next element starts (or once it exceeds
// MaxElement bytes, as errTooLong).
func (e *elementReader) next() ([]byte, error) {
	for {
		c, err := e.r.ReadByte()
		if err != nil {
			return nil, err
		}
		switch {
		case e.skipping:
			if c == '>' {
				e.skipping = false
			}
		case !e.in:
			if c == '<' {
				e.in, e.n = true, 0
				if e.junkN > 0 {
					junk := e.junk[:min(e.junkN, len(e.junk))]
					e.junkN = 0
					return nil, protocolError("unexpected text outside < >", junk)
				}
				continue
			}
			if isBlank(c) {
				continue
			}
			if e.junkN < len(e.junk) {
				e.junk[e.junkN] = c
			}
			e.junkN++
			if e.junkN > MaxElement {
				e.junkN = 0
				return nil, errTooLong
			}
		default:
			switch c {
			case '>':
				e.in = false
				return trimBlank(e.buf[:e.n]), nil
			case '<':
				// The previous element never closed; report it and
				// start over with this one.
				bad := e.buf[:e.n]
				e.n = 0
				return nil, protocolError("element not closed before the next '<'", bad)
			}
			if e.n+3 > MaxElement { // '<', this byte and '>' must fit
				e.in, e.skipping = false, true
				return nil, errTooLong
			}
			e.buf[e.n] = c
			e.n++
		}
	}
}

func trimBlank(b []byte) []byte {
	for len(b) > 0 && isBlank(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isBlank(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// fields splits b at blanks into dst without allocating while dst has room.
func fields(b []byte, dst [][]byte) [][]byte {
	dst = dst[:0]
	for i := 0; i < len(b); {
		for i < len(b) && isBlank(b[i]) {
			i++
		}
		start := i
		for i < len(b) && !isBlank(b[i]) {
			i++
		}
		if i > start {
			dst = append(dst, b[start:i])
		}
	}
	return dst
}

// parseID reads a hex CAN ID; 8 digits mean an extended ID, as socketcand
// decides.
func parseID(b []byte) (id uint32, extended bool, reason string) {
	if len(b) == 0 || len(b) > 8 {
		return 0, false, "CAN ID must have 1 to 8 hex digits"
	}
	for _, c := range b {
		d, ok := asciinum.HexDigit(c)
		if !ok {
			return 0, false, "bad hex digit in CAN ID"
		}
		id = id<<4 | uint32(d)
	}
	extended = len(b) == 8
	if extended && id > can.MaxExtendedID {
		return 0, false, "extended CAN ID exceeds 29 bits"
	}
	if !extended && id > can.MaxID {
		return 0, false, "standard CAN ID exceeds 0x7FF (use 8 digits for an extended ID)"
	}
	return id, extended, ""
}

// parseTimestamp reads socketcand's SECONDS.USECONDS.
func parseTimestamp(b []byte) (time.Time, bool) {
	dot := -1
	for i, c := range b {
		if c == '.' {
			dot = i
			break
		}
	}
	secText, fracText := b, []byte(nil)
	if dot >= 0 {
		secText, fracText = b[:dot], b[dot+1:]
	}
	sec, ok := asciinum.Decimal(secText, 1<<40)
	if !ok {
		return time.Time{}, false
	}
	var ns int64
	if dot >= 0 {
		if len(fracText) == 0 || len(fracText) > 9 {
			return time.Time{}, false
		}
		v, ok := asciinum.Decimal(fracText, 999999999)
		if !ok {
			return time.Time{}, false
		}
		ns = int64(v)
		for k := len(fracText); k < 9; k++ {
			ns *= 10
		}
	}
	return time.Unix(int64(sec), ns), true
}

// parseSendElement reads the fields of `send ID LEN B0 .. Bn` or
// `sendrtr ID LEN`, the commands a client transmits a frame with; fs[0] is
// the command. reason says what is wrong, or is empty.
func parseSendElement(fs [][]byte) (f can.Frame, reason string) {
	if len(fs) < 3 {
		return can.Frame{}, "usage: " + string(fs[0]) + " ID LEN [BYTES]"
	}
	remote := string(fs[0]) == "sendrtr"
	id, ext, reason := parseID(fs[1])
	if reason != "" {
		return can.Frame{}, reason
	}
	n, ok := asciinum.Decimal(fs[2], 255)
	if !ok || n > can.MaxDataLength {
		return can.Frame{}, "length must be 0 to 8"
	}
	f = can.Frame{ID: id, IsExtended: ext, IsRemote: remote, Length: uint8(n)}
	data := fs[3:]
	if remote {
		if len(data) != 0 {
			return can.Frame{}, "sendrtr takes no data bytes"
		}
		return f, ""
	}
	if len(data) != int(n) {
		return can.Frame{}, fmt.Sprintf("length is %d but %d data bytes follow", n, len(data))
	}
	for i, tok := range data {
		if len(tok) == 0 || len(tok) > 2 {
			return can.Frame{}, fmt.Sprintf("data byte %d is not 1 or 2 hex digits", i+1)
		}
		var v byte
		for _, c := range tok {
			d, ok := asciinum.HexDigit(c)
			if !ok {
				return can.Frame{}, fmt.Sprintf("bad hex digit in data byte %d", i+1)
			}
			v = v<<4 | d
		}
		f.Data[i] = v
	}
	return f, ""
}

const hexDigits = "0123456789ABCDEF"

func appendHexByte(b []byte, v byte) []byte {
	return append(b, hexDigits[v>>4], hexDigits[v&0xf])
}

// appendID writes an ID the way socketcand does: %03X or %08X.
func appendID(b []byte, f *can.Frame) []byte {
	digits := 3
	if f.IsExtended {
		digits = 8
	}
	for shift := (digits - 1) * 4; shift >= 0; shift -= 4 {
		b = append(b, hexDigits[(f.ID>>uint(shift))&0xf])
	}
	return b
}

// appendTimestamp writes SECONDS.USECONDS with six fraction digits.
func appendTimestamp(b []byte, t time.Time) []byte {
	sec, usec := t.Unix(), t.Nanosecond()/1000
	if sec < 0 {
		sec, usec = 0, 0
	}
	b = strconv.AppendInt(b, sec, 10)
	b = append(b, '.')
	for div := 100000; div > 0; div /= 10 {
		b = append(b, byte('0'+usec/div%10))
	}
	return b
}

// appendFrameElement writes what the server sends for one received frame,
// byte for byte as socketcand's raw mode does (including the double blank
// when there is no data).
func appendFrameElement(b []byte, f *can.Frame, t time.Time) []byte {
	if f.IsRemote {
		b = append(b, "< rtr "...)
		b = appendID(b, f)
		b = append(b, ' ')
		b = appendTimestamp(b, t)
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(f.Length), 10)
		return append(b, " >"...)
	}
	b = append(b, "< frame "...)
	b = appendID(b, f)
	b = append(b, ' ')
	b = appendTimestamp(b, t)
	b = append(b, ' ')
	for i := 0; i < int(f.Length) && i < len(f.Data); i++ {
		b = appendHexByte(b, f.Data[i])
	}
	return append(b, " >"...)
}

// appendSendElement writes the command a client uses to transmit f.
func appendSendElement(b []byte, f *can.Frame) []byte {
	if f.IsRemote {
		b = append(b, "< sendrtr "...)
		b = appendID(b, f)
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(f.Length), 10)
		return append(b, " >"...)
	}
	b = append(b, "< send "...)
	b = appendID(b, f)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(f.Length), 10)
	for i := 0; i < int(f.Length); i++ {
		b = append(b, ' ')
		b = appendHexByte(b, f.Data[i])
	}
	return append(b, " >"...)
}

// validBusName applies socketcand's limits and keeps names that would
// break the element syntax out.
func validBusName(name string) error {
	if name == "" {
		return errors.New("empty bus name")
	}
	if len(name) > maxBusName {
		return fmt.Errorf("bus name %q is longer than %d characters", name, maxBusName)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c == '<' || c == '>' || c >= 0x7f {
			return fmt.Errorf("bus name %q contains %q", name, c)
		}
	}
	return nil
}
