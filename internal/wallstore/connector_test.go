package wallstore

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// A wall with several connectors restarts each from its own records: one
// connector's open sessions and invoices are never another's to end or
// reconcile.
func TestOpenSessionsAndInvoicesPerConnector(t *testing.T) {
	s, _ := openStore(t)
	ctx := ctxT(t)
	for i, c := range []int{0, 2, 2, 3} { // 0: a caller from before connectors, meaning 1
		id := []string{"one", "two-a", "two-b", "three"}[i]
		err := s.OpenSession(ctx, SessionOpen{ID: id, Connector: c, StartedAt: t0.Add(time.Duration(i) * time.Minute), Offer: testOffer(id), Metadata: "m"})
		if err != nil {
			t.Fatalf("OpenSession(%s, connector %d): %v", id, c, err)
		}
		_, hash := payment(id)
		if err := s.AddInvoice(ctx, Invoice{PaymentHash: hash, SessionID: id, AmountMsat: 1000, Bolt11: "lnbcrt" + id, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}); err != nil {
			t.Fatalf("AddInvoice(%s): %v", id, err)
		}
	}
	if err := s.EndSession(ctx, "three", t0.Add(time.Hour), ReasonUnplugged, 0); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		connector int
		sessions  []string // open, oldest first
		invoices  []string // open, by session
	}{
		{1, []string{"one"}, []string{"one"}},
		{2, []string{"two-a", "two-b"}, []string{"two-a", "two-b"}},
		// Ended, but its invoice is still open: the connector reconciles it.
		{3, nil, []string{"three"}},
		{4, nil, nil},
	} {
		open, err := s.OpenSessions(ctx, tc.connector)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, x := range open {
			ids = append(ids, x.ID)
			if x.Connector != tc.connector {
				t.Errorf("session %s reads as connector %d, asked for %d", x.ID, x.Connector, tc.connector)
			}
		}
		if !slices.Equal(ids, tc.sessions) {
			t.Errorf("connector %d: open sessions %v, want %v", tc.connector, ids, tc.sessions)
		}
		invs, err := s.OpenInvoices(ctx, tc.connector)
		if err != nil {
			t.Fatal(err)
		}
		var of []string
		for _, inv := range invs {
			of = append(of, inv.SessionID)
		}
		slices.Sort(of)
		if !slices.Equal(of, tc.invoices) {
			t.Errorf("connector %d: open invoices of sessions %v, want %v", tc.connector, of, tc.invoices)
		}
	}
	err := s.OpenSession(ctx, SessionOpen{ID: "neg", Connector: -1, StartedAt: t0, Offer: testOffer("neg"), Metadata: "m"})
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("connector -1: %v, want ErrInvalid", err)
	}
}
