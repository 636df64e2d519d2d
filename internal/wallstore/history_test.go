package wallstore

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
	id        string
	start     time.Time
	delivered int64
	paid      []int64 // settled payments
	late      int64   // paid after the end
	unpaid    bool    // also holds an open invoice, which must not count
	running   bool    // never ended
}

func (x seeded) paidMsat() int64 {
	var n int64
	for _, p := range x.paid {
		n += p
	}
	return n + x.late
}

func (x seeded) payments() int64 {
	n := int64(len(x.paid))
	if x.late > 0 {
		n++
	}
	return n
}

// seedHistory writes sessions across local day and month boundaries.
func seedHistory(t *testing.T, s *Store) []seeded {
	t.Helper()
	ctx := ctxT(t)
	loc := time.Local
	data := []seeded{
		{id: "jan-late", start: time.Date(2026, 1, 31, 23, 59, 59, 999e6, loc), delivered: 10_001, paid: []int64{7_500, 2_501}},
		{id: "feb-first", start: time.Date(2026, 2, 1, 0, 0, 0, 0, loc), delivered: 1, paid: []int64{1}},
		{id: "feb-noon", start: time.Date(2026, 2, 1, 12, 0, 0, 0, loc), delivered: 30_000, paid: []int64{7_500, 2_500, 2_500}, late: 2_500, unpaid: true},
		{id: "feb-noon-b", start: time.Date(2026, 2, 1, 12, 0, 0, 0, loc), delivered: 0, unpaid: true},
		{id: "feb-mid", start: time.Date(2026, 2, 14, 18, 30, 0, 0, loc), delivered: 123_456, paid: []int64{31_000, 31_000, 31_000}},
		{id: "mar", start: time.Date(2026, 3, 3, 8, 0, 0, 0, loc), delivered: 999, paid: []int64{250}, running: true},
	}
	for _, x := range data {
		mustOpenSession(t, s, x.id, x.start)
		for i, p := range x.paid {
			mustPay(t, s, x.id, fmt.Sprint(x.id, i), p, p, x.start.Add(time.Duration(i)*time.Minute))
		}
		if x.unpaid {
			_, h := payment(x.id + " unpaid")
			if err := s.AddInvoice(ctx, Invoice{PaymentHash: h, SessionID: x.id, AmountMsat: 99_999, Bolt11: "x", CreatedAt: x.start, ExpiresAt: x.start.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
		}
		if x.late > 0 {
			pre, h := payment(x.id + " late")
			if err := s.AddInvoice(ctx, Invoice{PaymentHash: h, SessionID: x.id, AmountMsat: x.late, Bolt11: "x", CreatedAt: x.start, ExpiresAt: x.start.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
			defer func() {
				if st, err := s.SettleInvoice(ctx, h, x.late, pre, x.start.Add(2*time.Hour)); err != nil || !st.AfterEnd {
					t.Fatalf("late settle: %+v, %v", st, err)
				}
			}()
		}
		if x.running {
			if err := s.RecordProgress(ctx, x.id, x.start.Add(time.Minute), StateEnergising, x.delivered, 7000); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := s.EndSession(ctx, x.id, x.start.Add(time.Hour), ReasonUnplugged, x.delivered); err != nil {
			t.Fatal(err)
		}
	}
	return data
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
		t.Sessions++
		t.DeliveredMWh += x.delivered
		t.PaidMsat += x.paidMsat()
		t.Payments += x.payments()
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
				if !g.StartedAt.Equal(x.start) || g.DeliveredMWh != x.delivered || g.PaidMsat != x.paidMsat() ||
					g.Payments != x.payments() || g.AfterEndMsat != x.late || g.PriceMsatPerWh != 250 ||
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
// shell would, and checks that they agree with History and the periods.
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
		err := db.QueryRowContext(ctx, "SELECT "+count+", sum(delivered_mwh), sum(paid_msat), sum(payments) FROM "+view).
			Scan(&got.Sessions, &got.DeliveredMWh, &got.PaidMsat, &got.Payments)
		if err != nil {
			t.Fatalf("%s: %v", view, err)
		}
		if got != all {
			t.Errorf("%s sums to %+v, History to %+v", view, got, all)
		}
	}

	// The same per period, from the views through DailyTotals and
	// MonthlyTotals, against buckets computed here in local time.
	for _, p := range []struct {
		name   string
		layout string
		get    func(since, until time.Time) ([]PeriodTotal, error)
	}{
		{"daily", "2006-01-02", func(a, b time.Time) ([]PeriodTotal, error) { return s.DailyTotals(ctx, a, b) }},
		{"monthly", "2006-01", func(a, b time.Time) ([]PeriodTotal, error) { return s.MonthlyTotals(ctx, a, b) }},
	} {
		want := map[string]Totals{}
		for _, x := range data {
			k := x.start.In(time.Local).Format(p.layout)
			w := want[k]
			w.Sessions++
			w.DeliveredMWh += x.delivered
			w.PaidMsat += x.paidMsat()
			w.Payments += x.payments()
			want[k] = w
		}
		got, err := p.get(time.Time{}, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Errorf("%s: %d periods, want %d: %+v", p.name, len(got), len(want), got)
		}
		var sum Totals
		for i, g := range got {
			if g.Totals != want[g.Period] {
				t.Errorf("%s %s: %+v, want %+v", p.name, g.Period, g.Totals, want[g.Period])
			}
			if g.Start.Format(p.layout) != g.Period || g.Start.Location() != time.Local {
				t.Errorf("%s %s starts at %v", p.name, g.Period, g.Start)
			}
			if i > 0 && got[i-1].Period >= g.Period {
				t.Errorf("%s periods out of order: %s then %s", p.name, got[i-1].Period, g.Period)
			}
			sum.Sessions += g.Sessions
			sum.DeliveredMWh += g.DeliveredMWh
			sum.PaidMsat += g.PaidMsat
			sum.Payments += g.Payments
		}
		if sum != all {
			t.Errorf("%s periods sum to %+v, History to %+v", p.name, sum, all)
		}
	}

	// Ranges pick the periods they overlap; until is exclusive.
	feb1 := time.Date(2026, 2, 1, 0, 0, 0, 0, time.Local)
	rangeCases := []struct {
		name         string
		since, until time.Time
		daily        []string
		monthly      []string
	}{
		{"february", feb1, feb1.AddDate(0, 1, 0), []string{"2026-02-01", "2026-02-14"}, []string{"2026-02"}},
		{"until midnight excludes that day", time.Time{}, feb1, []string{"2026-01-31"}, []string{"2026-01"}},
		{"mid-day bounds include their days", feb1.Add(13 * time.Hour), feb1.AddDate(0, 0, 13).Add(time.Hour), []string{"2026-02-01", "2026-02-14"}, []string{"2026-02"}},
		{"from march on", feb1.AddDate(0, 1, 0), time.Time{}, []string{"2026-03-03"}, []string{"2026-03"}},
	}
	for _, tc := range rangeCases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := s.DailyTotals(ctx, tc.since, tc.until)
			if err != nil {
				t.Fatal(err)
			}
			m, err := s.MonthlyTotals(ctx, tc.since, tc.until)
			if err != nil {
				t.Fatal(err)
			}
			periods := func(ps []PeriodTotal) string {
				var out []string
				for _, p := range ps {
					out = append(out, p.Period)
				}
				return strings.Join(out, ",")
			}
			if got := periods(d); got != strings.Join(tc.daily, ",") {
				t.Errorf("days %s, want %v", got, tc.daily)
			}
			if got := periods(m); got != strings.Join(tc.monthly, ",") {
				t.Errorf("months %s, want %v", got, tc.monthly)
			}
		})
	}

	// What a person sees in the shell: local times and exact decimals.
	var started, ended, energy, sats string
	err = db.QueryRowContext(ctx, "SELECT started, ended, energy_wh, sats FROM session_summary WHERE id = 'jan-late'").Scan(&started, &ended, &energy, &sats)
	if err != nil {
		t.Fatal(err)
	}
	if started != "2026-01-31 23:59:59" || ended != "2026-02-01 00:59:59" || energy != "10.001" || sats != "10.001" {
		t.Errorf("session_summary shows started %q ended %q energy %q sats %q", started, ended, energy, sats)
	}
}

// TestMoneySumsExact uses amounts past float64's exact integers (2^53), so
// that any floating point on the way (REAL columns, total(), a float
// conversion) would show.
func TestMoneySumsExact(t *testing.T) {
	ctx := ctxT(t)
	s, path := openStore(t)
	const big = 1<<53 + 1
	mustOpenSession(t, s, "a", t0)
	mustPay(t, s, "a", "a1", big, big, t0)
	mustPay(t, s, "a", "a2", big, big, t0.Add(time.Minute))
	mustOpenSession(t, s, "b", t0.Add(time.Hour))
	mustPay(t, s, "b", "b1", 1, 1, t0.Add(time.Hour))
	const want = 2*big + 1 // 18014398509481987: float64 cannot hold it
	if float64(want) == float64(int64(want)-1) || int64(float64(want)) == want {
		t.Fatal("the test's amount is exactly representable as float64; pick another")
	}

	if paid, err := s.PaidMsat(ctx, "a"); err != nil || paid != 2*big {
		t.Errorf("PaidMsat = %d, %v; want %d", paid, err, int64(2*big))
	}
	_, tot, err := s.History(ctx, HistoryQuery{})
	if err != nil || tot.PaidMsat != want {
		t.Errorf("History total = %d, %v; want %d", tot.PaidMsat, err, int64(want))
	}
	r, err := s.Receipt(ctx, "a")
	if err != nil || r.PaidMsat != 2*big || r.AskedMsat != 2*big {
		t.Errorf("Receipt = %+v, %v", r, err)
	}
	db := rawDB(t, path, false)
	var (
		paid      int64
		typ, sats string
	)
	if err := db.QueryRowContext(ctx, "SELECT sum(paid_msat), typeof(sum(paid_msat)) FROM daily_totals").Scan(&paid, &typ); err != nil {
		t.Fatal(err)
	}
	if paid != want || typ != "integer" {
		t.Errorf("daily_totals sums to %d (%s), want %d (integer)", paid, typ, int64(want))
	}
	if err := db.QueryRowContext(ctx, "SELECT sats FROM monthly_totals").Scan(&sats); err != nil {
		t.Fatal(err)
	}
	if sats != "18014398509481.987" {
		t.Errorf("monthly_totals shows %s sat, want 18014398509481.987", sats)
	}
	// A REAL amount never gets in: the tables are STRICT.
	rw := rawDB(t, path, true)
	_, h := payment("real")
	_, err = rw.ExecContext(ctx, "INSERT INTO invoices (payment_hash, session_id, amount_asked_msat, created, expires, bolt11) VALUES (?, 'a', 2.5, 0, 1, 'x')", h)
	if err == nil || !strings.Contains(err.Error(), "cannot store REAL") {
		t.Errorf("inserting a REAL amount: %v, want it refused", err)
	}
}
