package carstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/mattn/go-sqlite3"

	"satwatt/internal/offer"
	"satwatt/internal/sqlitedb"
)

// SessionOpen is what the car knows when it accepts a wall's offer.
type SessionOpen struct {
	Offer       offer.Offer // Offer.SessionID, the wall's id, names the session
	WallURL     string      // where the car found the offer
	Metadata    string      // the LNURL metadata; invoices commit to its sha256
	StartedAt   time.Time
	SoCPermille int64 // state of charge at the start, 0..1000, or SoCUnknown
}

// Session is a session as recorded.
type Session struct {
	ID               string // the wall's session id
	WallURL          string
	Offer            offer.Offer
	Metadata         string
	StartedAt        time.Time
	EndedAt          time.Time // zero while the session runs
	EndReason        string    // "" while the session runs
	SoCStartPermille int64     // or SoCUnknown
	SoCEndPermille   int64     // or SoCUnknown; SoCUnknown while the session runs
	DeliveredMWh     int64     // as the wall reported it
	MeasuredMWh      int64     // as the car measured it on CAN
	UpdatedAt        time.Time // the last meter sample, or the start
}

// Ended reports whether the session has ended.
func (s Session) Ended() bool { return !s.EndedAt.IsZero() }

// MeterSample is one reading of both meters, each counted from the
// session's start.
type MeterSample struct {
	SessionID    string
	At           time.Time
	DeliveredMWh int64 // the wall's report
	MeasuredMWh  int64 // the car's CAN
}

// SessionEnd is how a session ended, with the final meter readings.
type SessionEnd struct {
	ID           string
	At           time.Time
	Reason       string
	SoCPermille  int64 // or SoCUnknown
	DeliveredMWh int64
	MeasuredMWh  int64
}

// Invoice is an invoice the car asked the wall for.
type Invoice struct {
	PaymentHash string // 64 hex digits
	SessionID   string
	AmountMsat  int64 // asked
	Bolt11      string
	RequestedAt time.Time
}

// PaymentOutcome is what lnd says of a payment.
type PaymentOutcome struct {
	PaymentHash   string
	Status        string // StatusInFlight, StatusSucceeded or StatusFailed
	PaidMsat      int64  // succeeded: what reached the wall, fees excluded
	FeeMsat       int64  // succeeded: routing fees on top
	PreimageHex   string // succeeded: the proof; sha256(preimage) = hash
	FailureReason string // failed: why
	At            time.Time
}

// Payment is an invoice with what became of its payment.
type Payment struct {
	Invoice
	Status        string // one of the Status constants
	PaidMsat      int64  // succeeded only
	FeeMsat       int64  // succeeded only
	PreimageHex   string
	FailureReason string
	SentAt        time.Time // zero while StatusRequested or StatusRefused
	ResolvedAt    time.Time // when it succeeded or failed
}

// Refusal is an invoice the car's checks refused to pay.
type Refusal struct {
	SessionID   string
	At          time.Time
	PaymentHash string // "" when the invoice did not decode
	AmountMsat  int64  // asked; 0 when none or not known
	Bolt11      string
	Reason      string // the check that refused it, e.g. "payee mismatch"
	Detail      string
}

// OpenSession records a session the car has accepted the offer of. A
// session id the ledger already holds is ErrExists: the car must not pay
// under it.
func (s *Store) OpenSession(ctx context.Context, o SessionOpen) error {
	id := o.Offer.SessionID
	fail := func(err error) error { return fmt.Errorf("carstore: open session %q: %w", id, err) }
	switch {
	case o.WallURL == "":
		return fail(fmt.Errorf("%w: empty wall URL", ErrInvalid))
	case o.StartedAt.IsZero():
		return fail(fmt.Errorf("%w: no start time", ErrInvalid))
	}
	if err := validSoC(o.SoCPermille, "at the start"); err != nil {
		return fail(err)
	}
	if err := o.Offer.Validate(); err != nil {
		return fail(fmt.Errorf("%w: %w", ErrInvalid, err))
	}
	w, err := s.db.Writer()
	if err != nil {
		return fail(err)
	}
	_, err = w.ExecContext(ctx, s.q["session_insert"],
		sql.Named("id", id),
		sql.Named("wall_url", o.WallURL),
		sql.Named("payee", o.Offer.WallNodeKey),
		sql.Named("network", o.Offer.Network),
		sql.Named("price_msat_per_wh", o.Offer.PriceMsatPerWh),
		sql.Named("increment_wh", o.Offer.IncrementWh),
		sql.Named("first_multiple", o.Offer.FirstMultiple),
		sql.Named("grace_wh", o.Offer.GraceWh),
		sql.Named("max_power_w", o.Offer.MaxPowerW),
		sql.Named("offer_valid_until", ms(o.Offer.ValidUntil)),
		sql.Named("metadata", o.Metadata),
		sql.Named("started", ms(o.StartedAt)),
		sql.Named("soc_start_permille", socArg(o.SoCPermille)),
	)
	if sqlitedb.IsConstraint(err, sqlite3.ErrConstraintPrimaryKey) {
		return fail(ErrExists)
	}
	if err != nil {
		return fail(err)
	}
	return nil
}

func validSoC(v int64, when string) error {
	if v != SoCUnknown && (v < 0 || v > 1000) {
		return fmt.Errorf("%w: state of charge %s is %d permille, want 0..1000 or SoCUnknown", ErrInvalid, when, v)
	}
	return nil
}

// socArg stores SoCUnknown as NULL.
func socArg(v int64) any {
	if v == SoCUnknown {
		return nil
	}
	return v
}

func socFrom(v sql.NullInt64) int64 {
	if !v.Valid {
		return SoCUnknown
	}
	return v.Int64
}

type scanner interface{ Scan(dest ...any) error }

func scanSession(sc scanner) (Session, error) {
	var (
		x                            Session
		validUntil, started, updated int64
		ended                        sql.NullInt64
		reason                       sql.NullString
		socStart, socEnd             sql.NullInt64
	)
	err := sc.Scan(&x.ID, &x.WallURL, &x.Offer.WallNodeKey, &x.Offer.Network,
		&x.Offer.PriceMsatPerWh, &x.Offer.IncrementWh, &x.Offer.FirstMultiple, &x.Offer.GraceWh, &x.Offer.MaxPowerW,
		&validUntil, &x.Metadata, &started, &ended, &reason,
		&socStart, &socEnd, &x.DeliveredMWh, &x.MeasuredMWh, &updated)
	if err != nil {
		return Session{}, err
	}
	x.Offer.SessionID = x.ID
	x.Offer.ValidUntil = time.UnixMilli(validUntil).UTC()
	x.StartedAt = time.UnixMilli(started).UTC()
	x.EndedAt = sqlitedb.FromMS(ended)
	x.EndReason = reason.String
	x.SoCStartPermille = socFrom(socStart)
	x.SoCEndPermille = socFrom(socEnd)
	x.UpdatedAt = time.UnixMilli(updated).UTC()
	return x, nil
}

// RecordMeter stores a reading of both meters and makes it the session's
// current energy, in one transaction. An ended session is ErrSessionEnded.
func (s *Store) RecordMeter(ctx context.Context, m MeterSample) error {
	fail := func(err error) error {
		return fmt.Errorf("carstore: record meter of session %q: %w", m.SessionID, err)
	}
	switch {
	case m.At.IsZero():
		return fail(fmt.Errorf("%w: no time", ErrInvalid))
	case m.DeliveredMWh < 0 || m.MeasuredMWh < 0:
		return fail(fmt.Errorf("%w: delivered %d mWh or measured %d mWh is negative", ErrInvalid, m.DeliveredMWh, m.MeasuredMWh))
	}
	return s.write(ctx, fail, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q["session_meter"], sql.Named("id", m.SessionID),
			sql.Named("delivered_mwh", m.DeliveredMWh), sql.Named("measured_mwh", m.MeasuredMWh), sql.Named("at", ms(m.At)))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return sqlitedb.WhyNotOpen(ctx, tx, s.q["session_ended"], m.SessionID)
		}
		_, err = tx.ExecContext(ctx, s.q["meter_sample_insert"], sql.Named("session_id", m.SessionID), sql.Named("at", ms(m.At)),
			sql.Named("delivered_mwh", m.DeliveredMWh), sql.Named("measured_mwh", m.MeasuredMWh))
		return err
	})
}

// EndSession ends a session with the final meter readings. Only the first
// call counts; later ones, with whatever arguments, change nothing and
// succeed.
func (s *Store) EndSession(ctx context.Context, e SessionEnd) error {
	fail := func(err error) error { return fmt.Errorf("carstore: end session %q: %w", e.ID, err) }
	switch {
	case e.At.IsZero():
		return fail(fmt.Errorf("%w: no time", ErrInvalid))
	case e.Reason == "":
		return fail(fmt.Errorf("%w: empty end reason", ErrInvalid))
	case e.DeliveredMWh < 0 || e.MeasuredMWh < 0:
		return fail(fmt.Errorf("%w: delivered %d mWh or measured %d mWh is negative", ErrInvalid, e.DeliveredMWh, e.MeasuredMWh))
	}
	if err := validSoC(e.SoCPermille, "at the end"); err != nil {
		return fail(err)
	}
	return s.write(ctx, fail, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q["session_end"], sql.Named("id", e.ID), sql.Named("at", ms(e.At)),
			sql.Named("reason", e.Reason), sql.Named("soc_end_permille", socArg(e.SoCPermille)),
			sql.Named("delivered_mwh", e.DeliveredMWh), sql.Named("measured_mwh", e.MeasuredMWh))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 1 {
			return nil
		}
		if err := sqlitedb.WhyNotOpen(ctx, tx, s.q["session_ended"], e.ID); !errors.Is(err, ErrSessionEnded) {
			return err
		}
		return nil
	})
}

// AddInvoice records an invoice the car asked for, before it pays it, so
// that no payment can leave the car unrecorded. Adding the same invoice
// again is a no-op; the same hash with other values is ErrExists. An ended
// session takes no new invoices (ErrSessionEnded).
func (s *Store) AddInvoice(ctx context.Context, inv Invoice) error {
	hash, herr := sqlitedb.NormHex(inv.PaymentHash, "payment hash")
	fail := func(err error) error {
		return fmt.Errorf("carstore: add invoice %s of session %q: %w", sqlitedb.Short(hash), inv.SessionID, err)
	}
	switch {
	case herr != nil:
		return fail(herr)
	case inv.SessionID == "":
		return fail(fmt.Errorf("%w: empty session id", ErrInvalid))
	case inv.AmountMsat <= 0:
		return fail(fmt.Errorf("%w: amount %d msat must be positive", ErrInvalid, inv.AmountMsat))
	case inv.Bolt11 == "":
		return fail(fmt.Errorf("%w: empty bolt11", ErrInvalid))
	case inv.RequestedAt.IsZero():
		return fail(fmt.Errorf("%w: no request time", ErrInvalid))
	}
	return s.write(ctx, fail, func(tx *sql.Tx) error {
		ended, err := sqlitedb.SessionEnded(ctx, tx, s.q["session_ended"], inv.SessionID)
		if err != nil {
			return fmt.Errorf("session: %w", err)
		}
		got, found, err := s.getPayment(ctx, tx, hash)
		if err != nil {
			return err
		}
		if found {
			if got.SessionID == inv.SessionID && got.AmountMsat == inv.AmountMsat && got.Bolt11 == inv.Bolt11 &&
				ms(got.RequestedAt) == ms(inv.RequestedAt) {
				return nil
			}
			return ErrExists
		}
		if ended {
			return ErrSessionEnded
		}
		_, err = tx.ExecContext(ctx, s.q["invoice_insert"], sql.Named("hash", hash), sql.Named("session_id", inv.SessionID),
			sql.Named("amount_msat", inv.AmountMsat), sql.Named("bolt11", inv.Bolt11), sql.Named("requested", ms(inv.RequestedAt)))
		return err
	})
}

func (s *Store) getPayment(ctx context.Context, tx *sql.Tx, hash string) (Payment, bool, error) {
	p, err := scanPayment(tx.QueryRowContext(ctx, s.q["invoice_get"], sql.Named("hash", hash)))
	if errors.Is(err, sql.ErrNoRows) {
		return Payment{}, false, nil
	}
	if err != nil {
		return Payment{}, false, err
	}
	return p, true, nil
}

func scanPayment(sc scanner) (Payment, error) {
	var (
		p                Payment
		requested        int64
		preimage, reason sql.NullString
		sent, resolved   sql.NullInt64
	)
	err := sc.Scan(&p.PaymentHash, &p.SessionID, &p.AmountMsat, &p.Bolt11, &requested,
		&p.Status, &p.PaidMsat, &p.FeeMsat, &preimage, &reason, &sent, &resolved)
	if err != nil {
		return Payment{}, err
	}
	p.RequestedAt = time.UnixMilli(requested).UTC()
	p.PreimageHex = preimage.String
	p.FailureReason = reason.String
	p.SentAt = sqlitedb.FromMS(sent)
	p.ResolvedAt = sqlitedb.FromMS(resolved)
	return p, nil
}

// RecordPayment records what lnd says of the payment of an invoice added
// with AddInvoice (ErrNotFound otherwise). It is idempotent on the hash:
//
//   - in flight may become succeeded or failed;
//   - failed may become in flight again (lnd retries a hash) or succeeded;
//   - succeeded is final: the same success again changes nothing, a stale
//     in-flight report is ignored, and a failure or a success with another
//     amount, fee or preimage is ErrConflict;
//   - a repeated in-flight or failure report changes nothing (the first
//     failure reason stands).
//
// A refused invoice takes an outcome too: money lnd reports is a fact. So
// does one of an ended session. PaidMsat and FeeMsat count only for a
// success; the preimage must hash to the payment hash.
func (s *Store) RecordPayment(ctx context.Context, p PaymentOutcome) error {
	hash, herr := sqlitedb.NormHex(p.PaymentHash, "payment hash")
	fail := func(err error) error {
		return fmt.Errorf("carstore: record payment %s as %q: %w", sqlitedb.Short(hash), p.Status, err)
	}
	if herr != nil {
		return fail(herr)
	}
	if p.At.IsZero() {
		return fail(fmt.Errorf("%w: no time", ErrInvalid))
	}
	var preimage string
	switch p.Status {
	case StatusSucceeded:
		var err error
		// Never echo the preimage, not even a bad one: errors end up in logs.
		if preimage, err = sqlitedb.NormHex(p.PreimageHex, "preimage"); err != nil {
			return fail(err)
		}
		pre, _ := hex.DecodeString(preimage)
		want, _ := hex.DecodeString(hash)
		if sum := sha256.Sum256(pre); !bytes.Equal(sum[:], want) {
			return fail(fmt.Errorf("%w: the preimage does not hash to the payment hash", ErrInvalid))
		}
		switch {
		case p.PaidMsat <= 0:
			return fail(fmt.Errorf("%w: paid %d msat must be positive", ErrInvalid, p.PaidMsat))
		case p.FeeMsat < 0:
			return fail(fmt.Errorf("%w: fee %d msat is negative", ErrInvalid, p.FeeMsat))
		case p.FailureReason != "":
			return fail(fmt.Errorf("%w: a failure reason for a success", ErrInvalid))
		}
	case StatusFailed, StatusInFlight:
		switch {
		case p.PreimageHex != "":
			return fail(fmt.Errorf("%w: a preimage is the proof of a success", ErrInvalid))
		case p.Status == StatusFailed && p.FailureReason == "":
			return fail(fmt.Errorf("%w: no failure reason", ErrInvalid))
		case p.Status == StatusInFlight && p.FailureReason != "":
			return fail(fmt.Errorf("%w: a failure reason for a payment in flight", ErrInvalid))
		}
	default:
		return fail(fmt.Errorf("%w: status must be %q, %q or %q", ErrInvalid, StatusInFlight, StatusSucceeded, StatusFailed))
	}
	return s.write(ctx, fail, func(tx *sql.Tx) error {
		cur, found, err := s.getPayment(ctx, tx, hash)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("invoice: %w (AddInvoice must record it before it is paid)", ErrNotFound)
		}
		switch {
		case cur.Status == StatusSucceeded && p.Status == StatusSucceeded:
			if cur.PaidMsat != p.PaidMsat || cur.FeeMsat != p.FeeMsat || cur.PreimageHex != preimage {
				return fmt.Errorf("%w: recorded %d msat paid and %d msat fee, now told %d and %d (or another preimage)",
					ErrConflict, cur.PaidMsat, cur.FeeMsat, p.PaidMsat, p.FeeMsat)
			}
			return nil
		case cur.Status == StatusSucceeded && p.Status == StatusFailed:
			return fmt.Errorf("%w: recorded as succeeded, now told it failed (%s)", ErrConflict, p.FailureReason)
		case cur.Status == StatusSucceeded, cur.Status == p.Status:
			return nil
		}
		// A payment in flight has no amount, fee or outcome yet; a failed
		// one paid nothing.
		paid, fee := int64(0), int64(0)
		var pre, reason, resolved any // NULL unless set
		switch p.Status {
		case StatusSucceeded:
			paid, fee, pre, resolved = p.PaidMsat, p.FeeMsat, preimage, ms(p.At)
		case StatusFailed:
			reason, resolved = p.FailureReason, ms(p.At)
		}
		res, err := tx.ExecContext(ctx, s.q["payment_update"], sql.Named("hash", hash), sql.Named("status", p.Status),
			sql.Named("paid_msat", paid), sql.Named("fee_msat", fee), sql.Named("preimage", pre),
			sql.Named("failure_reason", reason), sql.Named("at", ms(p.At)), sql.Named("resolved", resolved))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n != 1 {
			return fmt.Errorf("updated %d rows, want 1", n)
		}
		return nil
	})
}

// RecordRefusal records an invoice the car refused to pay. When the
// invoice was added with AddInvoice and has no payment recorded, it is
// marked refused too, so that InFlight does not list it.
func (s *Store) RecordRefusal(ctx context.Context, r Refusal) error {
	fail := func(err error) error {
		return fmt.Errorf("carstore: record refusal (%s) in session %q: %w", r.Reason, r.SessionID, err)
	}
	var hash any // NULL when the invoice did not decode
	if r.PaymentHash != "" {
		h, err := sqlitedb.NormHex(r.PaymentHash, "payment hash")
		if err != nil {
			return fail(err)
		}
		hash = h
	}
	switch {
	case r.SessionID == "":
		return fail(fmt.Errorf("%w: empty session id", ErrInvalid))
	case r.At.IsZero():
		return fail(fmt.Errorf("%w: no time", ErrInvalid))
	case r.Reason == "":
		return fail(fmt.Errorf("%w: empty reason", ErrInvalid))
	case r.AmountMsat < 0:
		return fail(fmt.Errorf("%w: amount %d msat is negative", ErrInvalid, r.AmountMsat))
	}
	return s.write(ctx, fail, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.q["refusal_insert"], sql.Named("session_id", r.SessionID), sql.Named("at", ms(r.At)),
			sql.Named("hash", hash), sql.Named("amount_msat", r.AmountMsat), sql.Named("bolt11", r.Bolt11),
			sql.Named("reason", r.Reason), sql.Named("detail", r.Detail))
		if sqlitedb.IsConstraint(err, sqlite3.ErrConstraintForeignKey) {
			return fmt.Errorf("session: %w", ErrNotFound)
		}
		if err != nil || hash == nil {
			return err
		}
		_, err = tx.ExecContext(ctx, s.q["invoice_refuse"], sql.Named("hash", hash))
		return err
	})
}

// AddEvent records something that happened, for people reading the
// history. sessionID "" means the event is about the car, not a session.
func (s *Store) AddEvent(ctx context.Context, sessionID string, at time.Time, kind, detail string) error {
	fail := func(err error) error {
		return fmt.Errorf("carstore: add event %q of session %q: %w", kind, sessionID, err)
	}
	switch {
	case kind == "":
		return fail(fmt.Errorf("%w: empty kind", ErrInvalid))
	case at.IsZero():
		return fail(fmt.Errorf("%w: no time", ErrInvalid))
	}
	w, err := s.db.Writer()
	if err != nil {
		return fail(err)
	}
	sid := sql.NullString{String: sessionID, Valid: sessionID != ""}
	_, err = w.ExecContext(ctx, s.q["event_insert"], sql.Named("session_id", sid), sql.Named("at", ms(at)),
		sql.Named("kind", kind), sql.Named("detail", detail))
	if sqlitedb.IsConstraint(err, sqlite3.ErrConstraintForeignKey) {
		return fail(fmt.Errorf("session: %w", ErrNotFound))
	}
	if err != nil {
		return fail(err)
	}
	return nil
}

// ms is a time as stored.
func ms(t time.Time) int64 { return sqlitedb.MS(t) }
