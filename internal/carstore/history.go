package carstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"satwatt/internal/sqlitedb"
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
	ID               string
	StartedAt        time.Time
	EndedAt          time.Time // zero while the session runs
	EndReason        string
	WallURL          string
	WallNodeKey      string
	PriceMsatPerWh   int64
	SoCStartPermille int64 // or SoCUnknown
	SoCEndPermille   int64 // or SoCUnknown
	DeliveredMWh     int64 // as the wall reported it
	MeasuredMWh      int64 // as the car measured it
	PaidMsat         int64 // succeeded payments, fees excluded
	FeeMsat          int64 // their routing fees
	Payments         int64 // succeeded payments
	Failed           int64 // failed payments
	Pending          int64 // payments whose outcome is not known: possibly paid
	Refusals         int64 // invoices the car refused
}

// Totals sum a range of sessions.
type Totals struct {
	Sessions     int64
	DeliveredMWh int64
	MeasuredMWh  int64
	PaidMsat     int64
	FeeMsat      int64
	Payments     int64
}

// Receipt is a session with every invoice the car asked for in it, what
// became of each, and every invoice it refused.
type Receipt struct {
	Session  Session
	Payments []Payment // every invoice, in the order asked for
	Refusals []Refusal // in time order
	// Over the succeeded payments.
	PaidMsat int64
	FeeMsat  int64
	Paid     int64 // how many
}

// History lists sessions started in the range, newest first, and the
// totals over the whole range, from one consistent snapshot.
func (s *Store) History(ctx context.Context, hq HistoryQuery) ([]SessionSummary, Totals, error) {
	fail := func(err error) ([]SessionSummary, Totals, error) {
		return nil, Totals{}, fmt.Errorf("carstore: history %s: %w", sqlitedb.DescribeRange(hq.Since, hq.Until), err)
	}
	if hq.Limit < 0 {
		return fail(fmt.Errorf("%w: limit %d is negative", ErrInvalid, hq.Limit))
	}
	limit := int64(hq.Limit)
	if limit == 0 {
		limit = -1 // SQLite: no limit
	}
	lo, hi := sqlitedb.RangeMS(hq.Since, hq.Until)
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, s.q["history"], sql.Named("since", lo), sql.Named("until", hi), sql.Named("limit", limit))
	if err != nil {
		return fail(err)
	}
	defer rows.Close()
	var out []SessionSummary
	for rows.Next() {
		var (
			x                SessionSummary
			started          int64
			ended            sql.NullInt64
			reason           sql.NullString
			socStart, socEnd sql.NullInt64
		)
		if err := rows.Scan(&x.ID, &started, &ended, &reason, &x.WallURL, &x.WallNodeKey, &x.PriceMsatPerWh,
			&socStart, &socEnd, &x.DeliveredMWh, &x.MeasuredMWh,
			&x.PaidMsat, &x.FeeMsat, &x.Payments, &x.Failed, &x.Pending, &x.Refusals); err != nil {
			return fail(err)
		}
		x.StartedAt = time.UnixMilli(started).UTC()
		x.EndedAt = sqlitedb.FromMS(ended)
		x.EndReason = reason.String
		x.SoCStartPermille = socFrom(socStart)
		x.SoCEndPermille = socFrom(socEnd)
		out = append(out, x)
	}
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	var t Totals
	err = tx.QueryRowContext(ctx, s.q["history_totals"], sql.Named("since", lo), sql.Named("until", hi)).
		Scan(&t.Sessions, &t.DeliveredMWh, &t.MeasuredMWh, &t.PaidMsat, &t.FeeMsat, &t.Payments)
	if err != nil {
		return fail(err)
	}
	return out, t, nil
}

// Receipt returns a session with its payments and refusals; a missing
// session is ErrNotFound.
func (s *Store) Receipt(ctx context.Context, id string) (Receipt, error) {
	fail := func(err error) (Receipt, error) {
		return Receipt{}, fmt.Errorf("carstore: receipt of session %q: %w", id, err)
	}
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback()
	sess, err := scanSession(tx.QueryRowContext(ctx, s.q["session_get"], sql.Named("id", id)))
	if errors.Is(err, sql.ErrNoRows) {
		return fail(ErrNotFound)
	}
	if err != nil {
		return fail(err)
	}
	r := Receipt{Session: sess}
	if r.Payments, err = queryPayments(ctx, tx, s.q["receipt_invoices"], sql.Named("id", id)); err != nil {
		return fail(err)
	}
	for _, p := range r.Payments {
		if p.Status == StatusSucceeded {
			r.PaidMsat += p.PaidMsat
			r.FeeMsat += p.FeeMsat
			r.Paid++
		}
	}
	rows, err := tx.QueryContext(ctx, s.q["receipt_refusals"], sql.Named("id", id))
	if err != nil {
		return fail(err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			x    = Refusal{SessionID: id}
			at   int64
			hash sql.NullString
		)
		if err := rows.Scan(&at, &hash, &x.AmountMsat, &x.Bolt11, &x.Reason, &x.Detail); err != nil {
			return fail(err)
		}
		x.At = time.UnixMilli(at).UTC()
		x.PaymentHash = hash.String
		r.Refusals = append(r.Refusals, x)
	}
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	return r, nil
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func queryPayments(ctx context.Context, q querier, query string, args ...any) ([]Payment, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Payment
	for rows.Next() {
		p, err := scanPayment(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// InFlight returns the payments whose outcome only lnd knows, oldest
// first: those recorded in flight, and those requested with no outcome
// recorded (the car may have crashed between AddInvoice and paying, or
// while paying). After a restart the car asks lnd about each and records
// the answer before it pays anything more; a hash lnd does not know was
// never sent, and is recorded failed.
func (s *Store) InFlight(ctx context.Context) ([]Payment, error) {
	out, err := queryPayments(ctx, s.r, s.q["invoices_pending"])
	if err != nil {
		return nil, fmt.Errorf("carstore: payments in flight: %w", err)
	}
	return out, nil
}

// PaidSince is what left the car in succeeded payments that succeeded at
// or after t, routing fees included, in msat: the spending a daily budget
// caps. Payments still in flight are not in it; a careful budget adds
// their amounts from InFlight.
func (s *Store) PaidSince(ctx context.Context, t time.Time) (int64, error) {
	var paid int64
	if err := s.r.QueryRowContext(ctx, s.q["paid_since"], sql.Named("since", ms(t))).Scan(&paid); err != nil {
		return 0, fmt.Errorf("carstore: paid since %s: %w", t.Format(time.RFC3339), err)
	}
	return paid, nil
}

// OpenSessions returns the sessions that never ended, oldest first: after a
// crash, the ones the car must account for and end.
func (s *Store) OpenSessions(ctx context.Context) ([]Session, error) {
	rows, err := s.r.QueryContext(ctx, s.q["sessions_open"])
	if err != nil {
		return nil, fmt.Errorf("carstore: open sessions: %w", err)
	}
	defer rows.Close()
	var out []Session
	for rows.Next() {
		x, err := scanSession(rows)
		if err != nil {
			return nil, fmt.Errorf("carstore: open sessions: %w", err)
		}
		out = append(out, x)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("carstore: open sessions: %w", err)
	}
	return out, nil
}
