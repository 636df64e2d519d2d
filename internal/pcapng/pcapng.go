// Package pcapng reads packet captures in the pcapng format, as written by
// Wireshark and dumpcap. It is deliberately small: enough to pull packets out
// of real captures for tests (section header, interface description,
// enhanced and simple packet blocks; every other block is skipped).
package pcapng

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"slices"
	"time"
)

// Block types this reader understands.
const (
	blockSHB = 0x0A0D0D0A
	blockIDB = 0x00000001
	blockSPB = 0x00000003
	blockEPB = 0x00000006
)

// byteOrderMagic is written in the writer's byte order, so reading it tells
// the reader which order the rest of the section uses.
const byteOrderMagic = 0x1A2B3C4D

// maxBlockLen bounds a block so a garbage length cannot make the reader
// allocate gigabytes; real blocks are at most a few hundred kilobytes.
const maxBlockLen = 16 << 20

// readChunk is how much of a block the reader makes room for at a time.
const readChunk = 4 << 10

// Option codes used in interface description blocks.
const (
	optEnd     = 0
	optTSResol = 9
)

// LinkType is the link-layer header type of an interface (the LINKTYPE_
// values of tcpdump.org).
type LinkType uint16

// Link types that DecodeUDP understands.
const (
	LinkTypeEthernet LinkType = 1
	LinkTypeRaw      LinkType = 101 // raw IPv4 or IPv6, no link header
)

// Interface is what an interface description block says about the
// interface packets were captured on.
type Interface struct {
	LinkType LinkType
	SnapLen  uint32 // 0 means no limit
	// unitsPerSecond is the timestamp resolution (if_tsresol).
	unitsPerSecond uint64
}

// Packet is one captured packet.
type Packet struct {
	// Offset is where the packet's block starts in the file.
	Offset int64
	// Interface indexes the section's interfaces; LinkType is copied from
	// it for convenience.
	Interface int
	LinkType  LinkType
	// Timestamp is zero for simple packet blocks, which carry none.
	Timestamp time.Time
	// OriginalLength is the length on the wire; Data may be shorter when
	// the capture was cut at the snap length.
	OriginalLength int
	// Data belongs to the caller.
	Data []byte
}

// FormatError says what is wrong with a file and at which byte offset.
// Truncated files wrap io.ErrUnexpectedEOF.
type FormatError struct {
	Offset int64
	Msg    string
	Err    error
}

func (e *FormatError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("pcapng: byte %d: %s: %v", e.Offset, e.Msg, e.Err)
	}
	return fmt.Sprintf("pcapng: byte %d: %s", e.Offset, e.Msg)
}

func (e *FormatError) Unwrap() error { return e.Err }

// Reader returns the packets of a pcapng stream in file order.
type Reader struct {
	r      *bufio.Reader
	off    int64 // offset of the next unread byte
	order  binary.ByteOrder
	ifaces []Interface
	buf    []byte
}

// NewReader checks that r starts with a section header block and returns a
// reader positioned after it.
func NewReader(r io.Reader) (*Reader, error) {
	rd := &Reader{r: bufio.NewReader(r)}
	// readBlock rejects any other first block, since no byte order is
	// known before a section header.
	_, body, start, err := rd.readBlock()
	if err == io.EOF {
		return nil, &FormatError{Offset: 0, Msg: "empty file, want a section header block", Err: io.ErrUnexpectedEOF}
	}
	if err != nil {
		return nil, err
	}
	if err := rd.section(body, start); err != nil {
		return nil, err
	}
	return rd, nil
}

// Interfaces returns the interfaces described so far in the current section.
func (rd *Reader) Interfaces() []Interface { return append([]Interface(nil), rd.ifaces...) }

// Next returns the next packet, or io.EOF after the last one.
func (rd *Reader) Next() (Packet, error) {
	for {
		typ, body, start, err := rd.readBlock()
		if err != nil {
			return Packet{}, err
		}
		switch typ {
		case blockSHB:
			if err := rd.section(body, start); err != nil {
				return Packet{}, err
			}
		case blockIDB:
			if err := rd.iface(body, start); err != nil {
				return Packet{}, err
			}
		case blockEPB:
			return rd.enhanced(body, start)
		case blockSPB:
			return rd.simple(body, start)
		}
		// Anything else (name resolution, statistics, custom, the
		// obsolete packet block...) is not needed: skip it.
	}
}

// ReadAll returns every packet of a pcapng stream.
func ReadAll(r io.Reader) ([]Packet, error) {
	rd, err := NewReader(r)
	if err != nil {
		return nil, err
	}
	var out []Packet
	for {
		p, err := rd.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, p)
	}
}

// readBlock reads one whole block and returns its type and body (the bytes
// between the leading length and the trailing length). It returns io.EOF
// only when the stream ends cleanly between blocks.
func (rd *Reader) readBlock() (typ uint32, body []byte, start int64, err error) {
	start = rd.off
	var hdr [12]byte
	n, err := io.ReadFull(rd.r, hdr[:8])
	rd.off += int64(n)
	if err == io.EOF {
		return 0, nil, start, io.EOF
	}
	if err != nil {
		return 0, nil, start, rd.readErr(start, fmt.Sprintf("block header cut after %d of 8 bytes", n), err)
	}
	// The SHB type reads the same in both byte orders, so it can be
	// recognised before the order is known.
	isSHB := binary.LittleEndian.Uint32(hdr[:4]) == blockSHB
	if isSHB {
		n, err := io.ReadFull(rd.r, hdr[8:12])
		rd.off += int64(n)
		if err != nil {
			return 0, nil, start, rd.readErr(start+8, "section header cut inside the byte-order magic", err)
		}
		switch {
		case binary.LittleEndian.Uint32(hdr[8:12]) == byteOrderMagic:
			rd.order = binary.LittleEndian
		case binary.BigEndian.Uint32(hdr[8:12]) == byteOrderMagic:
			rd.order = binary.BigEndian
		default:
			return 0, nil, start, &FormatError{Offset: start + 8, Msg: fmt.Sprintf("byte-order magic % x, want 1a2b3c4d in either order", hdr[8:12])}
		}
	} else if rd.order == nil {
		return 0, nil, start, &FormatError{Offset: start, Msg: fmt.Sprintf("not a pcapng file: first block has type 0x%08x, want a section header block (0x0a0d0d0a)", binary.LittleEndian.Uint32(hdr[:4]))}
	}
	typ = rd.order.Uint32(hdr[:4])
	total := rd.order.Uint32(hdr[4:8])
	switch {
	case total%4 != 0:
		return 0, nil, start, &FormatError{Offset: start + 4, Msg: fmt.Sprintf("block length %d is not a multiple of 4", total)}
	case total < 12 || (isSHB && total < 28):
		return 0, nil, start, &FormatError{Offset: start + 4, Msg: fmt.Sprintf("block length %d is shorter than the smallest block", total)}
	case total > maxBlockLen:
		return 0, nil, start, &FormatError{Offset: start + 4, Msg: fmt.Sprintf("block length %d is implausibly large", total)}
	}
	// For an SHB the magic is already read and stays the body's first four
	// bytes.
	got := 8
	if isSHB {
		got = 12
	}
	// The buffer grows only as the block's bytes arrive, a chunk at a
	// time: a garbage length in a short file must not cost megabytes up
	// front (maxBlockLen alone still allows 16 MiB).
	whole := append(rd.buf[:0], hdr[:got]...)
	for len(whole) < int(total) {
		chunk := min(int(total)-len(whole), readChunk)
		whole = slices.Grow(whole, chunk)
		n, err := io.ReadFull(rd.r, whole[len(whole):len(whole)+chunk])
		whole = whole[:len(whole)+n]
		rd.off += int64(n)
		if err != nil {
			rd.buf = whole
			return 0, nil, start, rd.readErr(start, fmt.Sprintf("block of %d bytes cut after %d", total, len(whole)), err)
		}
	}
	rd.buf = whole
	if trail := rd.order.Uint32(whole[total-4:]); trail != total {
		return 0, nil, start, &FormatError{Offset: start + int64(total) - 4, Msg: fmt.Sprintf("trailing block length %d differs from leading %d", trail, total)}
	}
	return typ, whole[8 : total-4], start, nil
}

// readErr turns a short read into a FormatError wrapping
// io.ErrUnexpectedEOF, and passes other I/O errors through wrapped.
func (rd *Reader) readErr(off int64, msg string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return &FormatError{Offset: off, Msg: "truncated: " + msg, Err: io.ErrUnexpectedEOF}
	}
	return &FormatError{Offset: off, Msg: "read failed", Err: err}
}

// section starts a new section: interfaces are numbered per section.
func (rd *Reader) section(body []byte, start int64) error {
	// body: magic(4) major(2) minor(2) section length(8) options.
	if major := rd.order.Uint16(body[4:6]); major != 1 {
		return &FormatError{Offset: start + 12, Msg: fmt.Sprintf("section major version %d, want 1", major)}
	}
	rd.ifaces = rd.ifaces[:0]
	return nil
}

func (rd *Reader) iface(body []byte, start int64) error {
	if len(body) < 8 {
		return &FormatError{Offset: start, Msg: fmt.Sprintf("interface description block body of %d bytes, want at least 8", len(body))}
	}
	ifc := Interface{
		LinkType:       LinkType(rd.order.Uint16(body[0:2])),
		SnapLen:        rd.order.Uint32(body[4:8]),
		unitsPerSecond: 1_000_000, // microseconds when if_tsresol is absent
	}
	err := rd.options(body[8:], start+16, func(code uint16, val []byte, off int64) error {
		if code != optTSResol {
			return nil
		}
		if len(val) != 1 {
			return &FormatError{Offset: off, Msg: fmt.Sprintf("if_tsresol option of %d bytes, want 1", len(val))}
		}
		ups, ok := unitsPerSecond(val[0])
		if !ok {
			return &FormatError{Offset: off, Msg: fmt.Sprintf("if_tsresol 0x%02x is beyond 64-bit timestamps", val[0])}
		}
		ifc.unitsPerSecond = ups
		return nil
	})
	if err != nil {
		return err
	}
	rd.ifaces = append(rd.ifaces, ifc)
	return nil
}

// unitsPerSecond decodes if_tsresol: the top bit picks a power of two,
// otherwise a power of ten.
func unitsPerSecond(v byte) (uint64, bool) {
	if v&0x80 != 0 {
		e := v & 0x7f
		if e > 63 {
			return 0, false
		}
		return 1 << e, true
	}
	if v > 19 {
		return 0, false
	}
	u := uint64(1)
	for range v {
		u *= 10
	}
	return u, true
}

// options walks a TLV option list (code, length, value padded to 4 bytes).
// off is the file offset of opts.
func (rd *Reader) options(opts []byte, off int64, fn func(code uint16, val []byte, off int64) error) error {
	for i := 0; i < len(opts); {
		if len(opts)-i < 4 {
			return &FormatError{Offset: off + int64(i), Msg: "option header runs past the end of the block"}
		}
		code := rd.order.Uint16(opts[i:])
		n := int(rd.order.Uint16(opts[i+2:]))
		if code == optEnd {
			return nil
		}
		padded := (n + 3) &^ 3
		if len(opts)-i-4 < padded {
			return &FormatError{Offset: off + int64(i), Msg: fmt.Sprintf("option %d of %d bytes runs past the end of the block", code, n)}
		}
		if err := fn(code, opts[i+4:i+4+n], off+int64(i)); err != nil {
			return err
		}
		i += 4 + padded
	}
	return nil
}

func (rd *Reader) enhanced(body []byte, start int64) (Packet, error) {
	// interface id(4) ts high(4) ts low(4) captured len(4) original len(4)
	// data, padded, then options.
	if len(body) < 20 {
		return Packet{}, &FormatError{Offset: start, Msg: fmt.Sprintf("enhanced packet block body of %d bytes, want at least 20", len(body))}
	}
	id := rd.order.Uint32(body[0:4])
	if int64(id) >= int64(len(rd.ifaces)) {
		return Packet{}, &FormatError{Offset: start + 8, Msg: fmt.Sprintf("packet names interface %d but the section describes %d", id, len(rd.ifaces))}
	}
	ifc := rd.ifaces[id]
	ts := uint64(rd.order.Uint32(body[4:8]))<<32 | uint64(rd.order.Uint32(body[8:12]))
	if ts/ifc.unitsPerSecond > maxUnixSeconds {
		return Packet{}, &FormatError{Offset: start + 12, Msg: fmt.Sprintf("timestamp of %d units of 1/%d s is after the year 9999", ts, ifc.unitsPerSecond)}
	}
	capLen := rd.order.Uint32(body[12:16])
	origLen := rd.order.Uint32(body[16:20])
	if uint64(capLen) > uint64(len(body)-20) {
		return Packet{}, &FormatError{Offset: start + 20, Msg: fmt.Sprintf("captured length %d runs past the end of the %d-byte block", capLen, len(body)+12)}
	}
	return Packet{
		Offset:         start,
		Interface:      int(id),
		LinkType:       ifc.LinkType,
		Timestamp:      timestamp(ts, ifc.unitsPerSecond),
		OriginalLength: int(origLen),
		Data:           append([]byte(nil), body[20:20+capLen]...),
	}, nil
}

func (rd *Reader) simple(body []byte, start int64) (Packet, error) {
	if len(body) < 4 {
		return Packet{}, &FormatError{Offset: start, Msg: fmt.Sprintf("simple packet block body of %d bytes, want at least 4", len(body))}
	}
	// A simple packet block belongs to the section's first interface and
	// stores no captured length: it is the original length, cut at the
	// snap length and at the block's end (which may include padding).
	if len(rd.ifaces) == 0 {
		return Packet{}, &FormatError{Offset: start, Msg: "simple packet block before any interface description block"}
	}
	ifc := rd.ifaces[0]
	origLen := rd.order.Uint32(body[0:4])
	n := uint64(origLen)
	if ifc.SnapLen != 0 && uint64(ifc.SnapLen) < n {
		n = uint64(ifc.SnapLen)
	}
	if room := uint64(len(body) - 4); room < n {
		n = room
	}
	return Packet{
		Offset:         start,
		Interface:      0,
		LinkType:       ifc.LinkType,
		OriginalLength: int(origLen),
		Data:           append([]byte(nil), body[4:4+n]...),
	}, nil
}

// maxUnixSeconds is the last second of the year 9999. No capture is
// later, and time.Time cannot hold 64-bit counts of seconds at all: beyond
// the int64 range they came back as times before 1970.
const maxUnixSeconds = 253402300799

// timestamp converts a count of 1/ups seconds since the epoch. The fraction
// goes through a 128-bit product so fine resolutions cannot overflow.
func timestamp(ts, ups uint64) time.Time {
	sec := ts / ups
	frac := ts % ups
	hi, lo := bits.Mul64(frac, 1e9)
	ns, _ := bits.Div64(hi, lo, ups)
	return time.Unix(int64(sec), int64(ns)).UTC()
}
