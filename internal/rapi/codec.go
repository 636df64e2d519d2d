package rapi

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MaxLineLen bounds one RAPI line, '$' to checksum, without its CR. The
// firmware assembles replies in 34-byte (AVR) or 48-byte (SAMD) buffers and
// accepts commands of at most 32 or 40 bytes, so anything longer than this
// is line noise or two lines run together.
const MaxLineLen = 64

// The kinds of bad line. A *LineError wraps exactly one of them.
var (
	ErrChecksum   = errors.New("checksum mismatch")
	ErrNoChecksum = errors.New("no checksum")
	ErrMalformed  = errors.New("malformed line")
	ErrTooLong    = errors.New("line too long")
	ErrTruncated  = errors.New("line truncated")
)

// ErrRefused is wrapped by errors for commands the EVSE answered with $NK.
var ErrRefused = errors.New("rapi: EVSE refused the command")

// LineError says which line was bad and why. The line is kept clipped so a
// stream of noise cannot blow up a log record.
type LineError struct {
	Line   string // the raw line, clipped to clipLen bytes
	Len    int    // the raw line's full length
	Kind   error  // ErrChecksum, ErrNoChecksum, ErrMalformed, ErrTooLong or ErrTruncated
	Detail string
}

const clipLen = 40

func newLineError(line []byte, kind error, format string, args ...any) *LineError {
	e := &LineError{Len: len(line), Kind: kind, Detail: fmt.Sprintf(format, args...)}
	if len(line) > clipLen {
		line = line[:clipLen]
	}
	e.Line = string(line)
	return e
}

func (e *LineError) Error() string {
	q := strconv.Quote(e.Line)
	if e.Len > len(e.Line) {
		q += fmt.Sprintf("... (%d bytes)", e.Len)
	}
	return fmt.Sprintf("rapi: %v in line %s: %s", e.Kind, q, e.Detail)
}

func (e *LineError) Unwrap() error { return e.Kind }

// Frame is one RAPI line: a command ("SC" with fields "16" "V"), a reply
// ("OK"/"NK" with fields) or an asynchronous notice ("AT", "ST", "AB", ...).
// Seq is the optional sequence id (1..255; 0 means none) that firmware
// with RAPI 3.0.0 or later echoes from a command into its reply.
type Frame struct {
	Name   string
	Fields []string
	Seq    uint8
}

// IsReply reports whether f answers a command.
func (f Frame) IsReply() bool { return f.Name == "OK" || f.Name == "NK" }

// OK reports whether f is a positive reply.
func (f Frame) OK() bool { return f.Name == "OK" }

// IsAsync reports whether f is something the EVSE sent by itself: the
// A-prefixed notices ($AT state, $AB boot, $AN button), the legacy $ST state
// transition and the $WF Wi-Fi mode request.
func (f Frame) IsAsync() bool {
	return len(f.Name) == 2 && (f.Name[0] == 'A' || f.Name == "ST" || f.Name == "WF")
}

// String renders f without checksum, as a human would type it.
func (f Frame) String() string {
	b := append([]byte{'$'}, f.Name...)
	for _, fl := range f.Fields {
		b = append(b, ' ')
		b = append(b, fl...)
	}
	if f.Seq != 0 {
		b = fmt.Appendf(b, " :%02X", f.Seq)
	}
	return string(b)
}

// Checksum is RAPI's XOR checksum: every byte before the '^', the leading
// '$' included.
func Checksum(b []byte) byte {
	var x byte
	for _, c := range b {
		x ^= c
	}
	return x
}

// Append appends f as a complete line, "$NAME f1 f2 :SS^XX\r", to dst.
func (f Frame) Append(dst []byte) ([]byte, error) {
	if !validName(f.Name) {
		return dst, fmt.Errorf("rapi: bad frame name %q: want two letters or digits", f.Name)
	}
	start := len(dst)
	dst = append(dst, '$')
	dst = append(dst, f.Name...)
	for _, fl := range f.Fields {
		if err := checkField(fl); err != nil {
			return dst[:start], fmt.Errorf("rapi: $%s: %w", f.Name, err)
		}
		dst = append(dst, ' ')
		dst = append(dst, fl...)
	}
	if f.Seq != 0 {
		dst = fmt.Appendf(dst, " :%02X", f.Seq)
	}
	dst = fmt.Appendf(dst, "^%02X", Checksum(dst[start:]))
	if len(dst)-start > MaxLineLen {
		return dst[:start], fmt.Errorf("rapi: %s is %d bytes, longer than %d", f, len(dst)-start, MaxLineLen)
	}
	return append(dst, '\r'), nil
}

func validName(n string) bool {
	if len(n) != 2 {
		return false
	}
	for i := 0; i < 2; i++ {
		c := n[i]
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func checkField(s string) error {
	if s == "" {
		return errors.New("empty field")
	}
	if s[0] == ':' {
		return fmt.Errorf("field %q would read as a sequence id", s)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c <= ' ' || c > '~':
			return fmt.Errorf("field %q holds byte 0x%02X", s, c)
		case c == '$' || c == '^' || c == '*':
			return fmt.Errorf("field %q holds RAPI framing character %q", s, c)
		}
	}
	return nil
}

// ParseLine parses one line the EVSE sent (a reply or a notice), with or
// without its trailing CR. The XOR checksum is required: every firmware
// since RAPI 2.0.0 appends one to replies and notices, and without it a
// dropped digit in a meter reading would go unnoticed. Lines without one
// fail with ErrNoChecksum; pre-2.0.0 firmware is not supported.
func ParseLine(line []byte) (Frame, error) { return parse(line, false) }

// ParseCommandLine parses a line sent to the EVSE. Like the firmware it
// also accepts the legacy additive checksum ("*XX") and no checksum at all,
// which the firmware documents as for testing only; simulators use it.
func ParseCommandLine(line []byte) (Frame, error) { return parse(line, true) }

func parse(line []byte, lenient bool) (Frame, error) {
	for len(line) > 0 && (line[len(line)-1] == '\r' || line[len(line)-1] == '\n') {
		line = line[:len(line)-1]
	}
	switch {
	case len(line) == 0:
		return Frame{}, newLineError(line, ErrMalformed, "empty line")
	case len(line) > MaxLineLen:
		return Frame{}, newLineError(line, ErrTooLong, "%d bytes, at most %d allowed", len(line), MaxLineLen)
	case line[0] != '$':
		return Frame{}, newLineError(line, ErrMalformed, "does not start with '$'")
	}
	for i, c := range line {
		switch {
		case c < ' ' || c > '~':
			return Frame{}, newLineError(line, ErrMalformed, "byte 0x%02X at offset %d is not printable ASCII", c, i)
		case c == '$' && i > 0:
			// The firmware starts a new line at every '$'.
			return Frame{}, newLineError(line, ErrMalformed, "framing character '$' at offset %d: two lines run together", i)
		}
	}
	body, err := checkChecksum(line, lenient)
	if err != nil {
		return Frame{}, err
	}
	// The firmware takes the first '^' or '*' for the checksum, this
	// parser the last: one before it would be read differently.
	for i, c := range body {
		if c == '^' || c == '*' {
			return Frame{}, newLineError(line, ErrMalformed, "framing character %q at offset %d before the checksum", c, i+1)
		}
	}
	// body is "NAME" or "NAME f1 f2 ...", without '$' and checksum.
	if len(body) < 2 || !validName(string(body[:2])) {
		return Frame{}, newLineError(line, ErrMalformed, "no two-character name after '$'")
	}
	f := Frame{Name: frameName(body[:2])}
	rest := body[2:]
	if len(rest) == 0 {
		return f, nil
	}
	if rest[0] != ' ' {
		return Frame{}, newLineError(line, ErrMalformed, "name %q is not followed by a space", body[:min(len(body), 3)])
	}
	// One string for all fields; the fields are slices of it.
	all := string(rest[1:])
	f.Fields = make([]string, 0, 1+strings.Count(all, " "))
	for {
		i := strings.IndexByte(all, ' ')
		fl := all
		if i >= 0 {
			fl = all[:i]
		}
		if fl == "" {
			return Frame{}, newLineError(line, ErrMalformed, "field %d is empty (double or trailing space)", len(f.Fields)+1)
		}
		f.Fields = append(f.Fields, fl)
		if i < 0 {
			break
		}
		all = all[i+1:]
	}
	if last := f.Fields[len(f.Fields)-1]; last[0] == ':' {
		seq, ok := hex2(last[1:])
		if !ok || seq == 0 {
			return Frame{}, newLineError(line, ErrMalformed, "sequence id %q is not two hex digits from 01 to FF", last)
		}
		f.Seq = seq
		f.Fields = f.Fields[:len(f.Fields)-1]
	}
	// Only the last field may be a sequence id.
	for i, fl := range f.Fields {
		if fl[0] == ':' {
			return Frame{}, newLineError(line, ErrMalformed, "field %d %q starts with ':' but only the last field may be a sequence id", i+1, fl)
		}
	}
	if len(f.Fields) == 0 {
		f.Fields = nil
	}
	return f, nil
}

// frameName returns the frames the driver sees most without allocating.
func frameName(b []byte) string {
	switch string(b) {
	case "OK":
		return "OK"
	case "NK":
		return "NK"
	case "AT":
		return "AT"
	}
	return string(b)
}

// checkChecksum verifies the line's checksum and returns the part between
// '$' and the checksum marker.
func checkChecksum(line []byte, lenient bool) ([]byte, error) {
	mark := -1
	for i := len(line) - 1; i > 0; i-- {
		if line[i] == '^' || line[i] == '*' {
			mark = i
			break
		}
	}
	if mark < 0 {
		if lenient {
			return line[1:], nil
		}
		return nil, newLineError(line, ErrNoChecksum, "no '^XX' at the end")
	}
	digits := line[mark+1:]
	if len(digits) < 2 {
		return nil, newLineError(line, ErrTruncated, "checksum has %d hex digits, want 2", len(digits))
	}
	got, ok := hex2(string(digits))
	if !ok {
		return nil, newLineError(line, ErrMalformed, "checksum %q is not two hex digits at the end of the line", digits)
	}
	var want byte
	if line[mark] == '*' {
		if !lenient {
			return nil, newLineError(line, ErrMalformed, "additive '*' checksum; EVSE output carries '^' XOR checksums")
		}
		for _, c := range line[:mark] {
			want += c
		}
	} else {
		want = Checksum(line[:mark])
	}
	if got != want {
		return nil, newLineError(line, ErrChecksum, "line says %02X, computed %02X", got, want)
	}
	return line[1:mark], nil
}

func hex2(s string) (byte, bool) {
	if len(s) != 2 {
		return 0, false
	}
	var v byte
	for i := 0; i < 2; i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		default:
			return 0, false
		}
		v = v<<4 | c
	}
	return v, true
}

// Splitter cuts a byte stream into lines. CR ends a line (LF too, which the
// firmware adds after replies in echo mode); empty lines are skipped. Like
// the firmware, a '$' always starts a new line: a line cut short by a '$' is
// reported as ErrTruncated, so one lost CR costs one line, not two.
// A line longer than MaxLineLen is reported once as ErrTooLong and dropped
// up to the next CR or '$'.
type Splitter struct {
	buf      []byte
	dropping bool
}

// Feed consumes p and calls emit for every complete line (without its
// terminator) or bad stretch. The line slice is valid only during the call.
func (s *Splitter) Feed(p []byte, emit func(line []byte, err error)) {
	for _, c := range p {
		switch {
		case c == '\r' || c == '\n':
			if !s.dropping && len(s.buf) > 0 {
				emit(s.buf, nil)
			}
			s.reset()
		case c == '$':
			if !s.dropping && len(s.buf) > 0 {
				emit(s.buf, newLineError(s.buf, ErrTruncated, "no end of line before the next '$'"))
			}
			s.reset()
			s.buf = append(s.buf, c)
		case s.dropping:
		case len(s.buf) >= MaxLineLen:
			s.buf = append(s.buf, c)
			emit(nil, newLineError(s.buf, ErrTooLong, "more than %d bytes without an end of line", MaxLineLen))
			s.reset()
			s.dropping = true
		default:
			s.buf = append(s.buf, c)
		}
	}
}

func (s *Splitter) reset() {
	s.buf = s.buf[:0]
	s.dropping = false
}
