package wallstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"satwatt/internal/metering"
)

// Point is one meter sample with the credit the session had then.
type Point struct {
	At           time.Time
	PowerW       int64
	DeliveredMWh int64
	// CreditMsat is what was paid by At (settled payments, by settlement
	// time) less the cost of the energy delivered by At.
	CreditMsat int64
}

// MaxSeriesPoints bounds one session's series.
const MaxSeriesPoints = 20_000

// Series returns a session's meter samples, oldest first, each with its
// credit, from one consistent snapshot.
func (s *Store) Series(ctx context.Context, id string) ([]Point, error) {
	fail := func(err error) ([]Point, error) {
		return nil, fmt.Errorf("wallstore: series of session %q: %w", id, err)
	}
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback()
	rc, err := s.receipt(ctx, tx, id)
	if err != nil {
		return fail(err)
	}
	terms := metering.Terms{PriceMsatPerWh: rc.Session.Offer.PriceMsatPerWh}
	rows, err := tx.QueryContext(ctx, s.q["session_samples"], sql.Named("id", id), sql.Named("limit", MaxSeriesPoints))
	if err != nil {
		return fail(err)
	}
	defer rows.Close()
	var (
		out    []Point
		paidBy int64
		next   int
	)
	for rows.Next() {
		var (
			at int64
			p  Point
		)
		if err := rows.Scan(&at, &p.PowerW, &p.DeliveredMWh); err != nil {
			return fail(err)
		}
		p.At = time.UnixMilli(at).UTC()
		// Payments come in settlement order, samples in time order: one
		// merge pass.
		for next < len(rc.Payments) && !rc.Payments[next].SettledAt.After(p.At) {
			paidBy += rc.Payments[next].AmountPaidMsat
			next++
		}
		p.CreditMsat = paidBy - terms.CostMsat(p.DeliveredMWh)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	return out, nil
}
