package canlog

import (
	"bytes"
	"time"

	"go.einride.tech/can"

	"satwatt/internal/asciinum"
)

// gvretHeader starts the first line SavvyCAN writes:
// "Time Stamp,ID,Extended,Dir,Bus,LEN,D1,D2,D3,D4,D5,D6,D7,D8".
var gvretHeader = []byte("Time Stamp,")

// IsGVRETHeader reports whether line is the GVRET CSV header line.
func IsGVRETHeader(line []byte) bool { return bytes.HasPrefix(line, gvretHeader) }

// ParseGVRET parses one data line of SavvyCAN/GVRET CSV:
//
//	18846853,00000118,false,Rx,0,8,57,04,22,18,00,00,00,00,
//
// Columns: time stamp in microseconds, ID in hex, Extended true/false, Dir,
// Bus, LEN 0..8, then the data bytes in hex. SavvyCAN pads the data columns
// with 00 up to D8 and ends each line with a comma; both are accepted, and so
// are lines that stop after LEN bytes. ts is the recorded time stamp (the
// recorder's own epoch, usually its start). The header line is an error here:
// check IsGVRETHeader first, or use a Reader, which skips it.
func ParseGVRET(line []byte, f *can.Frame) (ts time.Duration, bus int, err error) {
	ts, bus, lerr := parseGVRET(line, f)
	if lerr != nil {
		lerr.Format = GVRET
		return 0, 0, lerr
	}
	return ts, bus, nil
}

// field returns the CSV field starting at pos and the position after its
// comma; more is false when the line has no further comma.
func field(b []byte, pos int) (fld []byte, next int, more bool) {
	for i := pos; i < len(b); i++ {
		if b[i] == ',' {
			return b[pos:i], i + 1, true
		}
	}
	return b[pos:], len(b), false
}

// equalFold compares ASCII case-insensitively without allocating.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

func parseGVRET(line []byte, f *can.Frame) (time.Duration, int, *LineError) {
	*f = can.Frame{}
	b := trimEOL(line)
	if len(b) == 0 {
		return 0, 0, lineError(line, "empty line")
	}
	if IsGVRETHeader(b) {
		return 0, 0, lineError(line, "header line")
	}
	const columns = "expected Time Stamp,ID,Extended,Dir,Bus,LEN,D1..D8"

	fld, pos, more := field(b, 0)
	us, ok := asciinum.Decimal(fld, maxMicros)
	if !ok {
		return 0, 0, lineError(line, "bad time stamp %s (microseconds)", quoteField(fld))
	}
	if !more {
		return 0, 0, lineError(line, "missing ID column; %s", columns)
	}

	fld, pos, more = field(b, pos)
	if len(fld) > 2 && fld[0] == '0' && (fld[1] == 'x' || fld[1] == 'X') {
		fld = fld[2:]
	}
	id, lerr := parseHexID(line, fld, "ID")
	if lerr != nil {
		return 0, 0, lerr
	}
	if !more {
		return 0, 0, lineError(line, "missing Extended column; %s", columns)
	}

	fld, pos, more = field(b, pos)
	switch {
	case equalFold(fld, "true"), equalFold(fld, "1"):
		f.IsExtended = true
	case equalFold(fld, "false"), equalFold(fld, "0"):
	default:
		return 0, 0, lineError(line, "Extended must be true or false, not %s", quoteField(fld))
	}
	if lerr := checkID(line, id, f.IsExtended); lerr != nil {
		return 0, 0, lerr
	}
	f.ID = id
	if !more {
		return 0, 0, lineError(line, "missing Dir column; %s", columns)
	}

	// Dir (Rx/Tx) says which way the logger saw the frame; a replay
	// treats both alike.
	_, pos, more = field(b, pos)
	if !more {
		return 0, 0, lineError(line, "missing Bus column; %s", columns)
	}

	fld, pos, more = field(b, pos)
	bus, ok := asciinum.Decimal(fld, 255)
	if !ok {
		return 0, 0, lineError(line, "bad Bus %s", quoteField(fld))
	}

	if !more {
		return 0, 0, lineError(line, "missing LEN column; %s", columns)
	}
	fld, pos, more = field(b, pos)
	n, ok := asciinum.Decimal(fld, 99)
	if !ok {
		return 0, 0, lineError(line, "bad LEN %s", quoteField(fld))
	}
	if n > can.MaxDataLength {
		return 0, 0, lineError(line, "data length %d exceeds 8", n)
	}
	f.Length = uint8(n)

	// Data columns: the first LEN must be hex bytes; padding after them is
	// ignored as long as it is hex too, and empty fields (the trailing
	// comma) are fine.
	k := 0
	for more {
		fld, pos, more = field(b, pos)
		if len(fld) == 0 && !more {
			break // trailing comma
		}
		if k >= can.MaxDataLength {
			return 0, 0, lineError(line, "more than 8 data columns")
		}
		if len(fld) == 0 || len(fld) > 2 {
			return 0, 0, lineError(line, "data column D%d %s is not one hex byte", k+1, quoteField(fld))
		}
		var v byte
		for _, c := range fld {
			d, ok := asciinum.HexDigit(c)
			if !ok {
				return 0, 0, lineError(line, "bad hex digit %s in data column D%d", describeByte(c), k+1)
			}
			v = v<<4 | d
		}
		if k < int(n) {
			f.Data[k] = v
		}
		k++
	}
	if k < int(n) {
		return 0, 0, lineError(line, "LEN is %d but only %d data columns", n, k)
	}
	return time.Duration(us) * time.Microsecond, int(bus), nil
}
