package wallstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// HistoryQuery selects sessions by their start time, [Since, Until); a zero
// time is no bound. Limit caps the sessions listed (0: all); the totals
// always cover the whole range.
type HistoryQuery struct {
	Since, Until time.Time
	Limit        int
}

// SessionSummary is one line of history.
type SessionSummary struct {
	ID             string
	StartedAt      time.Time
	EndedAt        time.Time // zero while the session runs
	State          string
	EndReason      string
	PriceMsatPerWh int64
	DeliveredMWh   int64
	PaidMsat       int64 // all settled invoices, late ones included
	Payments       int64 // settled invoices
	AfterEndMsat   int64 // the part of PaidMsat that arrived after the end
}

// Totals sum a range of sessions.
type Totals struct {
	Sessions     int64
	DeliveredMWh int64
	PaidMsat     int64
	Payments     int64
}

// PeriodTotal is one local day ("2026-11-25") or month ("2026-11") of the
// daily_totals or monthly_totals view; sessions count in the period they
// started in.
type PeriodTotal struct {
	Period string
	Start  time.Time // local midnight starting the period
	Totals
}

// Payment is a settled invoice as a receipt shows it.
type Payment struct {
	PaymentHash     string
	AmountAskedMsat int64
	AmountPaidMsat  int64
	CreatedAt       time.Time
	ExpiresAt       time.Time
	SettledAt       time.Time
	PreimageHex     string // the proof of payment: sha256(preimage) = hash
	Bolt11          string
	AfterEnd        bool
}

// Receipt is a session with every payment made for it.
type Receipt struct {
	Session  Session
	Payments []Payment // in settlement order
	// Sums over Payments.
	AskedMsat    int64
	PaidMsat     int64
	AfterEndMsat int64
}

// History lists sessions started in the range, newest first, and the
// totals over the whole range, from one consistent snapshot.
func (s *Store) History(ctx context.Context, hq HistoryQuery) ([]SessionSummary, Totals, error) {
	fail := func(err error) ([]SessionSummary, Totals, error) {
		return nil, Totals{}, fmt.Errorf("wallstore: history %s: %w", describeRange(hq.Since, hq.Until), err)
	}
	if hq.Limit < 0 {
		return fail(fmt.Errorf("%w: limit %d is negative", ErrInvalid, hq.Limit))
	}
	limit := int64(hq.Limit)
	if limit == 0 {
		limit = -1 // SQLite: no limit
	}
	lo, hi := rangeMS(hq.Since, hq.Until)
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, s.q["history"],
		sql.Named("since", lo), sql.Named("until", hi), sql.Named("limit", limit))
	if err != nil {
		return fail(err)
	}
	defer rows.Close()
	var out []SessionSummary
	for rows.Next() {
		var (
			x       SessionSummary
			started int64
			ended   sql.NullInt64
			reason  sql.NullString
		)
		if err := rows.Scan(&x.ID, &started, &ended, &x.State, &reason, &x.PriceMsatPerWh,
			&x.DeliveredMWh, &x.PaidMsat, &x.Payments, &x.AfterEndMsat); err != nil {
			return fail(err)
		}
		x.StartedAt = time.UnixMilli(started).UTC()
		x.EndedAt = fromMS(ended)
		x.EndReason = reason.String
		out = append(out, x)
	}
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	t, err := s.totals(ctx, tx, lo, hi)
	if err != nil {
		return fail(err)
	}
	return out, t, nil
}

const dayMS = 86_400_000

// totals sums the sessions started in [lo, hi) unix ms: the whole UTC days
// inside the range from the rollup, the rest from the sessions.
func (s *Store) totals(ctx context.Context, tx *sql.Tx, lo, hi int64) (Totals, error) {
	first := int64(0) // no session starts before 1970
	if lo > 0 {
		first = lo/dayMS + min(lo%dayMS, 1)
	}
	last := hi / dayMS
	if hi < 0 || first >= last {
		return s.scanTotals(ctx, tx, "history_totals", sql.Named("since", lo), sql.Named("until", hi))
	}
	var sum Totals
	for _, part := range []struct {
		query  string
		lo, hi int64
	}{
		{"history_rollup_totals", first, last},
		{"history_totals", lo, first * dayMS},
		{"history_totals", last * dayMS, hi},
	} {
		if part.lo >= part.hi {
			continue
		}
		a, b := "since", "until"
		if part.query == "history_rollup_totals" {
			a, b = "first", "last"
		}
		t, err := s.scanTotals(ctx, tx, part.query, sql.Named(a, part.lo), sql.Named(b, part.hi))
		if err != nil {
			return Totals{}, err
		}
		sum.Sessions += t.Sessions
		sum.DeliveredMWh += t.DeliveredMWh
		sum.PaidMsat += t.PaidMsat
		sum.Payments += t.Payments
	}
	return sum, nil
}

func (s *Store) scanTotals(ctx context.Context, tx *sql.Tx, query string, args ...any) (Totals, error) {
	var t Totals
	err := tx.QueryRowContext(ctx, s.q[query], args...).Scan(&t.Sessions, &t.DeliveredMWh, &t.PaidMsat, &t.Payments)
	return t, err
}

// Receipt returns a session and every payment made for it.
func (s *Store) Receipt(ctx context.Context, id string) (Receipt, error) {
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return Receipt{}, fmt.Errorf("wallstore: receipt of session %q: %w", id, err)
	}
	defer tx.Rollback()
	r, err := s.receipt(ctx, tx, id)
	if err != nil {
		return Receipt{}, fmt.Errorf("wallstore: receipt of session %q: %w", id, err)
	}
	return r, nil
}

func (s *Store) receipt(ctx context.Context, tx *sql.Tx, id string) (Receipt, error) {
	sess, err := scanSession(tx.QueryRowContext(ctx, s.q["session_get"], sql.Named("id", id)))
	if errors.Is(err, sql.ErrNoRows) {
		return Receipt{}, ErrNotFound
	}
	if err != nil {
		return Receipt{}, err
	}
	r := Receipt{Session: sess}
	rows, err := tx.QueryContext(ctx, s.q["receipt_payments"], sql.Named("id", id))
	if err != nil {
		return Receipt{}, err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			p                         Payment
			created, expires, settled int64
		)
		if err := rows.Scan(&p.PaymentHash, &p.AmountAskedMsat, &p.AmountPaidMsat, &created, &expires,
			&settled, &p.PreimageHex, &p.Bolt11, &p.AfterEnd); err != nil {
			return Receipt{}, err
		}
		p.CreatedAt = time.UnixMilli(created).UTC()
		p.ExpiresAt = time.UnixMilli(expires).UTC()
		p.SettledAt = time.UnixMilli(settled).UTC()
		r.Payments = append(r.Payments, p)
		r.AskedMsat += p.AmountAskedMsat
		r.PaidMsat += p.AmountPaidMsat
		if p.AfterEnd {
			r.AfterEndMsat += p.AmountPaidMsat
		}
	}
	if err := rows.Err(); err != nil {
		return Receipt{}, err
	}
	return r, nil
}

// DailyTotals returns the daily_totals view's local days that overlap
// [since, until); a zero time is no bound. "Local" is time.Local, which
// must be the zone SQLite's localtime uses: both read TZ and /etc/localtime.
func (s *Store) DailyTotals(ctx context.Context, since, until time.Time) ([]PeriodTotal, error) {
	return s.periods(ctx, "daily_totals", "2006-01-02", since, until)
}

// MonthlyTotals is DailyTotals by local month, from the monthly_totals view.
func (s *Store) MonthlyTotals(ctx context.Context, since, until time.Time) ([]PeriodTotal, error) {
	return s.periods(ctx, "monthly_totals", "2006-01", since, until)
}

func (s *Store) periods(ctx context.Context, query, layout string, since, until time.Time) ([]PeriodTotal, error) {
	fail := func(err error) ([]PeriodTotal, error) {
		return nil, fmt.Errorf("wallstore: %s %s: %w", query, describeRange(since, until), err)
	}
	// Period keys sort as text, so the bounds are keys too: the first is
	// the period holding since, the last the one holding until's last instant.
	first, last := "", "9999-99-99"
	if !since.IsZero() {
		first = since.In(time.Local).Format(layout)
	}
	if !until.IsZero() {
		last = until.Add(-time.Nanosecond).In(time.Local).Format(layout)
	}
	rows, err := s.r.QueryContext(ctx, s.q[query], sql.Named("first", first), sql.Named("last", last))
	if err != nil {
		return fail(err)
	}
	defer rows.Close()
	var out []PeriodTotal
	for rows.Next() {
		var p PeriodTotal
		if err := rows.Scan(&p.Period, &p.Sessions, &p.DeliveredMWh, &p.PaidMsat, &p.Payments); err != nil {
			return fail(err)
		}
		start, err := time.ParseInLocation(layout, p.Period, time.Local)
		if err != nil {
			return fail(fmt.Errorf("period %q: %w", p.Period, err))
		}
		p.Start = start
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	return out, nil
}
