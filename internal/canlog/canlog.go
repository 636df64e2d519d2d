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
// Format is the parser that refused it. The message names both, then the
// reason (which names the field) and the line:
//
//	canlog: candump line 6: bad hex digit 'Z' in ID: "(1600000018.846881) can0 1Z5#00"
type LineError struct {
	Format Format
	Line   int
	Reason string
	Text   string // the line, cut to 80 bytes
}

func (e *LineError) Error() string {
	where := "canlog: "
	if e.Format != 0 {
		where += e.Format.String()
		if e.Line > 0 {
			where += " "
		}
	}
	if e.Line > 0 {
		where += "line " + strconv.Itoa(e.Line)
	}
	if e.Format != 0 || e.Line > 0 {
		where += ": "
	}
	return fmt.Sprintf("%s%s: %q", where, e.Reason, e.Text)
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
	return string(cut(b, maxErrorText))
}

// cut cuts b to at most n bytes, backing off to the start of a UTF-8
// sequence it would split. Bytes that are no UTF-8 at all (binary garbage)
// are cut at n, not backed off to nothing.
func cut(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	for k := n; k > n-utf8.UTFMax && k > 0; k-- {
		if utf8.RuneStart(b[k]) {
			return b[:k]
		}
	}
	return b[:n]
}

// maxFieldText bounds a field quoted in a Reason. The line itself is in
// Text, cut to maxErrorText, so a megabyte field must not come back in
// full (and four times over, escaped) through the reason.
const maxFieldText = 24

// quoteField quotes a field for a Reason, cut to maxFieldText bytes
// without splitting a UTF-8 sequence.
func quoteField(b []byte) string {
	if len(b) <= maxFieldText {
		return strconv.Quote(string(b))
	}
	return strconv.Quote(string(cut(b, maxFieldText))) + "..."
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
