package wallstore

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestInvoiceLifecycle(t *testing.T) {
	ctx := ctxT(t)
	s, _ := openStore(t)
	mustOpenSession(t, s, "s1", t0)

	pre1, h1 := payment("first")
	_, h2 := payment("second")
	_, h3 := payment("third")
	pre4, h4 := payment("fourth")
	for i, h := range []string{h1, h2, h3, h4} {
		inv := Invoice{PaymentHash: h, SessionID: "s1", AmountMsat: 7500, Bolt11: "lnbcrt" + h[:10], CreatedAt: t0.Add(time.Duration(i) * time.Second), ExpiresAt: t0.Add(10 * time.Minute)}
		if err := s.AddInvoice(ctx, inv); err != nil {
			t.Fatalf("AddInvoice %d: %v", i, err)
		}
		// Handing out the same invoice twice (a retried request) is fine.
		if err := s.AddInvoice(ctx, inv); err != nil {
			t.Fatalf("AddInvoice %d again: %v", i, err)
		}
	}
	openHashes := func() []string {
		t.Helper()
		inv, err := s.OpenInvoices(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		var hs []string
		for _, i := range inv {
			hs = append(hs, i.PaymentHash)
		}
		return hs
	}
	if got := openHashes(); strings.Join(got, ",") != strings.Join([]string{h1, h2, h3, h4}, ",") {
		t.Fatalf("OpenInvoices = %v, want all four in creation order", got)
	}

	// Settle: credited once, however often lnd reports it. An upper-case
	// hash is the same invoice.
	st, err := s.SettleInvoice(ctx, strings.ToUpper(h1), 7600, pre1, t0.Add(time.Minute))
	if err != nil || st != (Settlement{SessionID: "s1", AmtPaidMsat: 7600, New: true}) {
		t.Fatalf("first settle = %+v, %v", st, err)
	}
	for range 3 {
		st, err = s.SettleInvoice(ctx, h1, 7600, pre1, t0.Add(2*time.Minute))
		if err != nil || st != (Settlement{SessionID: "s1", AmtPaidMsat: 7600, New: false}) {
			t.Fatalf("repeated settle = %+v, %v; want New=false", st, err)
		}
	}
	if paid, err := s.PaidMsat(ctx, "s1"); err != nil || paid != 7600 {
		t.Fatalf("PaidMsat = %d, %v; want 7600 (what was paid, once)", paid, err)
	}

	// Close never overwrites a settlement.
	for _, state := range []string{InvoiceCanceled, InvoiceExpired} {
		if err := s.CloseInvoice(ctx, h1, state, t0.Add(3*time.Minute)); !errors.Is(err, ErrSettled) {
			t.Errorf("CloseInvoice(settled, %s) = %v, want ErrSettled", state, err)
		}
	}
	// Closing is idempotent, and the first close stands.
	if err := s.CloseInvoice(ctx, h2, InvoiceCanceled, t0.Add(3*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.CloseInvoice(ctx, h2, InvoiceExpired, t0.Add(4*time.Minute)); err != nil {
		t.Fatalf("closing a closed invoice: %v", err)
	}
	if err := s.CloseInvoice(ctx, h3, InvoiceExpired, t0.Add(11*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got := openHashes(); len(got) != 1 || got[0] != h4 {
		t.Fatalf("OpenInvoices = %v, want only the fourth", got)
	}
	// lnd settled the fourth just as the wall gave up on it: the money
	// counts all the same.
	if err := s.CloseInvoice(ctx, h4, InvoiceExpired, t0.Add(10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if st, err := s.SettleInvoice(ctx, h4, 7500, pre4, t0.Add(10*time.Minute)); err != nil || !st.New {
		t.Fatalf("settling an invoice marked expired = %+v, %v; want it recorded", st, err)
	}
	if paid, err := s.PaidMsat(ctx, "s1"); err != nil || paid != 15100 {
		t.Fatalf("PaidMsat = %d, %v; want 15100", paid, err)
	}
	if got := openHashes(); len(got) != 0 {
		t.Fatalf("OpenInvoices = %v, want none", got)
	}

	states := map[string]string{}
	rows, err := s.r.QueryContext(ctx, "SELECT payment_hash, state FROM invoices")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var h, st string
		if err := rows.Scan(&h, &st); err != nil {
			t.Fatal(err)
		}
		states[h] = st
	}
	rows.Close()
	want := map[string]string{h1: InvoiceSettled, h2: InvoiceCanceled, h3: InvoiceExpired, h4: InvoiceSettled}
	for h, st := range want {
		if states[h] != st {
			t.Errorf("invoice %s is %q, want %q", h[:8], states[h], st)
		}
	}
}

func TestLateSettlementAfterEnd(t *testing.T) {
	ctx := ctxT(t)
	s, _ := openStore(t)
	mustOpenSession(t, s, "s1", t0)
	mustPay(t, s, "s1", "on time", 7500, 7500, t0)
	pre, hash := payment("late")
	if err := s.AddInvoice(ctx, Invoice{PaymentHash: hash, SessionID: "s1", AmountMsat: 2500, Bolt11: "lnbcrt-late", CreatedAt: t0.Add(time.Minute), ExpiresAt: t0.Add(11 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if err := s.EndSession(ctx, "s1", t0.Add(2*time.Minute), ReasonUnplugged, 31_000); err != nil {
		t.Fatal(err)
	}
	// The car's payment lands after the unplug.
	st, err := s.SettleInvoice(ctx, hash, 2500, pre, t0.Add(3*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if st != (Settlement{SessionID: "s1", AmtPaidMsat: 2500, New: true, AfterEnd: true}) {
		t.Fatalf("late settlement = %+v, want New and AfterEnd", st)
	}
	if st, err := s.SettleInvoice(ctx, hash, 2500, pre, t0.Add(4*time.Minute)); err != nil || st.New || !st.AfterEnd {
		t.Fatalf("late settlement again = %+v, %v", st, err)
	}
	if paid, err := s.PaidMsat(ctx, "s1"); err != nil || paid != 10000 {
		t.Errorf("PaidMsat = %d, %v; want 10000, the late payment counted once", paid, err)
	}
	r, err := s.Receipt(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Payments) != 2 || r.Payments[0].AfterEnd || !r.Payments[1].AfterEnd ||
		r.Payments[1].PaymentHash != hash || r.Payments[1].PreimageHex != pre || r.Payments[1].AmountAskedMsat != 2500 ||
		!r.Payments[1].SettledAt.Equal(t0.Add(3*time.Minute)) || r.Payments[1].Bolt11 != "lnbcrt-late" {
		t.Fatalf("receipt payments = %+v", r.Payments)
	}
	if r.PaidMsat != 10000 || r.AskedMsat != 10000 || r.AfterEndMsat != 2500 || r.Session.EndReason != ReasonUnplugged || r.Session.DeliveredMWh != 31_000 {
		t.Fatalf("receipt totals = %+v", r)
	}
	sums, tot, err := s.History(ctx, HistoryQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(sums) != 1 || sums[0].PaidMsat != 10000 || sums[0].AfterEndMsat != 2500 || sums[0].Payments != 2 || tot.PaidMsat != 10000 {
		t.Fatalf("history = %+v, %+v", sums, tot)
	}
	// No new invoices for an ended session.
	_, h2 := payment("after the end")
	err = s.AddInvoice(ctx, Invoice{PaymentHash: h2, SessionID: "s1", AmountMsat: 2500, Bolt11: "x", CreatedAt: t0.Add(5 * time.Minute), ExpiresAt: t0.Add(15 * time.Minute)})
	if !errors.Is(err, ErrSessionEnded) {
		t.Fatalf("AddInvoice after the end = %v, want ErrSessionEnded", err)
	}
}

func TestSettleInvoiceRefuses(t *testing.T) {
	ctx := ctxT(t)
	s, _ := openStore(t)
	mustOpenSession(t, s, "s1", t0)
	settledHash := mustPay(t, s, "s1", "settled", 7500, 7500, t0)
	settledPre, _ := payment("settled")
	pre, hash := payment("open")
	if err := s.AddInvoice(ctx, Invoice{PaymentHash: hash, SessionID: "s1", AmountMsat: 2500, Bolt11: "x", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	unknownPre, unknown := payment("never issued")
	otherPre, _ := payment("other")
	cases := []struct {
		name     string
		hash     string
		paid     int64
		preimage string
		at       time.Time
		want     error
	}{
		{"unknown hash", unknown, 2500, unknownPre, t0, ErrNotFound},
		{"preimage of another payment", hash, 2500, otherPre, t0, ErrInvalid},
		{"preimage not hex", hash, 2500, strings.Repeat("zz", 32), t0, ErrInvalid},
		{"preimage too short", hash, 2500, pre[:62], t0, ErrInvalid},
		{"hash too short", hash[:10], 2500, pre, t0, ErrInvalid},
		{"nothing paid", hash, 0, pre, t0, ErrInvalid},
		{"no time", hash, 2500, pre, time.Time{}, ErrInvalid},
		{"settled again for another amount", settledHash, 9999, settledPre, t0, ErrConflict},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, err := s.SettleInvoice(ctx, tc.hash, tc.paid, tc.preimage, tc.at)
			if !errors.Is(err, tc.want) {
				t.Fatalf("SettleInvoice = %+v, %v; want %v", st, err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "wallstore: settle invoice ") {
				t.Errorf("error %q does not say what failed", err)
			}
			for _, secret := range []string{pre, settledPre, otherPre, unknownPre} {
				if strings.Contains(strings.ToLower(err.Error()), secret) {
					t.Errorf("error %q contains a preimage", err)
				}
			}
			if st.New {
				t.Errorf("a refused settlement says New")
			}
		})
	}
	if paid, err := s.PaidMsat(ctx, "s1"); err != nil || paid != 7500 {
		t.Fatalf("PaidMsat after refusals = %d, %v; want 7500", paid, err)
	}
	if inv, err := s.OpenInvoices(ctx, 1); err != nil || len(inv) != 1 || inv[0].PaymentHash != hash {
		t.Fatalf("OpenInvoices after refusals = %+v, %v", inv, err)
	}
}

func TestAddInvoiceRefuses(t *testing.T) {
	ctx := ctxT(t)
	s, _ := openStore(t)
	mustOpenSession(t, s, "s1", t0)
	_, taken := payment("taken")
	if err := s.AddInvoice(ctx, Invoice{PaymentHash: taken, SessionID: "s1", AmountMsat: 2500, Bolt11: "x", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	_, h := payment("new")
	ok := Invoice{PaymentHash: h, SessionID: "s1", AmountMsat: 2500, Bolt11: "lnbcrt1", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	cases := []struct {
		name   string
		change func(*Invoice)
		want   error
	}{
		{"unknown session", func(i *Invoice) { i.SessionID = "nope" }, ErrNotFound},
		{"no session", func(i *Invoice) { i.SessionID = "" }, ErrInvalid},
		{"hash taken with other values", func(i *Invoice) { i.PaymentHash = taken; i.AmountMsat = 9999 }, ErrExists},
		{"bad hash", func(i *Invoice) { i.PaymentHash = "3fa2" }, ErrInvalid},
		{"zero amount", func(i *Invoice) { i.AmountMsat = 0 }, ErrInvalid},
		{"negative amount", func(i *Invoice) { i.AmountMsat = -1 }, ErrInvalid},
		{"no bolt11", func(i *Invoice) { i.Bolt11 = "" }, ErrInvalid},
		{"expires at creation", func(i *Invoice) { i.ExpiresAt = i.CreatedAt }, ErrInvalid},
		{"no creation time", func(i *Invoice) { i.CreatedAt = time.Time{} }, ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			inv := ok
			tc.change(&inv)
			err := s.AddInvoice(ctx, inv)
			if !errors.Is(err, tc.want) {
				t.Fatalf("AddInvoice = %v, want %v", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "wallstore: add invoice ") {
				t.Errorf("error %q does not say what failed", err)
			}
		})
	}
	if inv, err := s.OpenInvoices(ctx, 1); err != nil || len(inv) != 1 || inv[0].AmountMsat != 2500 {
		t.Fatalf("OpenInvoices = %+v, %v; want only the first", inv, err)
	}
}

func TestCloseInvoiceRefuses(t *testing.T) {
	ctx := ctxT(t)
	s, _ := openStore(t)
	mustOpenSession(t, s, "s1", t0)
	_, h := payment("x")
	if err := s.AddInvoice(ctx, Invoice{PaymentHash: h, SessionID: "s1", AmountMsat: 2500, Bolt11: "x", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	_, unknown := payment("unknown")
	cases := []struct {
		name, hash, state string
		at                time.Time
		want              error
	}{
		{"unknown", unknown, InvoiceCanceled, t0, ErrNotFound},
		{"settled is not a close", h, InvoiceSettled, t0, ErrInvalid},
		{"open is not a close", h, InvoiceOpen, t0, ErrInvalid},
		{"no time", h, InvoiceExpired, time.Time{}, ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.CloseInvoice(ctx, tc.hash, tc.state, tc.at); !errors.Is(err, tc.want) {
				t.Fatalf("CloseInvoice = %v, want %v", err, tc.want)
			}
		})
	}
	if inv, err := s.OpenInvoices(ctx, 1); err != nil || len(inv) != 1 {
		t.Fatalf("OpenInvoices = %+v, %v; want the invoice still open", inv, err)
	}
}

func TestSessionLifecycle(t *testing.T) {
	ctx := ctxT(t)
	s, _ := openStore(t)
	mustOpenSession(t, s, "s1", t0)
	got, err := s.Session(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != StateAwaitingPayment || !got.StartedAt.Equal(t0) || got.Ended() || got.EndReason != "" ||
		!got.Offer.Equal(testOffer("s1")) || got.Metadata != `[["text/plain","s1"]]` || got.EVSEStartMWh != 1_000_000 || got.DeliveredMWh != 0 {
		t.Fatalf("new session = %+v", got)
	}
	steps := []struct {
		at        time.Duration
		state     string
		delivered int64
		power     int64
	}{
		{time.Second, StateEnergising, 0, 0},
		{2 * time.Second, StateEnergising, 2_055, 7_400},
		{3 * time.Second, StateSuspended, 4_110, 0},
		{4 * time.Second, StateEnergising, 6_165, 7_400},
	}
	for _, st := range steps {
		if err := s.RecordProgress(ctx, "s1", t0.Add(st.at), st.state, st.delivered, st.power); err != nil {
			t.Fatal(err)
		}
	}
	got, err = s.Session(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != StateEnergising || got.DeliveredMWh != 6_165 || !got.UpdatedAt.Equal(t0.Add(4*time.Second)) {
		t.Fatalf("session after progress = %+v", got)
	}
	var samples, sumPower int64
	if err := s.r.QueryRowContext(ctx, "SELECT count(*), sum(power_w) FROM meter_samples WHERE session_id = 's1'").Scan(&samples, &sumPower); err != nil {
		t.Fatal(err)
	}
	if samples != 4 || sumPower != 14_800 {
		t.Fatalf("meter samples: %d summing %d W, want 4 summing 14800", samples, sumPower)
	}

	if err := s.EndSession(ctx, "s1", t0.Add(time.Minute), ReasonBuyerStopped, 6_200); err != nil {
		t.Fatal(err)
	}
	// Idempotent: the first end stands.
	if err := s.EndSession(ctx, "s1", t0.Add(2*time.Minute), ReasonWallShutdown, 9_999); err != nil {
		t.Fatalf("second EndSession: %v", err)
	}
	got, err = s.Session(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != StateEnded || !got.EndedAt.Equal(t0.Add(time.Minute)) || got.EndReason != ReasonBuyerStopped || got.DeliveredMWh != 6_200 {
		t.Fatalf("ended session = %+v", got)
	}
	if err := s.RecordProgress(ctx, "s1", t0.Add(3*time.Minute), StateEnergising, 7_000, 1); !errors.Is(err, ErrSessionEnded) {
		t.Fatalf("RecordProgress after the end = %v, want ErrSessionEnded", err)
	}
}

func TestSessionRefuses(t *testing.T) {
	ctx := ctxT(t)
	s, _ := openStore(t)
	mustOpenSession(t, s, "taken", t0)
	open := func(change func(*SessionOpen)) func() error {
		return func() error {
			o := SessionOpen{ID: "new", StartedAt: t0, Offer: testOffer("new"), Metadata: "m"}
			change(&o)
			return s.OpenSession(ctx, o)
		}
	}
	cases := []struct {
		name string
		do   func() error
		want error
	}{
		{"open: id taken", open(func(o *SessionOpen) { o.ID = "taken"; o.Offer.SessionID = "taken" }), ErrExists},
		{"open: empty id", open(func(o *SessionOpen) { o.ID = ""; o.Offer.SessionID = "" }), ErrInvalid},
		{"open: offer for another session", open(func(o *SessionOpen) { o.Offer.SessionID = "other" }), ErrInvalid},
		{"open: invalid offer", open(func(o *SessionOpen) { o.Offer.PriceMsatPerWh = 0 }), ErrInvalid},
		{"open: no start", open(func(o *SessionOpen) { o.StartedAt = time.Time{} }), ErrInvalid},
		{"open: negative meter", open(func(o *SessionOpen) { o.EVSEStartMWh = -1 }), ErrInvalid},
		{"get: unknown", func() error { _, err := s.Session(ctx, "nope"); return err }, ErrNotFound},
		{"paid: unknown", func() error { _, err := s.PaidMsat(ctx, "nope"); return err }, ErrNotFound},
		{"receipt: unknown", func() error { _, err := s.Receipt(ctx, "nope"); return err }, ErrNotFound},
		{"progress: unknown", func() error { return s.RecordProgress(ctx, "nope", t0, StateEnergising, 1, 1) }, ErrNotFound},
		{"progress: empty state", func() error { return s.RecordProgress(ctx, "taken", t0, "", 1, 1) }, ErrInvalid},
		{"progress: ended is for EndSession", func() error { return s.RecordProgress(ctx, "taken", t0, StateEnded, 1, 1) }, ErrInvalid},
		{"progress: negative energy", func() error { return s.RecordProgress(ctx, "taken", t0, StateEnergising, -1, 1) }, ErrInvalid},
		{"end: unknown", func() error { return s.EndSession(ctx, "nope", t0, ReasonUnplugged, 0) }, ErrNotFound},
		{"end: empty reason", func() error { return s.EndSession(ctx, "taken", t0, "", 0) }, ErrInvalid},
		{"end: no time", func() error { return s.EndSession(ctx, "taken", time.Time{}, ReasonUnplugged, 0) }, ErrInvalid},
		{"event: unknown session", func() error { return s.AddEvent(ctx, "nope", t0, "fault", "") }, ErrNotFound},
		{"event: empty kind", func() error { return s.AddEvent(ctx, "", t0, "", "") }, ErrInvalid},
		{"setting: missing", func() error { _, err := s.GetSetting(ctx, "nope"); return err }, ErrNotFound},
		{"setting: empty key", func() error { return s.SetSetting(ctx, "", "x") }, ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do()
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "wallstore: ") {
				t.Errorf("error %q does not say where it came from", err)
			}
		})
	}
	if open, err := s.OpenSessions(ctx, 1); err != nil || len(open) != 1 || open[0].State != StateAwaitingPayment {
		t.Fatalf("OpenSessions = %+v, %v; want only the untouched first session", open, err)
	}
}

func TestEventsAndSettings(t *testing.T) {
	ctx := ctxT(t)
	s, _ := openStore(t)
	mustOpenSession(t, s, "s1", t0)
	if err := s.AddEvent(ctx, "", t0, "start", "wallctl started"); err != nil {
		t.Fatal(err)
	}
	if err := s.AddEvent(ctx, "s1", t0.Add(time.Second), "suspended", "delivered passed paid + grace"); err != nil {
		t.Fatal(err)
	}
	var wall, session int
	if err := s.r.QueryRowContext(ctx, "SELECT count(*) FILTER (WHERE session_id IS NULL), count(*) FILTER (WHERE session_id = 's1') FROM events").Scan(&wall, &session); err != nil {
		t.Fatal(err)
	}
	if wall != 1 || session != 1 {
		t.Fatalf("events: %d wall, %d session; want 1 and 1", wall, session)
	}
	for _, v := range []string{"250", "300"} {
		if err := s.SetSetting(ctx, "price_msat_per_wh", v); err != nil {
			t.Fatal(err)
		}
		if got, err := s.GetSetting(ctx, "price_msat_per_wh"); err != nil || got != v {
			t.Fatalf("GetSetting = %q, %v; want %q", got, err, v)
		}
	}
}
