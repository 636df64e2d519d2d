package carstore

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestRecordPaymentTransitions drives one invoice through a sequence of
// outcomes and checks what the ledger keeps after each.
func TestRecordPaymentTransitions(t *testing.T) {
	pre, _ := payment("transitions")
	otherPre, _ := payment("another")
	// Times are in seconds after t0; -1 is the zero time.
	at := func(sec int) time.Time {
		if sec < 0 {
			return time.Time{}
		}
		return t0.Add(time.Duration(sec) * time.Second)
	}
	inFlight := func(sec int) PaymentOutcome {
		return PaymentOutcome{Status: StatusInFlight, At: at(sec)}
	}
	succeeded := func(sec int, paid, fee int64, pre string) PaymentOutcome {
		return PaymentOutcome{Status: StatusSucceeded, PaidMsat: paid, FeeMsat: fee, PreimageHex: pre, At: at(sec)}
	}
	failed := func(sec int, reason string) PaymentOutcome {
		return PaymentOutcome{Status: StatusFailed, FailureReason: reason, At: at(sec)}
	}
	type step struct {
		rec     PaymentOutcome
		wantErr error
	}
	type final struct {
		status         string
		paid, fee      int64
		preimage       bool
		reason         string
		sent, resolved int // seconds after t0; -1: zero time
	}
	cases := []struct {
		name  string
		steps []step
		want  final
	}{
		{"in flight then succeeded", []step{{inFlight(1), nil}, {succeeded(2, 2500, 3, pre), nil}},
			final{StatusSucceeded, 2500, 3, true, "", 1, 2}},
		{"succeeded straight away", []step{{succeeded(1, 2500, 0, pre), nil}},
			final{StatusSucceeded, 2500, 0, true, "", 1, 1}},
		{"the same success again changes nothing", []step{{succeeded(1, 2500, 3, pre), nil}, {succeeded(9, 2500, 3, strings.ToUpper(pre)), nil}},
			final{StatusSucceeded, 2500, 3, true, "", 1, 1}},
		{"a success with another fee conflicts", []step{{succeeded(1, 2500, 3, pre), nil}, {succeeded(2, 2500, 4, pre), ErrConflict}},
			final{StatusSucceeded, 2500, 3, true, "", 1, 1}},
		{"a success with another amount conflicts", []step{{succeeded(1, 2500, 3, pre), nil}, {succeeded(2, 2600, 3, pre), ErrConflict}},
			final{StatusSucceeded, 2500, 3, true, "", 1, 1}},
		{"a failure after a success conflicts", []step{{succeeded(1, 2500, 3, pre), nil}, {failed(2, "no route"), ErrConflict}},
			final{StatusSucceeded, 2500, 3, true, "", 1, 1}},
		{"a stale in flight after a success is ignored", []step{{succeeded(1, 2500, 3, pre), nil}, {inFlight(2), nil}},
			final{StatusSucceeded, 2500, 3, true, "", 1, 1}},
		{"in flight then failed", []step{{inFlight(1), nil}, {failed(2, "no route"), nil}},
			final{StatusFailed, 0, 0, false, "no route", 1, 2}},
		{"the first failure reason stands", []step{{failed(1, "no route"), nil}, {failed(2, "timeout"), nil}},
			final{StatusFailed, 0, 0, false, "no route", 1, 1}},
		{"failed, retried, succeeded", []step{{failed(1, "no route"), nil}, {inFlight(2), nil}, {succeeded(3, 2500, 1, pre), nil}},
			final{StatusSucceeded, 2500, 1, true, "", 1, 3}},
		{"failed, retried, still in flight", []step{{failed(1, "no route"), nil}, {inFlight(2), nil}},
			final{StatusInFlight, 0, 0, false, "", 1, -1}},
		{"in flight twice", []step{{inFlight(1), nil}, {inFlight(2), nil}},
			final{StatusInFlight, 0, 0, false, "", 1, -1}},
		{"a preimage of another hash is refused", []step{{succeeded(1, 2500, 3, otherPre), ErrInvalid}},
			final{StatusRequested, 0, 0, false, "", -1, -1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxT(t)
			s, _ := openStore(t)
			mustOpenSession(t, s, "s1", t0)
			_, hash := mustInvoice(t, s, "s1", "transitions", 2500, t0)
			for i, st := range tc.steps {
				st.rec.PaymentHash = hash
				err := s.RecordPayment(ctx, st.rec)
				if (st.wantErr == nil) != (err == nil) || (st.wantErr != nil && !errors.Is(err, st.wantErr)) {
					t.Fatalf("step %d (%s): %v, want %v", i, st.rec.Status, err, st.wantErr)
				}
				if err != nil && (strings.Contains(err.Error(), pre) || strings.Contains(err.Error(), otherPre)) {
					t.Errorf("error %q repeats a preimage", err)
				}
			}
			r, err := s.Receipt(ctx, "s1")
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Payments) != 1 {
				t.Fatalf("receipt has %d payments, want 1", len(r.Payments))
			}
			p := r.Payments[0]
			if p.Status != tc.want.status || p.PaidMsat != tc.want.paid || p.FeeMsat != tc.want.fee ||
				(p.PreimageHex == pre) != tc.want.preimage || p.FailureReason != tc.want.reason ||
				!p.SentAt.Equal(at(tc.want.sent)) || !p.ResolvedAt.Equal(at(tc.want.resolved)) {
				t.Errorf("payment = %+v, want %+v", p, tc.want)
			}
			var wantPaid int64
			if tc.want.status == StatusSucceeded {
				wantPaid = tc.want.paid + tc.want.fee
			}
			if got, err := s.PaidSince(ctx, t0); err != nil || got != wantPaid {
				t.Errorf("PaidSince = %d, %v; want %d", got, err, wantPaid)
			}
			pending, err := s.InFlight(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if wantPending := tc.want.status == StatusInFlight || tc.want.status == StatusRequested; (len(pending) == 1) != wantPending {
				t.Errorf("InFlight = %+v with the payment %s", pending, tc.want.status)
			}
		})
	}
}

// TestInvalidArguments: each write refuses what would make a wrong ledger,
// says what is wrong, and writes nothing.
func TestInvalidArguments(t *testing.T) {
	ctx := ctxT(t)
	s, _ := openStore(t)
	mustOpenSession(t, s, "s1", t0)
	pre, hash := mustInvoice(t, s, "s1", "valid", 2500, t0)
	badOffer := testOffer("s2")
	badOffer.PriceMsatPerWh = 0
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"session without a wall URL", s.OpenSession(ctx, SessionOpen{Offer: testOffer("s2"), StartedAt: t0}), "empty wall URL"},
		{"session without a start", s.OpenSession(ctx, SessionOpen{Offer: testOffer("s2"), WallURL: wallURL}), "no start time"},
		{"session with a bad offer", s.OpenSession(ctx, SessionOpen{Offer: badOffer, WallURL: wallURL, StartedAt: t0}), "price 0 msat/Wh"},
		{"state of charge above 1000", s.OpenSession(ctx, SessionOpen{Offer: testOffer("s2"), WallURL: wallURL, StartedAt: t0, SoCPermille: 1001}), "1001 permille"},
		{"state of charge below 0", s.EndSession(ctx, SessionEnd{ID: "s1", At: t0, Reason: "x", SoCPermille: -2}), "-2 permille"},
		{"invoice with a short hash", s.AddInvoice(ctx, Invoice{PaymentHash: "abcd", SessionID: "s1", AmountMsat: 1, Bolt11: "x", RequestedAt: t0}), "payment hash is 4 characters"},
		{"invoice with no amount", s.AddInvoice(ctx, Invoice{PaymentHash: hash, SessionID: "s1", Bolt11: "x", RequestedAt: t0}), "amount 0 msat"},
		{"invoice without bolt11", s.AddInvoice(ctx, Invoice{PaymentHash: hash, SessionID: "s1", AmountMsat: 1, RequestedAt: t0}), "empty bolt11"},
		{"payment with an unknown status", s.RecordPayment(ctx, PaymentOutcome{PaymentHash: hash, Status: "paid", At: t0}), `status must be "in_flight"`},
		{"success without a preimage", s.RecordPayment(ctx, PaymentOutcome{PaymentHash: hash, Status: StatusSucceeded, PaidMsat: 1, At: t0}), "preimage is 0 characters"},
		{"success of nothing", s.RecordPayment(ctx, PaymentOutcome{PaymentHash: hash, Status: StatusSucceeded, PreimageHex: pre, At: t0}), "paid 0 msat"},
		{"success with a negative fee", s.RecordPayment(ctx, PaymentOutcome{PaymentHash: hash, Status: StatusSucceeded, PaidMsat: 1, FeeMsat: -1, PreimageHex: pre, At: t0}), "fee -1 msat"},
		{"failure without a reason", s.RecordPayment(ctx, PaymentOutcome{PaymentHash: hash, Status: StatusFailed, At: t0}), "no failure reason"},
		{"failure with a preimage", s.RecordPayment(ctx, PaymentOutcome{PaymentHash: hash, Status: StatusFailed, FailureReason: "x", PreimageHex: pre, At: t0}), "proof of a success"},
		{"payment without a time", s.RecordPayment(ctx, PaymentOutcome{PaymentHash: hash, Status: StatusInFlight}), "no time"},
		{"refusal without a reason", s.RecordRefusal(ctx, Refusal{SessionID: "s1", At: t0}), "empty reason"},
		{"refusal with a bad hash", s.RecordRefusal(ctx, Refusal{SessionID: "s1", At: t0, Reason: "x", PaymentHash: "zz"}), "payment hash is 2 characters"},
		{"negative meter", s.RecordMeter(ctx, MeterSample{SessionID: "s1", At: t0, DeliveredMWh: -1}), "delivered -1 mWh"},
		{"end without a reason", s.EndSession(ctx, SessionEnd{ID: "s1", At: t0}), "empty end reason"},
		{"event without a kind", s.AddEvent(ctx, "s1", t0, "", ""), "empty kind"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if !errors.Is(tc.err, ErrInvalid) || !containsAll(tc.err.Error(), "carstore: ", tc.want) {
				t.Errorf("got %v, want ErrInvalid saying %q", tc.err, tc.want)
			}
			if strings.Contains(tc.err.Error(), pre) {
				t.Errorf("error %q repeats the preimage", tc.err)
			}
		})
	}
	r, err := s.Receipt(ctx, "s1")
	if err != nil || r.Session.Ended() || len(r.Payments) != 1 || r.Payments[0].Status != StatusRequested || len(r.Refusals) != 0 {
		t.Errorf("after refused writes the ledger holds %+v, %v", r, err)
	}
}

// TestSessionRules: what each write does with a missing, an existing or an
// ended session.
func TestSessionRules(t *testing.T) {
	ctx := ctxT(t)
	s, _ := openStore(t)
	mustOpenSession(t, s, "s1", t0)
	pre, hash := mustInvoice(t, s, "s1", "inv", 2500, t0)
	_, late := payment("late")
	cases := []struct {
		name string
		run  func() error
		want error // nil: succeeds
	}{
		{"the same session again", func() error {
			return s.OpenSession(ctx, SessionOpen{Offer: testOffer("s1"), WallURL: wallURL, StartedAt: t0, SoCPermille: 412})
		}, ErrExists},
		{"the same invoice again", func() error {
			return s.AddInvoice(ctx, Invoice{PaymentHash: hash, SessionID: "s1", AmountMsat: 2500, Bolt11: "lnbcrtinv", RequestedAt: t0})
		}, nil},
		{"the same hash for another amount", func() error {
			return s.AddInvoice(ctx, Invoice{PaymentHash: hash, SessionID: "s1", AmountMsat: 2600, Bolt11: "lnbcrtinv", RequestedAt: t0})
		}, ErrExists},
		{"invoice of a missing session", func() error {
			return s.AddInvoice(ctx, Invoice{PaymentHash: late, SessionID: "nope", AmountMsat: 1, Bolt11: "x", RequestedAt: t0})
		}, ErrNotFound},
		{"payment of an invoice never added", func() error {
			return s.RecordPayment(ctx, PaymentOutcome{PaymentHash: late, Status: StatusInFlight, At: t0})
		}, ErrNotFound},
		{"meter of a missing session", func() error {
			return s.RecordMeter(ctx, MeterSample{SessionID: "nope", At: t0})
		}, ErrNotFound},
		{"refusal in a missing session", func() error {
			return s.RecordRefusal(ctx, Refusal{SessionID: "nope", At: t0, Reason: "x"})
		}, ErrNotFound},
		{"event of a missing session", func() error { return s.AddEvent(ctx, "nope", t0, "x", "") }, ErrNotFound},
		{"event of the car", func() error { return s.AddEvent(ctx, "", t0, "started", "v1") }, nil},
		{"end of a missing session", func() error {
			return s.EndSession(ctx, SessionEnd{ID: "nope", At: t0, Reason: "x", SoCPermille: SoCUnknown})
		}, ErrNotFound},
		{"end", func() error {
			return s.EndSession(ctx, SessionEnd{ID: "s1", At: t0.Add(time.Hour), Reason: "unplugged", SoCPermille: 800, DeliveredMWh: 10_000, MeasuredMWh: 9_500})
		}, nil},
		{"a second end changes nothing", func() error {
			return s.EndSession(ctx, SessionEnd{ID: "s1", At: t0.Add(2 * time.Hour), Reason: "other", SoCPermille: 900, DeliveredMWh: 1, MeasuredMWh: 1})
		}, nil},
		{"no meter after the end", func() error {
			return s.RecordMeter(ctx, MeterSample{SessionID: "s1", At: t0.Add(2 * time.Hour), DeliveredMWh: 1})
		}, ErrSessionEnded},
		{"no new invoice after the end", func() error {
			return s.AddInvoice(ctx, Invoice{PaymentHash: late, SessionID: "s1", AmountMsat: 1, Bolt11: "x", RequestedAt: t0})
		}, ErrSessionEnded},
		{"a payment learnt after the end is recorded", func() error {
			return s.RecordPayment(ctx, PaymentOutcome{PaymentHash: hash, Status: StatusSucceeded, PaidMsat: 2500, PreimageHex: pre, At: t0.Add(3 * time.Hour)})
		}, nil},
	}
	for _, tc := range cases {
		err := tc.run()
		if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	r, err := s.Receipt(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	sess := r.Session
	if !sess.EndedAt.Equal(t0.Add(time.Hour)) || sess.EndReason != "unplugged" || sess.SoCEndPermille != 800 ||
		sess.DeliveredMWh != 10_000 || sess.MeasuredMWh != 9_500 || r.PaidMsat != 2500 || r.Paid != 1 {
		t.Errorf("receipt after the end = %+v", r)
	}
}

// TestRefusals: a refused invoice is recorded with its reason, and one the
// car had added is no longer waiting for an outcome.
func TestRefusals(t *testing.T) {
	ctx := ctxT(t)
	s, _ := openStore(t)
	mustOpenSession(t, s, "s1", t0)
	_, added := mustInvoice(t, s, "s1", "added", 2500, t0)
	_, never := payment("never added")
	refusals := []Refusal{
		{SessionID: "s1", At: t0.Add(1 * time.Second), PaymentHash: added, AmountMsat: 2500, Bolt11: "lnbcrtadded", Reason: "payee mismatch", Detail: "signed by 03ab…"},
		{SessionID: "s1", At: t0.Add(2 * time.Second), PaymentHash: strings.ToUpper(never), AmountMsat: 99_000, Bolt11: "lnbcrtnever", Reason: "amount mismatch", Detail: "asked 99000 msat, want 2500"},
		{SessionID: "s1", At: t0.Add(3 * time.Second), Bolt11: "garbage", Reason: "not an invoice", Detail: "checksum failed"},
	}
	for _, r := range refusals {
		if err := s.RecordRefusal(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if pending, err := s.InFlight(ctx); err != nil || len(pending) != 0 {
		t.Errorf("InFlight = %+v, %v; a refused invoice is not in flight", pending, err)
	}
	r, err := s.Receipt(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Payments) != 1 || r.Payments[0].Status != StatusRefused {
		t.Errorf("payments = %+v, want the added invoice refused", r.Payments)
	}
	if len(r.Refusals) != 3 {
		t.Fatalf("refusals = %+v, want 3", r.Refusals)
	}
	refusals[1].PaymentHash = never // stored in lower case
	for i, want := range refusals {
		if got := r.Refusals[i]; got != want {
			t.Errorf("refusal %d = %+v, want %+v", i, got, want)
		}
	}
	// Money lnd reports is a fact, even for an invoice the car refused.
	pre, _ := payment("added")
	if err := s.RecordPayment(ctx, PaymentOutcome{PaymentHash: added, Status: StatusSucceeded, PaidMsat: 2500, PreimageHex: pre, At: t0.Add(time.Minute)}); err != nil {
		t.Errorf("a success after a refusal: %v", err)
	}
	sums, _, err := s.History(ctx, HistoryQuery{})
	if err != nil || len(sums) != 1 || sums[0].Refusals != 3 || sums[0].Payments != 1 || sums[0].Pending != 0 {
		t.Errorf("history = %+v, %v", sums, err)
	}
}

// TestPaidSince: the daily budget counts succeeded payments and their fees
// from the time given, inclusive, and nothing else.
func TestPaidSince(t *testing.T) {
	ctx := ctxT(t)
	s, _ := openStore(t)
	mustOpenSession(t, s, "s1", t0)
	mustPay(t, s, "s1", "a", 1000, 10, t0)                // succeeded at t0+1s
	mustPay(t, s, "s1", "b", 2000, 20, t0.Add(time.Hour)) // at t0+1h+1s
	_, f := mustInvoice(t, s, "s1", "failed", 4000, t0.Add(time.Hour))
	if err := s.RecordPayment(ctx, PaymentOutcome{PaymentHash: f, Status: StatusFailed, FailureReason: "no route", At: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	_, fl := mustInvoice(t, s, "s1", "flying", 8000, t0.Add(time.Hour))
	if err := s.RecordPayment(ctx, PaymentOutcome{PaymentHash: fl, Status: StatusInFlight, At: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		since time.Time
		want  int64
	}{
		{time.Time{}, 3030},
		{t0, 3030},
		{t0.Add(time.Second), 3030},
		{t0.Add(time.Second + time.Millisecond), 2020},
		{t0.Add(time.Hour + time.Second), 2020},
		{t0.Add(2 * time.Hour), 0},
	}
	for _, tc := range cases {
		if got, err := s.PaidSince(ctx, tc.since); err != nil || got != tc.want {
			t.Errorf("PaidSince(%v) = %d, %v; want %d", tc.since, got, err, tc.want)
		}
	}
}
