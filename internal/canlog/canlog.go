// Package canlog parses CAN log files one line at a time: the can-utils
// `candump -l` format and SavvyCAN/GVRET CSV. The parsers work on the raw
// line bytes and allocate nothing for a valid line, so replaying a long log
// costs no garbage; only a bad line allocates, to describe what was wrong.
//
// canlog deliberately knows nothing about package canbus: it fills a
// can.Frame and returns the recorded time, and the caller decides what the
// time means.
package canlog

import (
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"go.einride.tech/can"

	"satwatt/internal/asciinum"
)

// maxErrorText bounds how much of a bad line a LineError keeps, so a
// megabyte of binary garbage does not end up in a log record.
const maxErrorText = 80

// LineError describes one line that could not be parsed. Line is 1-based;
// it is 0 when the parser was called on a lone line with no file around it.
type LineError struct {
	Line   int
	Reason string
	Text   string // the line, cut to 80 bytes
}

func (e *LineError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s: %q", e.Line, e.Reason, e.Text)
	}
	return fmt.Sprintf("%s: %q", e.Reason, e.Text)
}

// lineError builds the error for line. It is only reached on the bad path,
// so allocating here keeps the valid path free of allocations.
func lineError(line []byte, format string, args ...any) *LineError {
	reason := format
	if len(args) > 0 {
		reason = fmt.Sprintf(format, args...)
	}
	return &LineError{Reason: reason, Text: clip(line)}
}

// clip cuts b to maxErrorText bytes without splitting a UTF-8 sequence.
func clip(b []byte) string {
	b = trimEOL(b)
	if len(b) <= maxErrorText {
		return string(b)
	}
	n := maxErrorText
	for n > 0 && !utf8.RuneStart(b[n]) {
		n--
	}
	return string(b[:n])
}

// describeByte names a byte for an error message; a control character or a
// stray UTF-8 byte is shown as an escape rather than printed raw.
func describeByte(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return "'" + string(rune(c)) + "'"
	}
	return strconv.QuoteRune(rune(c))
}

// parseHexID reads a CAN ID of up to 8 hex digits. what names the field in
// the error ("ID").
func parseHexID(line, digits []byte, what string) (uint32, *LineError) {
	if len(digits) == 0 {
		return 0, lineError(line, "empty %s", what)
	}
	if len(digits) > 8 {
		return 0, lineError(line, "%s has %d hex digits, at most 8 allowed", what, len(digits))
	}
	var v uint32
	for _, c := range digits {
		d, ok := asciinum.HexDigit(c)
		if !ok {
			return 0, lineError(line, "bad hex digit %s in %s", describeByte(c), what)
		}
		v = v<<4 | uint32(d)
	}
	return v, nil
}

// checkID enforces the 11-bit and 29-bit ID ranges.
func checkID(line []byte, id uint32, extended bool) *LineError {
	if extended {
		if id > can.MaxExtendedID {
			return lineError(line, "extended ID 0x%X exceeds 29 bits", id)
		}
		return nil
	}
	if id > can.MaxID {
		return lineError(line, "standard ID 0x%X exceeds 0x7FF", id)
	}
	return nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' }

// trimEOL drops the line terminator and trailing blanks, so files written on
// Windows (CRLF) parse the same.
func trimEOL(b []byte) []byte {
	for len(b) > 0 {
		switch b[len(b)-1] {
		case '\n', '\r', ' ', '\t':
			b = b[:len(b)-1]
			continue
		}
		break
	}
	return b
}

// maxSeconds keeps a timestamp representable as a time.Duration.
const maxSeconds = uint64(1<<63-1) / uint64(time.Second)

// maxMicros is the same bound in microseconds.
const maxMicros = uint64(1<<63-1) / uint64(time.Microsecond)
