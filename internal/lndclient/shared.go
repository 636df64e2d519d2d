package lndclient

import (
	"context"
	"sync"
)

// SharedWatch follows settlements for many callers over one Watcher, so
// one SubscribeInvoices stream serves a whole wall however many
// connectors it has. lnd sends every invoice event to every stream: with
// a stream per connector, N connectors made the node do N times the work
// per invoice, and at 75 connectors the wall's lnd spent two thirds of a
// core on it. Make one with ShareSettlements.
type SharedWatch struct {
	w *Watcher

	mu    sync.Mutex
	subs  map[*SharedSub]struct{}
	ended bool
}

// ShareSettlements starts the shared watch; it ends with ctx.
func (c *Client) ShareSettlements(ctx context.Context) *SharedWatch {
	s := &SharedWatch{subs: map[*SharedSub]struct{}{}}
	s.w = c.WatchSettlements(ctx, s.open)
	go s.dispatch()
	return s
}

// callers is a snapshot of the callers, so that their open functions are
// called without holding the lock.
func (s *SharedWatch) callers() []*SharedSub {
	s.mu.Lock()
	defer s.mu.Unlock()
	subs := make([]*SharedSub, 0, len(s.subs))
	for sub := range s.subs {
		subs = append(subs, sub)
	}
	return subs
}

// open is the union of every caller's open invoices.
func (s *SharedWatch) open() [][32]byte {
	subs := s.callers()
	var out [][32]byte
	for _, sub := range subs {
		out = append(out, sub.open()...)
	}
	return out
}

// dispatch hands each settlement to the caller waiting for its invoice.
func (s *SharedWatch) dispatch() {
	for st := range s.w.Settlements() {
		if sub := s.owner(st.PaymentHash); sub != nil {
			sub.push(st)
		}
	}
	s.mu.Lock()
	s.ended = true
	for sub := range s.subs {
		sub.end()
	}
	s.mu.Unlock()
}

func (s *SharedWatch) owner(h [32]byte) *SharedSub {
	subs := s.callers()
	for _, sub := range subs {
		for _, o := range sub.open() {
			if o == h {
				return sub
			}
		}
	}
	return nil // the caller is done with it, as with a Watcher's filter
}

// Watch adds a caller. open is as for WatchSettlements: the hashes this
// caller waits for, cheap and safe for concurrent use. Its Settlements
// close when ctx ends or the shared watch does.
func (s *SharedWatch) Watch(ctx context.Context, open func() [][32]byte) *SharedSub {
	sub := &SharedSub{parent: s, open: open, out: make(chan Settlement), wake: make(chan struct{}, 1)}
	s.mu.Lock()
	if s.ended {
		sub.ended = true
	} else {
		s.subs[sub] = struct{}{}
	}
	s.mu.Unlock()
	go sub.run(ctx)
	return sub
}

// SharedSub is one caller's view of a SharedWatch. A caller that is slow
// to read holds up only its own settlements: each has its own queue.
type SharedSub struct {
	parent *SharedWatch
	open   func() [][32]byte
	out    chan Settlement
	wake   chan struct{}

	mu    sync.Mutex
	queue []Settlement
	ended bool
}

// Settlements delivers this caller's settlements, each once.
func (u *SharedSub) Settlements() <-chan Settlement { return u.out }

// Connected tells whether the shared subscription is up and caught up.
func (u *SharedSub) Connected() bool { return u.parent.w.Connected() }

func (u *SharedSub) push(st Settlement) {
	u.mu.Lock()
	u.queue = append(u.queue, st)
	u.mu.Unlock()
	u.signal()
}

func (u *SharedSub) end() {
	u.mu.Lock()
	u.ended = true
	u.mu.Unlock()
	u.signal()
}

func (u *SharedSub) signal() {
	select {
	case u.wake <- struct{}{}:
	default:
	}
}

func (u *SharedSub) run(ctx context.Context) {
	defer close(u.out)
	defer func() {
		u.parent.mu.Lock()
		delete(u.parent.subs, u)
		u.parent.mu.Unlock()
	}()
	for {
		u.mu.Lock()
		q, ended := u.queue, u.ended
		u.queue = nil
		u.mu.Unlock()
		for _, st := range q {
			select {
			case u.out <- st:
			case <-ctx.Done():
				return
			}
		}
		if len(q) > 0 {
			continue // more may have come meanwhile
		}
		if ended {
			return
		}
		select {
		case <-u.wake:
		case <-ctx.Done():
			return
		}
	}
}
