package canlog

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"go.einride.tech/can"
)

// Format is a log file format.
type Format int

const (
	Candump Format = iota + 1 // can-utils `candump -l`
	GVRET                     // SavvyCAN/GVRET CSV
)

func (f Format) String() string {
	switch f {
	case Candump:
		return "candump"
	case GVRET:
		return "gvret"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// MaxLine is the longest line a Reader parses. Real lines are under 60
// bytes; anything longer is garbage and is reported as a bad line rather
// than growing a buffer without bound.
const MaxLine = 1024

// Reader reads frames from a log file line by line.
type Reader struct {
	format  Format
	sc      *bufio.Scanner
	buf     []byte
	line    int
	tooLong bool // the current token is the head of an overlong line
	discard bool // skipping the rest of an overlong line
}

// NewReader reads format from r.
func NewReader(r io.Reader, format Format) *Reader {
	// A large buffer means few read calls; the split function never needs
	// more than MaxLine+1 bytes of it for one token.
	rd := &Reader{format: format, buf: make([]byte, 64*1024)}
	rd.Reset(r)
	return rd
}

// Reset starts reading r from line 1, keeping the buffer, so a looping
// replay does not allocate a new one per pass.
func (r *Reader) Reset(src io.Reader) {
	r.sc = bufio.NewScanner(src)
	r.sc.Buffer(r.buf, len(r.buf))
	r.sc.Split(r.split)
	r.line, r.tooLong, r.discard = 0, false, false
}

// split yields one line at a time, like bufio.ScanLines, except that a line
// longer than MaxLine comes back as its first MaxLine+1 bytes and the rest
// of it is skipped, so no line can overflow the scanner's buffer.
func (r *Reader) split(data []byte, atEOF bool) (int, []byte, error) {
	if r.discard {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			if atEOF {
				r.discard = false
			}
			return len(data), nil, nil
		}
		// Go on with the next line in the same call: bufio.Scanner stops
		// at the first call that returns no token once the reader has
		// reported EOF, which a reader may do along with its last bytes,
		// and the lines after the overlong one would be lost.
		r.discard = false
		n, tok, err := r.split(data[i+1:], atEOF)
		return i + 1 + n, tok, err
	}
	limit := min(len(data), MaxLine+1)
	if i := bytes.IndexByte(data[:limit], '\n'); i >= 0 {
		r.tooLong = false
		return i + 1, data[:i], nil
	}
	if len(data) > MaxLine {
		r.tooLong = true
		r.discard = true
		return MaxLine + 1, data[:MaxLine+1], nil
	}
	if atEOF && len(data) > 0 {
		r.tooLong = false
		return len(data), data, nil
	}
	return 0, nil, nil
}

// Line is the number of the line Next read last (1-based).
func (r *Reader) Line() int { return r.line }

// Next parses the next frame into f and returns its recorded time: since the
// Unix epoch for candump, since the recorder's start for GVRET. Blank lines
// and GVRET header lines are skipped. A bad line gives a *LineError with its
// line number; the Reader stays usable, so call Next again to go on. The end
// of the input gives io.EOF.
func (r *Reader) Next(f *can.Frame) (time.Duration, error) {
	for r.sc.Scan() {
		r.line++
		b := r.sc.Bytes()
		if r.tooLong {
			return 0, &LineError{Format: r.format, Line: r.line, Reason: fmt.Sprintf("line longer than %d bytes", MaxLine), Text: clip(b)}
		}
		if len(trimEOL(b)) == 0 {
			continue
		}
		var (
			ts   time.Duration
			lerr *LineError
		)
		switch r.format {
		case Candump:
			ts, _, lerr = parseCandump(b, f)
		case GVRET:
			if IsGVRETHeader(b) {
				continue
			}
			ts, _, lerr = parseGVRET(b, f)
		default:
			return 0, fmt.Errorf("canlog: unknown format %v", r.format)
		}
		if lerr != nil {
			lerr.Format, lerr.Line = r.format, r.line
			return 0, lerr
		}
		return ts, nil
	}
	if err := r.sc.Err(); err != nil {
		return 0, fmt.Errorf("canlog: read %v log after line %d: %w", r.format, r.line, err)
	}
	return 0, io.EOF
}

// IsLineError reports whether err is a bad line (as opposed to a failed
// read), so a caller can skip it and go on.
func IsLineError(err error) bool {
	var le *LineError
	return errors.As(err, &le)
}
