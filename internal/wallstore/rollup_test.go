package wallstore

import (
	"fmt"
	"testing"
	"time"
)

// The history's totals come from the daily rollup for whole UTC days and
// from the sessions for the rest of a range; either way they must equal
// the sums over the sessions, as the triggers keep the rollup in step with
// energy metered, payments settled and payments that arrive late.
func TestRollupTotalsMatchTheSessions(t *testing.T) {
	s, _ := openStore(t)
	ctx := ctxT(t)
	day0 := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	type sess struct {
		id       string
		start    time.Time
		pays     []int64
		mWh      int64
		lateMsat int64
	}
	var all []sess
	for i, off := range []time.Duration{
		0, time.Millisecond, 5 * time.Hour, 24*time.Hour - time.Millisecond, 24 * time.Hour,
		30 * time.Hour, 47*time.Hour + 59*time.Minute, 72 * time.Hour, 100 * time.Hour,
	} {
		x := sess{id: fmt.Sprintf("r%d", i), start: day0.Add(off), pays: []int64{7_500, int64(1_000 * (i + 1))}, mWh: int64(10_000*i + 7)}
		if i%3 == 0 {
			x.lateMsat = 333
		}
		mustOpenSession(t, s, x.id, x.start)
		for k, p := range x.pays {
			mustPay(t, s, x.id, fmt.Sprint(x.id, k), p, p, x.start.Add(time.Duration(k)*time.Minute))
		}
		if err := s.RecordProgress(ctx, x.id, x.start.Add(10*time.Minute), "energising", x.mWh/2, 7000); err != nil {
			t.Fatal(err)
		}
		// A late payment: invoiced before the end, settled after it.
		latePre, lateHash := payment(x.id + "late")
		if x.lateMsat > 0 {
			if err := s.AddInvoice(ctx, Invoice{PaymentHash: lateHash, SessionID: x.id, AmountMsat: x.lateMsat, Bolt11: "lnbcrt" + x.id,
				CreatedAt: x.start.Add(15 * time.Minute), ExpiresAt: x.start.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.EndSession(ctx, x.id, x.start.Add(20*time.Minute), "unplugged", x.mWh); err != nil {
			t.Fatal(err)
		}
		if x.lateMsat > 0 {
			if st, err := s.SettleInvoice(ctx, lateHash, x.lateMsat, latePre, x.start.Add(30*time.Minute)); err != nil || !st.AfterEnd {
				t.Fatalf("late settlement: %+v %v", st, err)
			}
		}
		all = append(all, x)
	}
	want := func(since, until time.Time) Totals {
		var w Totals
		for _, x := range all {
			if (!since.IsZero() && x.start.Before(since)) || (!until.IsZero() && !x.start.Before(until)) {
				continue
			}
			w.Sessions++
			w.DeliveredMWh += x.mWh
			for _, p := range x.pays {
				w.PaidMsat += p
				w.Payments++
			}
			if x.lateMsat > 0 {
				w.PaidMsat += x.lateMsat
				w.Payments++
			}
		}
		return w
	}
	h := time.Hour
	for _, r := range []struct{ since, until time.Time }{
		{},            // everything
		{since: day0}, // from a midnight
		{since: day0.Add(time.Millisecond)},
		{until: day0.Add(24 * h)}, // to a midnight
		{until: day0.Add(24*h + time.Millisecond)},
		{day0, day0.Add(24 * h)},            // exactly one day
		{day0.Add(3 * h), day0.Add(50 * h)}, // partial days on both sides of a whole one
		{day0.Add(5 * h), day0.Add(5*h + time.Millisecond)},
		{day0.Add(-48 * h), day0.Add(-24 * h)}, // before everything
		{day0.Add(24 * h), day0.Add(96 * h)},
		{day0.Add(100 * h), time.Time{}},
	} {
		_, got, err := s.History(ctx, HistoryQuery{Since: r.since, Until: r.until, Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if w := want(r.since, r.until); got != w {
			t.Errorf("[%s, %s): totals %+v, want %+v", r.since, r.until, got, w)
		}
	}
}
