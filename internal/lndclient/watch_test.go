package lndclient

import (
	"context"
	"crypto/sha256"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/lightningnetwork/lnd/lnrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"satwatt/internal/clock"
)

// fakeLightning serves LookupInvoice and SubscribeInvoices from a map, and
// hands each subscription to the test to feed or break.
type fakeLightning struct {
	lnrpc.UnimplementedLightningServer

	mu        sync.Mutex
	invoices  map[[32]byte]*lnrpc.Invoice
	lookupErr error
	lookups   int
	subs      chan *fakeSub
}

type fakeSub struct {
	req  *lnrpc.InvoiceSubscription
	send chan *lnrpc.Invoice
	drop chan error
}

func (f *fakeLightning) LookupInvoice(_ context.Context, h *lnrpc.PaymentHash) (*lnrpc.Invoice, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lookups++
	if f.lookupErr != nil {
		return nil, f.lookupErr
	}
	var k [32]byte
	copy(k[:], h.RHash)
	inv, ok := f.invoices[k]
	if !ok {
		return nil, status.Error(codes.NotFound, "unable to locate invoice")
	}
	return inv, nil
}

func (f *fakeLightning) SubscribeInvoices(req *lnrpc.InvoiceSubscription, stream lnrpc.Lightning_SubscribeInvoicesServer) error {
	s := &fakeSub{req: req, send: make(chan *lnrpc.Invoice), drop: make(chan error, 1)}
	select {
	case f.subs <- s:
	case <-stream.Context().Done():
		return nil
	}
	for {
		select {
		case inv := <-s.send:
			if err := stream.Send(inv); err != nil {
				return err
			}
		case err := <-s.drop:
			return err
		case <-stream.Context().Done():
			return nil
		}
	}
}

func (f *fakeLightning) add(n byte, addIndex uint64) [32]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	pre := preimageOf(n)
	h := sha256.Sum256(pre[:])
	f.invoices[h] = &lnrpc.Invoice{RHash: h[:], ValueMsat: 1000, AddIndex: addIndex, State: lnrpc.Invoice_OPEN}
	return h
}

// settle marks an invoice paid and returns it as lnd would announce it.
func (f *fakeLightning) settle(h [32]byte, paidMsat int64, settleIndex uint64) *lnrpc.Invoice {
	f.mu.Lock()
	defer f.mu.Unlock()
	old := f.invoices[h]
	var pre [32]byte
	for n := 0; n < 256; n++ {
		if p := preimageOf(byte(n)); sha256.Sum256(p[:]) == h {
			pre = p
		}
	}
	inv := &lnrpc.Invoice{RHash: h[:], RPreimage: pre[:], ValueMsat: old.ValueMsat, AmtPaidMsat: paidMsat,
		AddIndex: old.AddIndex, SettleIndex: settleIndex, SettleDate: 1_700_000_000 + int64(settleIndex),
		State: lnrpc.Invoice_SETTLED}
	f.invoices[h] = inv
	return inv
}

func (f *fakeLightning) setLookupErr(err error) {
	f.mu.Lock()
	f.lookupErr = err
	f.mu.Unlock()
}

func (f *fakeLightning) lookupCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lookups
}

func preimageOf(n byte) [32]byte { return [32]byte{n, 0xaa} }

// hashSet is the caller's set of open invoices.
type hashSet struct {
	mu sync.Mutex
	m  map[[32]byte]bool
}

func (s *hashSet) add(h [32]byte) {
	s.mu.Lock()
	s.m[h] = true
	s.mu.Unlock()
}

func (s *hashSet) remove(h [32]byte) {
	s.mu.Lock()
	delete(s.m, h)
	s.mu.Unlock()
}

func (s *hashSet) list() [][32]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out [][32]byte
	for h := range s.m {
		out = append(out, h)
	}
	return out
}

func newFakeClient(t *testing.T, clk clock.Clock) (*Client, *fakeLightning) {
	t.Helper()
	f := &fakeLightning{invoices: map[[32]byte]*lnrpc.Invoice{}, subs: make(chan *fakeSub)}
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	lnrpc.RegisterLightningServer(srv, f)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///fake-lnd",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &Client{addr: "fake-lnd", timeout: 5 * time.Second, log: quiet, clock: clk, conn: conn,
		ln: lnrpc.NewLightningClient(conn)}, f
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func nextSub(t *testing.T, f *fakeLightning) *fakeSub {
	t.Helper()
	select {
	case s := <-f.subs:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("the watcher did not subscribe")
		return nil
	}
}

func expectSettlement(t *testing.T, settlements <-chan Settlement, hash [32]byte, paid int64) {
	t.Helper()
	select {
	case s, ok := <-settlements:
		if !ok {
			t.Fatal("settlements closed")
		}
		if s.PaymentHash != hash || s.AmountPaidMsat != paid {
			t.Fatalf("settlement %x paid %d, want %x paid %d", s.PaymentHash[:4], s.AmountPaidMsat, hash[:4], paid)
		}
		if sha256.Sum256(s.Preimage[:]) != s.PaymentHash {
			t.Errorf("preimage does not hash to the payment hash")
		}
		if s.SettledAt.IsZero() {
			t.Error("no settle time")
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no settlement for %x", hash[:4])
	}
}

// TestWatcherCatchUpDedupAndBackoff drives the watcher against a fake lnd on
// a manual clock: replay from below the oldest open invoice, filtering and
// de-duplication, catch-up after a dropped stream, and the backoff schedule.
func TestWatcherCatchUpDedupAndBackoff(t *testing.T) {
	m := clock.NewManual(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	c, f := newFakeClient(t, m)
	a, b, other, d := f.add(1, 5), f.add(2, 6), f.add(3, 7), f.add(4, 8)
	open := &hashSet{m: map[[32]byte]bool{a: true, b: true, d: true}}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := c.WatchSettlements(ctx, open.list)

	s1 := nextSub(t, f)
	if s1.req.AddIndex != 4 {
		t.Errorf("first subscription replays from add index %d, want 4 (just below the oldest open invoice)", s1.req.AddIndex)
	}
	waitFor(t, "connected", w.Connected)
	s1.send <- f.settle(a, 1500, 1) // overpaid: 1500 of 1000
	expectSettlement(t, w.Settlements(), a, 1500)

	// A replayed settlement and one of an invoice the caller does not
	// watch must not be reported; d's, sent after them, must come next.
	s1.send <- f.settle(a, 1500, 1)
	s1.send <- f.settle(other, 1000, 2)
	s1.send <- f.settle(d, 1000, 3)
	expectSettlement(t, w.Settlements(), d, 1000)

	// b is paid while the stream is down; the watcher must find it by
	// lookup once the backoff has passed on its clock, and not before.
	f.settle(b, 1000, 4)
	s1.drop <- status.Error(codes.Unavailable, "lnd went away")
	waitFor(t, "disconnected and waiting on the clock", func() bool { return !w.Connected() && m.Waiters() == 1 })
	before := f.lookupCount()
	m.Advance(99 * time.Millisecond)
	time.Sleep(20 * time.Millisecond)
	if f.lookupCount() != before {
		t.Fatal("reconnected before 100 ms had passed on the clock")
	}
	m.Advance(time.Millisecond)
	expectSettlement(t, w.Settlements(), b, 1000)
	s2 := nextSub(t, f)
	if s2.req.AddIndex != 0 {
		t.Errorf("with nothing open the subscription replays from %d, want 0", s2.req.AddIndex)
	}
	// lnd replays b on the new stream: not reported again.
	e := f.add(5, 9)
	open.add(e)
	s2.send <- f.settle(b, 1000, 4)
	s2.send <- f.settle(e, 2000, 5)
	expectSettlement(t, w.Settlements(), e, 2000)
	if got := w.Connects(); got != 2 {
		t.Errorf("Connects = %d, want 2", got)
	}

	// Failing reconnects back off 100, 200, 400 ms on the clock; a healthy
	// session before them resets the schedule.
	f.setLookupErr(status.Error(codes.Unavailable, "still starting"))
	s2.drop <- status.Error(codes.Unavailable, "lnd went away again")
	for _, delay := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond} {
		waitFor(t, "waiting on the clock", func() bool { return m.Waiters() == 1 })
		before := f.lookupCount()
		m.Advance(delay - time.Millisecond)
		time.Sleep(20 * time.Millisecond)
		if f.lookupCount() != before {
			t.Fatalf("retried before %v", delay)
		}
		m.Advance(time.Millisecond)
		waitFor(t, "a retry after "+delay.String(), func() bool { return f.lookupCount() > before })
	}
	f.setLookupErr(nil)
	waitFor(t, "waiting on the clock", func() bool { return m.Waiters() == 1 })
	m.Advance(800 * time.Millisecond)
	nextSub(t, f)
	waitFor(t, "connected again", w.Connected)

	// The caller is done with everything; ending ctx closes the channel.
	for _, h := range []([32]byte){a, b, d, e} {
		open.remove(h)
	}
	cancel()
	select {
	case _, ok := <-w.Settlements():
		if ok {
			t.Fatal("a settlement after the end")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("settlements not closed after ctx ended")
	}
	<-w.Done()
}
