package socketcand

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"go.einride.tech/can"

	"satwatt/internal/asciinum"
	"satwatt/internal/ctxdeadline"
)

// Conn is a client connection to one bus of a socketcand server, in raw
// mode. Receive and Send may run at the same time; two Receives may not.
type Conn struct {
	nc   net.Conn
	addr string
	bus  string

	rmu sync.Mutex
	er  elementReader
	fld [16][]byte
	rdl ctxdeadline.Deadline

	wmu  sync.Mutex
	wbuf []byte
	wdl  ctxdeadline.Deadline

	closeOnce sync.Once
	closeErr  error
}

// Dial connects to the socketcand server at addr (host:port), opens bus and
// switches to raw mode. ctx bounds the whole handshake.
func Dial(ctx context.Context, addr, bus string) (*Conn, error) {
	if err := validBusName(bus); err != nil {
		return nil, fmt.Errorf("socketcand: dial %s: %w", addr, err)
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("socketcand: dial %s: %w", addr, err)
	}
	c := newConn(nc, addr, bus)
	if err := c.handshake(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("socketcand: open bus %q on %s: %w", bus, addr, err)
	}
	return c, nil
}

func newConn(nc net.Conn, addr, bus string) *Conn {
	c := &Conn{nc: nc, addr: addr, bus: bus, wbuf: make([]byte, 0, 64)}
	c.er.r = bufio.NewReaderSize(nc, 4096)
	c.rdl.Set = nc.SetReadDeadline
	c.wdl.Set = nc.SetWriteDeadline
	return c
}

func (c *Conn) handshake(ctx context.Context) error {
	if err := c.expect(ctx, "hi"); err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	if err := c.command(ctx, "< open "+c.bus+" >"); err != nil {
		return fmt.Errorf("open: %w", err)
	}
	if err := c.command(ctx, "< rawmode >"); err != nil {
		return fmt.Errorf("rawmode: %w", err)
	}
	return nil
}

// command sends cmd and waits for `< ok >`.
func (c *Conn) command(ctx context.Context, cmd string) error {
	disarm := c.wdl.Arm(ctx)
	_, err := c.nc.Write([]byte(cmd))
	disarm()
	if err != nil {
		return ctxErr(ctx, err)
	}
	return c.expect(ctx, "ok")
}

// expect reads one element and checks that it is `< want >`.
func (c *Conn) expect(ctx context.Context, want string) error {
	disarm := c.rdl.Arm(ctx)
	defer disarm()
	el, err := c.er.next()
	if err != nil {
		if errors.Is(err, errTooLong) {
			return protocolError(err.Error(), nil)
		}
		return ctxErr(ctx, err)
	}
	if string(el) == want {
		return nil
	}
	if fs := fields(el, c.fld[:0]); len(fs) > 0 && string(fs[0]) == "error" {
		return &ServerError{Text: string(trimBlank(el[len("error"):]))}
	}
	return protocolError("expected < "+want+" >", el)
}

// Addr is the server's address as given to Dial.
func (c *Conn) Addr() string { return c.addr }

// Bus is the bus name as given to Dial.
func (c *Conn) Bus() string { return c.bus }

// Receive reads the next frame into f and returns the server's timestamp
// for it. A *ProtocolError (garbage from the server) or a *ServerError
// (`< error ... >`) leaves the connection usable; call Receive again. Any
// other error means the connection is gone, or is ctx's error.
func (c *Conn) Receive(ctx context.Context, f *can.Frame) (time.Time, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	disarm := c.rdl.Arm(ctx)
	defer disarm()
	for {
		el, err := c.er.next()
		if err != nil {
			var pe *ProtocolError
			switch {
			case errors.As(err, &pe):
				return time.Time{}, pe
			case errors.Is(err, errTooLong):
				return time.Time{}, protocolError("server sent an "+err.Error(), nil)
			}
			return time.Time{}, fmt.Errorf("socketcand: receive from %s: %w", c.addr, ctxErr(ctx, err))
		}
		fs := fields(el, c.fld[:0])
		if len(fs) == 0 {
			return time.Time{}, protocolError("empty element", el)
		}
		switch string(fs[0]) {
		case "frame":
			return parseFrameElement(el, fs, f)
		case "rtr":
			return parseRTRElement(el, fs, f)
		case "error":
			return time.Time{}, &ServerError{Text: string(trimBlank(el[len("error"):]))}
		case "ok", "hi", "echo", "stat":
			// Replies and reports that carry no frame.
			continue
		case "fdframe":
			return time.Time{}, protocolError("CAN FD frames are not supported", el)
		default:
			return time.Time{}, protocolError("unknown element", el)
		}
	}
}

// parseFrameElement reads `frame ID SEC.USEC DATA`. The data is one run of
// hex digits in what socketcand sends; byte-per-field, as its protocol
// document shows, is accepted too.
func parseFrameElement(el []byte, fs [][]byte, f *can.Frame) (time.Time, error) {
	*f = can.Frame{}
	if len(fs) < 3 {
		return time.Time{}, protocolError("frame element needs an ID and a timestamp", el)
	}
	id, ext, reason := parseID(fs[1])
	if reason != "" {
		return time.Time{}, protocolError(reason, el)
	}
	ts, ok := parseTimestamp(fs[2])
	if !ok {
		return time.Time{}, protocolError("bad timestamp in frame", el)
	}
	n := 0
	for _, tok := range fs[3:] {
		if len(tok)%2 != 0 {
			return time.Time{}, protocolError("odd number of hex digits in frame data", el)
		}
		if n+len(tok)/2 > can.MaxDataLength {
			return time.Time{}, protocolError("frame data longer than 8 bytes", el)
		}
		for k := 0; k < len(tok); k += 2 {
			hi, okHi := asciinum.HexDigit(tok[k])
			lo, okLo := asciinum.HexDigit(tok[k+1])
			if !okHi || !okLo {
				return time.Time{}, protocolError("bad hex digit in frame data", el)
			}
			f.Data[n] = hi<<4 | lo
			n++
		}
	}
	f.ID, f.IsExtended, f.Length = id, ext, uint8(n)
	return ts, nil
}

// parseRTRElement reads `rtr ID SEC.USEC DLC`.
func parseRTRElement(el []byte, fs [][]byte, f *can.Frame) (time.Time, error) {
	*f = can.Frame{}
	if len(fs) != 4 {
		return time.Time{}, protocolError("rtr element needs an ID, a timestamp and a length", el)
	}
	id, ext, reason := parseID(fs[1])
	if reason != "" {
		return time.Time{}, protocolError(reason, el)
	}
	ts, ok := parseTimestamp(fs[2])
	if !ok {
		return time.Time{}, protocolError("bad timestamp in rtr", el)
	}
	n, ok := asciinum.Decimal(fs[3], can.MaxDataLength)
	if !ok {
		return time.Time{}, protocolError("bad length in rtr", el)
	}
	*f = can.Frame{ID: id, IsExtended: ext, IsRemote: true, Length: uint8(n)}
	return ts, nil
}

// Send transmits f on the bus. If a write fails after part of the command
// went out, the stream is no longer in step, so the connection is closed.
func (c *Conn) Send(ctx context.Context, f can.Frame) error {
	if err := f.Validate(); err != nil {
		return fmt.Errorf("socketcand: send: %w", err)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wbuf = appendSendElement(c.wbuf[:0], &f)
	disarm := c.wdl.Arm(ctx)
	n, err := c.nc.Write(c.wbuf)
	disarm()
	if err != nil {
		if n > 0 || ctx.Err() == nil {
			c.Close()
		}
		return fmt.Errorf("socketcand: send to %s: %w", c.addr, ctxErr(ctx, err))
	}
	return nil
}

// Close closes the connection; a blocked Receive or Send returns.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.nc.Close() })
	return c.closeErr
}

// ctxErr prefers ctx's error when a deadline we set because of ctx is what
// ended the I/O.
func ctxErr(ctx context.Context, err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}
