package canlog

import (
	"time"

	"go.einride.tech/can"

	"satwatt/internal/asciinum"
)

// errorFlag is bit 29 of an 8-digit candump ID: can-utils writes kernel
// error frames that way, and they carry no bus data.
const errorFlag = 0x20000000

// ParseCandump parses one line of the can-utils `candump -l` log format:
//
//	(1600000018.846853) can0 118#5704221800000000
//
// It accepts 3-digit standard and 8-digit extended IDs, remote frames
// (`123#R`, `123#R4`), empty data (`123#`) and the optional '.' between data
// bytes that can-utils allows. ts is the recorded time since the Unix epoch;
// iface aliases line, so copy it before line is reused. Errors are
// *LineError with Line 0; the caller knows the line number.
func ParseCandump(line []byte, f *can.Frame) (ts time.Duration, iface []byte, err error) {
	ts, iface, lerr := parseCandump(line, f)
	if lerr != nil {
		lerr.Format = Candump
		return 0, nil, lerr
	}
	return ts, iface, nil
}

// parseCandump returns the concrete error type so a nil *LineError never
// turns into a non-nil error interface.
func parseCandump(line []byte, f *can.Frame) (time.Duration, []byte, *LineError) {
	*f = can.Frame{}
	b := trimEOL(line)
	i := 0
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	if i == len(b) {
		return 0, nil, lineError(line, "empty line")
	}
	if b[i] != '(' {
		return 0, nil, lineError(line, "missing '(' before the timestamp")
	}
	i++

	// Timestamp: seconds '.' fraction ')'.
	start := i
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	sec, ok := asciinum.Decimal(b[start:i], maxSeconds-1)
	if !ok {
		return 0, nil, lineError(line, "bad timestamp seconds")
	}
	if i >= len(b) || b[i] != '.' {
		return 0, nil, lineError(line, "missing '.' in the timestamp")
	}
	i++
	start = i
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	frac := b[start:i]
	if len(frac) == 0 || len(frac) > 9 {
		return 0, nil, lineError(line, "timestamp fraction must have 1 to 9 digits")
	}
	var ns int64
	for _, c := range frac {
		ns = ns*10 + int64(c-'0')
	}
	for k := len(frac); k < 9; k++ {
		ns *= 10
	}
	if i >= len(b) || b[i] != ')' {
		return 0, nil, lineError(line, "missing ')' after the timestamp")
	}
	i++
	ts := time.Duration(sec)*time.Second + time.Duration(ns)

	// Interface name.
	if i >= len(b) || !isSpace(b[i]) {
		return 0, nil, lineError(line, "missing space after the timestamp")
	}
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	start = i
	for i < len(b) && !isSpace(b[i]) {
		i++
	}
	iface := b[start:i]
	if len(iface) == 0 {
		return 0, nil, lineError(line, "missing interface name")
	}
	// Network interface names hold no control characters; a stray CR
	// here is a damaged line, not an interface called "\r".
	for _, c := range iface {
		if c < 0x20 || c == 0x7f {
			return 0, nil, lineError(line, "control character %s in the interface name", describeByte(c))
		}
	}
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	if i == len(b) {
		return 0, nil, lineError(line, "missing frame after the interface name")
	}
	start = i
	for i < len(b) && !isSpace(b[i]) {
		i++
	}
	tok := b[start:i]
	if i != len(b) {
		return 0, nil, lineError(line, "unexpected text after the frame")
	}
	if lerr := parseCandumpFrame(line, tok, f); lerr != nil {
		return 0, nil, lerr
	}
	return ts, iface, nil
}

// parseCandumpFrame parses the `ID#DATA` token.
func parseCandumpFrame(line, tok []byte, f *can.Frame) *LineError {
	hash := -1
	for k, c := range tok {
		if c == '#' {
			hash = k
			break
		}
	}
	if hash < 0 {
		return lineError(line, "missing '#'")
	}
	idText := tok[:hash]
	switch len(idText) {
	case 3:
	case 8:
		f.IsExtended = true
	default:
		return lineError(line, "ID must have 3 or 8 hex digits, not %d", len(idText))
	}
	id, lerr := parseHexID(line, idText, "ID")
	if lerr != nil {
		return lerr
	}
	if f.IsExtended && id&errorFlag != 0 {
		return lineError(line, "error frame (ID flag 0x20000000), not a data frame")
	}
	if lerr := checkID(line, id, f.IsExtended); lerr != nil {
		return lerr
	}
	f.ID = id

	rest := tok[hash+1:]
	if len(rest) > 0 && rest[0] == '#' {
		return lineError(line, "CAN FD frame ('##') is not supported")
	}
	if len(rest) > 0 && (rest[0] == 'R' || rest[0] == 'r') {
		f.IsRemote = true
		switch len(rest) {
		case 1:
			return nil
		case 2:
			if rest[1] < '0' || rest[1] > '8' {
				return lineError(line, "bad remote frame length %s", describeByte(rest[1]))
			}
			f.Length = rest[1] - '0'
			return nil
		}
		return lineError(line, "unexpected text after remote frame 'R'")
	}

	// Check and count the digits first so an overlong frame gets a
	// length error rather than being cut short.
	digits := 0
	for _, c := range rest {
		if c == '.' {
			continue
		}
		if _, ok := asciinum.HexDigit(c); !ok {
			return lineError(line, "bad hex digit %s in data", describeByte(c))
		}
		digits++
	}
	if digits%2 != 0 {
		return lineError(line, "odd number of hex digits (%d) in data", digits)
	}
	if digits/2 > can.MaxDataLength {
		return lineError(line, "data length %d exceeds 8", digits/2)
	}
	n := 0
	for k := 0; k < len(rest); {
		if rest[k] == '.' {
			k++
			continue
		}
		// Every byte here is a hex digit or '.', so an invalid low
		// nibble can only be a '.' inside a byte.
		if rest[k+1] == '.' {
			return lineError(line, "'.' splits a data byte")
		}
		hi, _ := asciinum.HexDigit(rest[k])
		lo, _ := asciinum.HexDigit(rest[k+1])
		f.Data[n] = hi<<4 | lo
		n++
		k += 2
	}
	f.Length = uint8(n)
	return nil
}
