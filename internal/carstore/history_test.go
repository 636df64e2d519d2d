package carstore

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"
)

// seeded is one session of a history test, as the test wrote it.
type seeded struct {
	id                  string
	start               time.Time
	delivered, measured int64
	paid                []int64 // succeeded payments, each with a fee of paid/1000
	failed, pending     int     // failed payments; invoices left without an outcome
	refusals            int
	running             bool // never ended
}

func (x seeded) paidMsat() (paid, fee int64) {
	for _, p := range x.paid {
		paid += p
		fee += p / 1000
	}
	return paid, fee
}

// seedHistory writes sessions across local day and month boundaries.
func seedHistory(t *testing.T, s *Store) []seeded {
	t.Helper()
	ctx := ctxT(t)
	loc := time.Local
	data := []seeded{
		{id: "jan-late", start: time.Date(2026, 1, 31, 23, 59, 59, 999e6, loc), delivered: 10_001, measured: 9_876, paid: []int64{7_500, 2_501}},
		{id: "feb-first", start: time.Date(2026, 2, 1, 0, 0, 0, 0, loc), delivered: 1, measured: 0, paid: []int64{1}, refusals: 2},
		{id: "feb-noon", start: time.Date(2026, 2, 1, 12, 0, 0, 0, loc), delivered: 30_000, measured: 29_000, paid: []int64{7_500, 2_500, 2_500}, failed: 2, pending: 1},
		{id: "feb-noon-b", start: time.Date(2026, 2, 1, 12, 0, 0, 0, loc), refusals: 1},
		{id: "feb-mid", start: time.Date(2026, 2, 14, 18, 30, 0, 0, loc), delivered: 123_456, measured: 120_000, paid: []int64{31_000, 31_000, 31_000}},
		{id: "mar", start: time.Date(2026, 3, 3, 8, 0, 0, 0, loc), delivered: 999, measured: 990, paid: []int64{250}, running: true, pending: 1},
	}
	for _, x := range data {
		mustOpenSession(t, s, x.id, x.start)
		for i, p := range x.paid {
			mustPay(t, s, x.id, fmt.Sprint(x.id, i), p, p/1000, x.start.Add(time.Duration(i)*time.Minute))
		}
		for i := range x.failed {
			_, h := mustInvoice(t, s, x.id, fmt.Sprint(x.id, " failed ", i), 5_000, x.start)
			if err := s.RecordPayment(ctx, PaymentOutcome{PaymentHash: h, Status: StatusFailed, FailureReason: "no route", At: x.start.Add(time.Second)}); err != nil {
				t.Fatal(err)
			}
		}
		for i := range x.pending {
			mustInvoice(t, s, x.id, fmt.Sprint(x.id, " pending ", i), 99_999, x.start)
		}
		for i := range x.refusals {
			if err := s.RecordRefusal(ctx, Refusal{SessionID: x.id, At: x.start, Bolt11: "x", Reason: "payee mismatch", Detail: fmt.Sprint(i)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.RecordMeter(ctx, MeterSample{SessionID: x.id, At: x.start.Add(time.Minute), DeliveredMWh: x.delivered, MeasuredMWh: x.measured}); err != nil {
			t.Fatal(err)
		}
		if x.running {
			continue
		}
		if err := s.EndSession(ctx, SessionEnd{ID: x.id, At: x.start.Add(time.Hour), Reason: "unplugged", SoCPermille: 800, DeliveredMWh: x.delivered, MeasuredMWh: x.measured}); err != nil {
			t.Fatal(err)
		}
	}
	return data
}

func (x seeded) totals() Totals {
	paid, fee := x.paidMsat()
	return Totals{Sessions: 1, DeliveredMWh: x.delivered, MeasuredMWh: x.measured, PaidMsat: paid, FeeMsat: fee, Payments: int64(len(x.paid))}
}

func (t *Totals) add(u Totals) {
	t.Sessions += u.Sessions
	t.DeliveredMWh += u.DeliveredMWh
	t.MeasuredMWh += u.MeasuredMWh
	t.PaidMsat += u.PaidMsat
	t.FeeMsat += u.FeeMsat
	t.Payments += u.Payments
}

// expect is History's answer computed from what was written.
func expect(data []seeded, since, until time.Time, limit int) ([]string, Totals) {
	var in []seeded
	for _, x := range data {
		if (since.IsZero() || !x.start.Before(since)) && (until.IsZero() || x.start.Before(until)) {
			in = append(in, x)
		}
	}
	sort.Slice(in, func(i, j int) bool {
		if !in[i].start.Equal(in[j].start) {
			return in[i].start.After(in[j].start)
		}
		return in[i].id > in[j].id
	})
	var ids []string
	var t Totals
	for i, x := range in {
		if limit == 0 || i < limit {
			ids = append(ids, x.id)
		}
		t.add(x.totals())
	}
	return ids, t
}

func TestHistoryRangeAndTotals(t *testing.T) {
	ctx := ctxT(t)
	s, _ := openStore(t)
	data := seedHistory(t, s)
	byID := map[string]seeded{}
	for _, x := range data {
		byID[x.id] = x
	}
	feb1 := time.Date(2026, 2, 1, 0, 0, 0, 0, time.Local)
	cases := []struct {
		name         string
		since, until time.Time
		limit        int
	}{
		{"everything", time.Time{}, time.Time{}, 0},
		{"since is inclusive", feb1, time.Time{}, 0},
		{"until is exclusive", time.Time{}, feb1, 0},
		{"one millisecond before feb", feb1.Add(-time.Millisecond), feb1, 0},
		{"february", feb1, feb1.AddDate(0, 1, 0), 0},
		{"limit lists the newest, totals cover the range", time.Time{}, time.Time{}, 2},
		{"limit above the count", feb1, time.Time{}, 100},
		{"empty range", feb1.AddDate(1, 0, 0), time.Time{}, 0},
		{"until before since", feb1, feb1.Add(-time.Hour), 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, tot, err := s.History(ctx, HistoryQuery{Since: tc.since, Until: tc.until, Limit: tc.limit})
			if err != nil {
				t.Fatal(err)
			}
			wantIDs, wantTot := expect(data, tc.since, tc.until, tc.limit)
			var ids []string
			for _, g := range got {
				ids = append(ids, g.ID)
				x := byID[g.ID]
				paid, fee := x.paidMsat()
				wantSoCEnd := int64(800)
				if x.running {
					wantSoCEnd = SoCUnknown
				}
				if !g.StartedAt.Equal(x.start) || g.DeliveredMWh != x.delivered || g.MeasuredMWh != x.measured ||
					g.PaidMsat != paid || g.FeeMsat != fee || g.Payments != int64(len(x.paid)) ||
					g.Failed != int64(x.failed) || g.Pending != int64(x.pending) || g.Refusals != int64(x.refusals) ||
					g.PriceMsatPerWh != 250 || g.WallURL != wallURL || g.WallNodeKey != nodeKey ||
					g.SoCStartPermille != 412 || g.SoCEndPermille != wantSoCEnd ||
					g.EndedAt.IsZero() != x.running || (g.EndReason == "") != x.running {
					t.Errorf("summary %+v does not match what was written (%+v)", g, x)
				}
			}
			if strings.Join(ids, ",") != strings.Join(wantIDs, ",") {
				t.Errorf("sessions %v, want %v", ids, wantIDs)
			}
			if tot != wantTot {
				t.Errorf("totals %+v, want %+v", tot, wantTot)
			}
		})
	}
	if _, _, err := s.History(ctx, HistoryQuery{Limit: -1}); !errors.Is(err, ErrInvalid) {
		t.Errorf("negative limit: %v, want ErrInvalid", err)
	}
}

// TestViewsMatchHistory reads the views with plain SQL, as the sqlite3
// shell would, and checks that they agree with History.
func TestViewsMatchHistory(t *testing.T) {
	ctx := ctxT(t)
	s, path := openStore(t)
	data := seedHistory(t, s)
	_, all, err := s.History(ctx, HistoryQuery{})
	if err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, path, false)
	for _, view := range []string{"session_summary", "daily_totals", "monthly_totals"} {
		count := "count(*)"
		if view != "session_summary" {
			count = "sum(sessions)"
		}
		var got Totals
		err := db.QueryRowContext(ctx, "SELECT "+count+", sum(delivered_mwh), sum(measured_mwh), sum(paid_msat), sum(fee_msat), sum(payments) FROM "+view).
			Scan(&got.Sessions, &got.DeliveredMWh, &got.MeasuredMWh, &got.PaidMsat, &got.FeeMsat, &got.Payments)
		if err != nil {
			t.Fatalf("%s: %v", view, err)
		}
		if got != all {
			t.Errorf("%s sums to %+v, History to %+v", view, got, all)
		}
	}
	// Per local day and month, against buckets computed here.
	for _, p := range []struct{ view, key, layout string }{
		{"daily_totals", "day", "2006-01-02"},
		{"monthly_totals", "month", "2006-01"},
	} {
		want := map[string]Totals{}
		for _, x := range data {
			k := x.start.In(time.Local).Format(p.layout)
			w := want[k]
			w.add(x.totals())
			want[k] = w
		}
		rows, err := db.QueryContext(ctx, "SELECT "+p.key+", sessions, delivered_mwh, measured_mwh, paid_msat, fee_msat, payments FROM "+p.view)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for rows.Next() {
			var k string
			var got Totals
			if err := rows.Scan(&k, &got.Sessions, &got.DeliveredMWh, &got.MeasuredMWh, &got.PaidMsat, &got.FeeMsat, &got.Payments); err != nil {
				t.Fatal(err)
			}
			if got != want[k] {
				t.Errorf("%s %s: %+v, want %+v", p.view, k, got, want[k])
			}
			n++
		}
		rows.Close()
		if n != len(want) {
			t.Errorf("%s has %d rows, want %d", p.view, n, len(want))
		}
	}

	// What a person sees in the shell: local times and exact decimals.
	var started, ended, energy, measured, sats, fees string
	var pending, refusals int
	err = db.QueryRowContext(ctx, "SELECT started, ended, energy_wh, measured_wh, sats, fee_sats, pending, refusals FROM session_summary WHERE id = 'jan-late'").
		Scan(&started, &ended, &energy, &measured, &sats, &fees, &pending, &refusals)
	if err != nil {
		t.Fatal(err)
	}
	if started != "2026-01-31 23:59:59" || ended != "2026-02-01 00:59:59" || energy != "10.001" || measured != "9.876" ||
		sats != "10.001" || fees != "0.009" || pending != 0 || refusals != 0 {
		t.Errorf("session_summary shows started %q ended %q energy %q measured %q sats %q fees %q pending %d refusals %d",
			started, ended, energy, measured, sats, fees, pending, refusals)
	}
}

// TestReceipt: a receipt holds every invoice the car asked for, in order,
// with its outcome, and every refusal.
func TestReceipt(t *testing.T) {
	ctx := ctxT(t)
	s, _ := openStore(t)
	seedHistory(t, s)
	r, err := s.Receipt(ctx, "feb-noon")
	if err != nil {
		t.Fatal(err)
	}
	var statuses []string
	for _, p := range r.Payments {
		statuses = append(statuses, p.Status)
		if p.SessionID != "feb-noon" || p.Bolt11 == "" || p.RequestedAt.IsZero() {
			t.Errorf("payment %+v lacks its invoice", p)
		}
		if (p.Status == StatusSucceeded) != (p.PreimageHex != "") {
			t.Errorf("payment %+v: a preimage exactly when it succeeded", p)
		}
	}
	// Four asked for at the start (one paid, two failed, one pending), then
	// two paid a minute and two minutes in.
	if len(r.Payments) != 6 || r.Paid != 3 || r.PaidMsat != 12_500 || r.FeeMsat != 11 {
		t.Errorf("receipt payments %v, %d paid, %d msat, %d fee; want 6 invoices, 3 paid, 12500 msat, 11 fee", statuses, r.Paid, r.PaidMsat, r.FeeMsat)
	}
	for i := 1; i < len(r.Payments); i++ {
		if r.Payments[i].RequestedAt.Before(r.Payments[i-1].RequestedAt) {
			t.Errorf("payments out of order: %v then %v", r.Payments[i-1].RequestedAt, r.Payments[i].RequestedAt)
		}
	}
	if r.Session.ID != "feb-noon" || r.Session.WallURL != wallURL || !r.Session.Offer.Equal(testOffer("feb-noon")) ||
		r.Session.Metadata != `[["text/plain","feb-noon"]]` {
		t.Errorf("receipt session = %+v", r.Session)
	}
	if r, err := s.Receipt(ctx, "feb-first"); err != nil || len(r.Refusals) != 2 || r.Refusals[0].Reason != "payee mismatch" || r.Refusals[0].PaymentHash != "" {
		t.Errorf("refusals = %+v, %v", r.Refusals, err)
	}
	if _, err := s.Receipt(ctx, "nope"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("Receipt of a missing session = %v, want ErrNotFound naming it", err)
	}
}

// TestMoneySumsExact uses amounts past float64's exact integers (2^53), so
// that any floating point on the way would show.
func TestMoneySumsExact(t *testing.T) {
	ctx := ctxT(t)
	s, path := openStore(t)
	const big = 1<<53 + 1
	mustOpenSession(t, s, "a", t0)
	mustPay(t, s, "a", "a1", big, 0, t0)
	mustPay(t, s, "a", "a2", big, 1, t0.Add(time.Minute))
	const want = 2*big + 1 // paid and fee: float64 cannot hold it
	if int64(float64(want)) == want {
		t.Fatal("the test's amount is exactly representable as float64; pick another")
	}
	if paid, err := s.PaidSince(ctx, t0); err != nil || paid != want {
		t.Errorf("PaidSince = %d, %v; want %d", paid, err, int64(want))
	}
	_, tot, err := s.History(ctx, HistoryQuery{})
	if err != nil || tot.PaidMsat+tot.FeeMsat != want {
		t.Errorf("History totals = %+v, %v", tot, err)
	}
	db := rawDB(t, path, false)
	var sats, typ string
	if err := db.QueryRowContext(ctx, "SELECT sats, typeof(paid_msat) FROM monthly_totals").Scan(&sats, &typ); err != nil {
		t.Fatal(err)
	}
	if sats != "18014398509481.986" || typ != "integer" {
		t.Errorf("monthly_totals shows %s sat (%s), want 18014398509481.986 (integer)", sats, typ)
	}
	// A REAL amount never gets in: the tables are STRICT.
	rw := rawDB(t, path, true)
	_, h := payment("real")
	_, err = rw.ExecContext(ctx, "INSERT INTO invoices (payment_hash, session_id, amount_msat, bolt11, requested) VALUES (?, 'a', 2.5, 'x', 0)", h)
	if err == nil || !strings.Contains(err.Error(), "cannot store REAL") {
		t.Errorf("inserting a REAL amount: %v, want it refused", err)
	}
}
