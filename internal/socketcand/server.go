package socketcand

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.einride.tech/can"

	"satwatt/internal/clock"
)

// DefaultQueueLen is how many frames a member of a bus may have waiting
// before the hub starts dropping frames for it.
const DefaultQueueLen = 1024

// dropLogEvery bounds how often drops for one member are logged.
const dropLogEvery = 5 * time.Second

// ServerOptions configures a Server. The zero value works.
type ServerOptions struct {
	// Buses, if not empty, are the only bus names TCP clients may open
	// (as with a real socketcand's interface list). Empty means any valid
	// name opens a bus, created on first use. Attach always works.
	Buses []string
	// QueueLen is each member's queue length; 0 means DefaultQueueLen.
	QueueLen int
	// Clock stamps frames and paces drop logs; nil means the wall clock.
	Clock  clock.Clock
	Logger *slog.Logger
}

// Server hosts virtual CAN buses. Every frame a member sends (a TCP client
// in raw mode or an attached Port) goes to every other member of the same
// bus, never back to the sender, as on a SocketCAN bus without
// receive-own-messages. A slow member never holds the others up: when its
// queue is full its frames are dropped and counted.
type Server struct {
	opts ServerOptions
	clk  clock.Clock
	log  *slog.Logger

	mu    sync.Mutex
	buses map[string]*hub

	drops atomic.Uint64
}

// NewServer returns a server with no buses yet.
func NewServer(opts ServerOptions) *Server {
	if opts.QueueLen <= 0 {
		opts.QueueLen = DefaultQueueLen
	}
	s := &Server{opts: opts, clk: opts.Clock, log: opts.Logger, buses: map[string]*hub{}}
	if s.clk == nil {
		s.clk = clock.Real{}
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	return s
}

// Drops is how many frames the server has dropped for slow members so far.
func (s *Server) Drops() uint64 { return s.drops.Load() }

// MemberStats describes one member of a bus.
type MemberStats struct {
	Bus    string
	Member string // the client's address, or "port:BUS" for a Port
	Queued int    // frames waiting for it now
	Drops  uint64 // frames dropped because it fell behind
}

// Stats lists the current members of every bus.
func (s *Server) Stats() []MemberStats {
	s.mu.Lock()
	hubs := make([]*hub, 0, len(s.buses))
	for _, h := range s.buses {
		hubs = append(hubs, h)
	}
	s.mu.Unlock()
	var out []MemberStats
	for _, h := range hubs {
		h.mu.RLock()
		for m := range h.members {
			out = append(out, MemberStats{Bus: h.name, Member: m.name, Queued: len(m.queue), Drops: m.drops.Load()})
		}
		h.mu.RUnlock()
	}
	return out
}

// item is one frame on its way to a member.
type item struct {
	f can.Frame
	t time.Time
}

// hub is one virtual bus.
type hub struct {
	name    string
	mu      sync.RWMutex
	members map[*member]struct{}
}

// member is one receiver on a bus.
type member struct {
	name  string
	queue chan item
	drops atomic.Uint64

	logMu    sync.Mutex
	lastLog  time.Time
	unlogged uint64
}

// bus returns the named bus, creating it.
func (s *Server) bus(name string) *hub {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.buses[name]
	if h == nil {
		h = &hub{name: name, members: map[*member]struct{}{}}
		s.buses[name] = h
	}
	return h
}

func (s *Server) mayOpen(name string) bool {
	if len(s.opts.Buses) == 0 || slices.Contains(s.opts.Buses, name) {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, attached := s.buses[name] // Attach made it
	return attached
}

func (s *Server) newMember(name string) *member {
	return &member{name: name, queue: make(chan item, s.opts.QueueLen)}
}

func (h *hub) join(m *member) {
	h.mu.Lock()
	h.members[m] = struct{}{}
	h.mu.Unlock()
}

func (s *Server) leave(h *hub, m *member) {
	h.mu.Lock()
	delete(h.members, m)
	h.mu.Unlock()
	if d := m.drops.Load(); d > 0 {
		s.log.Info("socketcand: member left after frames were dropped for it",
			"bus", h.name, "member", m.name, "dropped", d)
	}
}

// publish hands f to every member but from. It never blocks.
func (s *Server) publish(h *hub, from *member, f can.Frame) {
	it := item{f: f, t: s.clk.Now()}
	h.mu.RLock()
	defer h.mu.RUnlock()
	for m := range h.members {
		if m == from {
			continue
		}
		select {
		case m.queue <- it:
		default:
			s.dropped(h, m, it.t)
		}
	}
}

// dropped counts a drop and logs at most once per dropLogEvery per member,
// with the number dropped since the last log line.
func (s *Server) dropped(h *hub, m *member, now time.Time) {
	s.drops.Add(1)
	total := m.drops.Add(1)
	m.logMu.Lock()
	defer m.logMu.Unlock()
	m.unlogged++
	if !m.lastLog.IsZero() && now.Sub(m.lastLog) < dropLogEvery {
		return
	}
	s.log.Warn("socketcand: member too slow, dropping frames",
		"bus", h.name, "member", m.name, "dropped", m.unlogged, "total", total)
	m.lastLog, m.unlogged = now, 0
}

// ListenAndServe listens on addr and serves until ctx ends.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("socketcand: listen on %s: %w", addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve accepts clients on ln until ctx ends, then closes ln and every
// client connection and returns nil once they are all gone. Ports and the
// buses themselves outlive Serve, so serving again resumes the same buses.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("socketcand: listener closed: %w", err)
			}
			// Out of file descriptors and the like: wait a little
			// rather than spin.
			s.log.Warn("socketcand: accept failed", "addr", ln.Addr().String(), "err", err)
			if clock.Sleep(ctx, s.clk, 100*time.Millisecond) != nil {
				return nil
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveConn(ctx, nc)
		}()
	}
}

// reply is a control element for a client, written in order with frames.
type reply struct {
	b     []byte
	close bool // close the connection once b is written
}

type state int

const (
	stateNoBus state = iota
	stateBCM
	stateRaw
)

// session is the server side of one client connection.
type session struct {
	s          *Server
	nc         net.Conn
	name       string
	log        *slog.Logger
	state      state
	bus        *hub
	member     *member
	closing    bool // a final reply is queued
	replies    chan reply
	writerDone chan struct{}
	fld        [16][]byte
}

func (s *Server) serveConn(ctx context.Context, nc net.Conn) {
	name := nc.RemoteAddr().String()
	ss := &session{
		s: s, nc: nc, name: name, log: s.log.With("client", name),
		replies: make(chan reply, 16), writerDone: make(chan struct{}),
	}
	// The member and its queue exist from the start so the writer can
	// select on it; the member joins a bus only in raw mode.
	ss.member = s.newMember(name)
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	readerDone := make(chan struct{})
	go ss.writer(readerDone)
	defer func() {
		if ss.state == stateRaw {
			s.leave(ss.bus, ss.member)
		}
		if ss.closing {
			// Let the writer deliver the last error before the
			// connection goes; it closes the connection itself.
			<-ss.writerDone
		}
		nc.Close()
		close(readerDone)
		<-ss.writerDone
	}()

	ss.send(reply{b: []byte("< hi >")})
	er := elementReader{r: bufio.NewReaderSize(nc, 1024)}
	for {
		el, err := er.next()
		if err != nil {
			var pe *ProtocolError
			switch {
			case errors.As(err, &pe):
				ss.errorReply(pe.Reason)
				continue
			case errors.Is(err, errTooLong):
				ss.log.Warn("socketcand: closing client that sent an overlong command")
				ss.sendLast([]byte("< error command longer than 256 bytes >"))
				return
			}
			return // EOF, reset or shutdown
		}
		if !ss.handle(el) {
			return
		}
	}
}

// send queues a reply unless the writer has already stopped.
func (ss *session) send(r reply) {
	select {
	case ss.replies <- r:
	case <-ss.writerDone:
	}
}

// lastWordTimeout bounds how long a closing connection may take to accept
// its last reply; socket deadlines are wall-clock time by nature.
const lastWordTimeout = 5 * time.Second

// sendLast queues a final reply after which the writer closes the
// connection.
func (ss *session) sendLast(b []byte) {
	ss.closing = true
	_ = ss.nc.SetWriteDeadline(time.Now().Add(lastWordTimeout))
	ss.send(reply{b: b, close: true})
}

// maxErrorText keeps an error reply within MaxElement, which is all a
// client accepts: "< error " and " >" take ten bytes.
const maxErrorText = MaxElement - 10

func (ss *session) errorReply(text string) {
	// The text may quote what the client sent, up to a whole element.
	if len(text) > maxErrorText {
		text = text[:maxErrorText-3] + "..."
	}
	b := make([]byte, 0, len(text)+12)
	b = append(b, "< error "...)
	for i := 0; i < len(text); i++ {
		c := text[i]
		if c == '<' || c == '>' || c < ' ' {
			c = ' ' // keep the element well formed
		}
		b = append(b, c)
	}
	ss.send(reply{b: append(b, " >"...)})
}

var okReply = []byte("< ok >")

// handle runs one command and reports whether to keep the connection.
func (ss *session) handle(el []byte) bool {
	fs := fields(el, ss.fld[:0])
	if len(fs) == 0 {
		ss.errorReply("empty command")
		return true
	}
	cmd := string(fs[0])
	switch ss.state {
	case stateNoBus:
		switch cmd {
		case "open":
			return ss.open(fs)
		case "echo":
			ss.send(reply{b: []byte("< echo >")})
		default:
			ss.errorReply("unknown command " + cmd + " (open a bus first)")
		}
		return true
	}
	switch cmd {
	case "send", "sendrtr":
		ss.sendFrame(fs)
	case "echo":
		ss.send(reply{b: []byte("< echo >")})
	case "rawmode":
		if ss.state != stateRaw {
			ss.bus.join(ss.member)
			ss.state = stateRaw
		}
		ss.send(reply{b: okReply})
	case "bcmmode":
		if ss.state == stateRaw {
			ss.s.leave(ss.bus, ss.member)
			ss.state = stateBCM
		}
		ss.send(reply{b: okReply})
	case "open":
		ss.errorReply("a bus is already open")
	case "add", "update", "delete", "filter", "muxfilter", "subscribe", "unsubscribe":
		ss.errorReply(cmd + " is a BCM command; this server supports raw mode only")
	default:
		ss.errorReply("unknown command " + cmd)
	}
	return true
}

func (ss *session) open(fs [][]byte) bool {
	if len(fs) != 2 {
		ss.errorReply("usage: open BUSNAME")
		return true
	}
	name := string(fs[1])
	if err := validBusName(name); err != nil {
		ss.errorReply(err.Error())
		return true
	}
	if !ss.s.mayOpen(name) {
		// socketcand ends the session when a bus may not be opened.
		ss.log.Info("socketcand: client asked for an unknown bus", "bus", name)
		ss.sendLast([]byte("< error could not open bus >"))
		return false
	}
	ss.bus = ss.s.bus(name)
	ss.state = stateBCM
	ss.send(reply{b: okReply})
	return true
}

// sendFrame puts the frame of a `send` or `sendrtr` command on the bus.
func (ss *session) sendFrame(fs [][]byte) {
	f, reason := parseSendElement(fs)
	if reason != "" {
		ss.errorReply(reason)
		return
	}
	var from *member
	if ss.state == stateRaw {
		from = ss.member
	}
	ss.s.publish(ss.bus, from, f)
}

// writer writes replies and queued frames in order, flushing whenever it
// has nothing more to write, so bursts go out in few packets.
func (ss *session) writer(readerDone <-chan struct{}) {
	defer close(ss.writerDone)
	bw := bufio.NewWriterSize(ss.nc, 4096)
	scratch := make([]byte, 0, 64)
	fail := func(err error) {
		ss.log.Debug("socketcand: write failed", "err", err)
		ss.nc.Close() // the reader sees it and ends the session
	}
	for {
		select {
		case r := <-ss.replies:
			if _, err := bw.Write(r.b); err != nil {
				fail(err)
				return
			}
			if r.close {
				if err := bw.Flush(); err != nil {
					fail(err)
					return
				}
				ss.nc.Close()
				return
			}
		case it := <-ss.member.queue:
			scratch = appendFrameElement(scratch[:0], &it.f, it.t)
			if _, err := bw.Write(scratch); err != nil {
				fail(err)
				return
			}
		case <-readerDone:
			return
		}
		if len(ss.replies) == 0 && len(ss.member.queue) == 0 && bw.Buffered() > 0 {
			if err := bw.Flush(); err != nil {
				fail(err)
				return
			}
		}
	}
}

// Port is an in-process member of a bus: a simulator in the same process
// sends and receives on it without TCP. Frames it sends reach every other
// member; it does not hear its own.
type Port struct {
	s    *Server
	h    *hub
	m    *member
	done chan struct{}
	once sync.Once
}

// ErrPortClosed is returned by a closed Port.
var ErrPortClosed = errors.New("socketcand: port closed")

// Attach joins the named bus, creating it, and makes it open to TCP
// clients even when ServerOptions.Buses does not list it.
func (s *Server) Attach(bus string) (*Port, error) {
	if err := validBusName(bus); err != nil {
		return nil, fmt.Errorf("socketcand: attach: %w", err)
	}
	h := s.bus(bus)
	p := &Port{s: s, h: h, m: s.newMember("port:" + bus), done: make(chan struct{})}
	h.join(p.m)
	return p, nil
}

// Send puts f on the bus. It never blocks: members too slow to take it have
// it dropped.
func (p *Port) Send(ctx context.Context, f can.Frame) error {
	if err := f.Validate(); err != nil {
		return fmt.Errorf("socketcand: port send: %w", err)
	}
	select {
	case <-p.done:
		return ErrPortClosed
	default:
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	p.s.publish(p.h, p.m, f)
	return nil
}

// Receive waits for the next frame from another member and returns the
// time the hub stamped on it.
func (p *Port) Receive(ctx context.Context, f *can.Frame) (time.Time, error) {
	select {
	case it := <-p.m.queue:
		*f = it.f
		return it.t, nil
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	case <-p.done:
		return time.Time{}, ErrPortClosed
	}
}

// Drops is how many frames were dropped because this port fell behind.
func (p *Port) Drops() uint64 { return p.m.drops.Load() }

// Close leaves the bus.
func (p *Port) Close() error {
	p.once.Do(func() {
		p.s.leave(p.h, p.m)
		close(p.done)
	})
	return nil
}
