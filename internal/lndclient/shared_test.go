package lndclient

import (
	"context"
	"testing"
	"time"

	"satwatt/internal/clock"
)

// One subscription serves every caller: each gets its own invoices'
// settlements, and one that does not read holds up nobody else.
func TestSharedWatch(t *testing.T) {
	c, f := newFakeClient(t, clock.Real{})
	a, b, c2, d, stranger := f.add(1, 5), f.add(2, 3), f.add(3, 8), f.add(4, 9), f.add(5, 10)
	one := &hashSet{m: map[[32]byte]bool{a: true, c2: true}}
	two := &hashSet{m: map[[32]byte]bool{b: true, d: true}}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := c.ShareSettlements(ctx)
	ctxOne, endOne := context.WithCancel(ctx)
	defer endOne()
	u1 := s.Watch(ctxOne, one.list)
	u2 := s.Watch(ctx, two.list)
	sub := nextSub(t, f)
	waitFor(t, "connected", u1.Connected)
	sub.send <- f.settle(a, 1000, 1)
	expectSettlement(t, u1.Settlements(), a, 1000)
	sub.send <- f.settle(b, 2000, 2)
	expectSettlement(t, u2.Settlements(), b, 2000)

	// u1 stops reading; u2's settlement still arrives, and u1's is kept
	// for it. A stranger's settlement goes to nobody.
	sub.send <- f.settle(c2, 3000, 3)
	sub.send <- f.settle(stranger, 1000, 4)
	sub.send <- f.settle(d, 4000, 5)
	expectSettlement(t, u2.Settlements(), d, 4000)
	expectSettlement(t, u1.Settlements(), c2, 3000)
	select {
	case extra := <-u2.Settlements():
		t.Fatalf("u2 got %x, not its own", extra.PaymentHash[:4])
	case <-time.After(50 * time.Millisecond):
	}
	select {
	case s := <-f.subs:
		t.Fatalf("a second subscription (replay from %d): callers must share one", s.req.AddIndex)
	default:
	}

	// A caller that leaves closes only its own channel.
	endOne()
	if _, ok := <-u1.Settlements(); ok {
		t.Fatal("u1 got a settlement after it ended")
	}
	if !u2.Connected() {
		t.Error("u2 lost its connection when u1 left")
	}
	// The shared watch ending closes the rest.
	cancel()
	select {
	case _, ok := <-u2.Settlements():
		if ok {
			t.Fatal("a settlement after the end")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("u2 not closed after the shared watch ended")
	}
}
