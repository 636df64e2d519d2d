package wallstore

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

// SessionOpen is what the wall knows when a car plugs in.
type SessionOpen struct {
	ID           string
	Connector    int // which of the wall's connectors, from 1; 0 means 1
	StartedAt    time.Time
	Offer        offer.Offer // its SessionID must be ID
	Metadata     string      // the LNURL metadata served; invoices commit to its sha256
	EVSEStartMWh int64       // the EVSE meter's reading at plug-in
}

// Session is a session as recorded.
type Session struct {
	ID           string
	StartedAt    time.Time
	EndedAt      time.Time // zero while the session runs
	State        string
	EndReason    string // "" while the session runs
	Offer        offer.Offer
	Metadata     string
	DeliveredMWh int64 // since the session started
	EVSEStartMWh int64
	UpdatedAt    time.Time // the last progress report, or the start
	Connector    int       // from 1
}

// Ended reports whether the session has ended.
func (s Session) Ended() bool { return !s.EndedAt.IsZero() }

// Invoice is an invoice the wall is about to hand out, or one still open.
type Invoice struct {
	PaymentHash string // 64 hex digits
	SessionID   string
	AmountMsat  int64 // asked
	Bolt11      string
	CreatedAt   time.Time
	ExpiresAt   time.Time
}

// Settlement is the outcome of SettleInvoice.
type Settlement struct {
	SessionID   string
	AmtPaidMsat int64
	// New is false when the invoice was already settled: the caller must
	// not credit it again.
	New bool
	// AfterEnd is set when the session had already ended when the payment
	// was recorded: the car paid for energy it did not get.
	AfterEnd bool
}

// OpenSession records a new session, awaiting its first payment.
func (s *Store) OpenSession(ctx context.Context, o SessionOpen) error {
	fail := func(err error) error { return fmt.Errorf("wallstore: open session %q: %w", o.ID, err) }
	switch {
	case o.ID == "":
		return fail(fmt.Errorf("%w: empty session id", ErrInvalid))
	case o.Offer.SessionID != o.ID:
		return fail(fmt.Errorf("%w: offer is for session %q", ErrInvalid, o.Offer.SessionID))
	case o.StartedAt.IsZero():
		return fail(fmt.Errorf("%w: no start time", ErrInvalid))
	case o.EVSEStartMWh < 0:
		return fail(fmt.Errorf("%w: EVSE meter reading %d mWh is negative", ErrInvalid, o.EVSEStartMWh))
	case o.Connector < 0:
		return fail(fmt.Errorf("%w: connector %d; they count from 1", ErrInvalid, o.Connector))
	}
	if o.Connector == 0 {
		o.Connector = 1
	}
	if err := o.Offer.Validate(); err != nil {
		return fail(fmt.Errorf("%w: %w", ErrInvalid, err))
	}
	w, err := s.writer()
	if err != nil {
		return fail(err)
	}
	_, err = w.ExecContext(ctx, s.q["session_insert"],
		sql.Named("id", o.ID),
		sql.Named("connector", o.Connector),
		sql.Named("started", ms(o.StartedAt)),
		sql.Named("state", StateAwaitingPayment),
		sql.Named("price_msat_per_wh", o.Offer.PriceMsatPerWh),
		sql.Named("increment_wh", o.Offer.IncrementWh),
		sql.Named("first_multiple", o.Offer.FirstMultiple),
		sql.Named("grace_wh", o.Offer.GraceWh),
		sql.Named("max_power_w", o.Offer.MaxPowerW),
		sql.Named("payee", o.Offer.WallNodeKey),
		sql.Named("network", o.Offer.Network),
		sql.Named("offer_valid_until", ms(o.Offer.ValidUntil)),
		sql.Named("metadata", o.Metadata),
		sql.Named("evse_start_mwh", o.EVSEStartMWh),
	)
	if isConstraint(err, sqlite3.ErrConstraintPrimaryKey) {
		return fail(ErrExists)
	}
	if err != nil {
		return fail(err)
	}
	return nil
}

// Session returns one session; a missing one is ErrNotFound.
func (s *Store) Session(ctx context.Context, id string) (Session, error) {
	x, err := scanSession(s.r.QueryRowContext(ctx, s.q["session_get"], sql.Named("id", id)))
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, fmt.Errorf("wallstore: session %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return Session{}, fmt.Errorf("wallstore: session %q: %w", id, err)
	}
	return x, nil
}

// OpenSessions returns one connector's sessions that never ended, oldest
// first: after a crash, the ones it must resume or end and account for
// before it starts anew.
func (s *Store) OpenSessions(ctx context.Context, connector int) ([]Session, error) {
	rows, err := s.r.QueryContext(ctx, s.q["sessions_open"], sql.Named("connector", connector))
	if err != nil {
		return nil, fmt.Errorf("wallstore: open sessions: %w", err)
	}
	defer rows.Close()
	var out []Session
	for rows.Next() {
		x, err := scanSession(rows)
		if err != nil {
			return nil, fmt.Errorf("wallstore: open sessions: %w", err)
		}
		out = append(out, x)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("wallstore: open sessions: %w", err)
	}
	return out, nil
}

type scanner interface{ Scan(dest ...any) error }

func scanSession(sc scanner) (Session, error) {
	var (
		x                            Session
		started, validUntil, updated int64
		ended                        sql.NullInt64
		reason                       sql.NullString
	)
	err := sc.Scan(&x.ID, &started, &ended, &x.State, &reason,
		&x.Offer.PriceMsatPerWh, &x.Offer.IncrementWh, &x.Offer.FirstMultiple, &x.Offer.GraceWh, &x.Offer.MaxPowerW,
		&x.Offer.WallNodeKey, &x.Offer.Network, &validUntil, &x.Metadata,
		&x.DeliveredMWh, &x.EVSEStartMWh, &updated, &x.Connector)
	if err != nil {
		return Session{}, err
	}
	x.Offer.SessionID = x.ID
	x.Offer.ValidUntil = time.UnixMilli(validUntil).UTC()
	x.StartedAt = time.UnixMilli(started).UTC()
	x.EndedAt = fromMS(ended)
	x.EndReason = reason.String
	x.UpdatedAt = time.UnixMilli(updated).UTC()
	return x, nil
}

// RecordProgress stores a meter sample and the session's current state and
// delivered energy, in one transaction. An ended session is ErrSessionEnded:
// use EndSession to end one.
func (s *Store) RecordProgress(ctx context.Context, sessionID string, at time.Time, state string, deliveredMWh, powerW int64) error {
	fail := func(err error) error {
		return fmt.Errorf("wallstore: record progress of session %q: %w", sessionID, err)
	}
	switch {
	case at.IsZero():
		return fail(fmt.Errorf("%w: no time", ErrInvalid))
	case state == "":
		return fail(fmt.Errorf("%w: empty state", ErrInvalid))
	case state == StateEnded:
		return fail(fmt.Errorf("%w: state %q: use EndSession", ErrInvalid, state))
	case deliveredMWh < 0:
		return fail(fmt.Errorf("%w: delivered %d mWh is negative", ErrInvalid, deliveredMWh))
	}
	return s.write(ctx, fail, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q["session_progress"],
			sql.Named("id", sessionID), sql.Named("state", state),
			sql.Named("delivered_mwh", deliveredMWh), sql.Named("at", ms(at)))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return sqlitedb.WhyNotOpen(ctx, tx, s.q["session_ended"], sessionID)
		}
		_, err = tx.ExecContext(ctx, s.q["meter_sample_insert"],
			sql.Named("session_id", sessionID), sql.Named("at", ms(at)),
			sql.Named("power_w", powerW), sql.Named("delivered_mwh", deliveredMWh))
		return err
	})
}

// EndSession ends a session. Only the first call counts; later ones, with
// whatever arguments, change nothing and succeed.
func (s *Store) EndSession(ctx context.Context, id string, at time.Time, reason string, deliveredMWh int64) error {
	fail := func(err error) error { return fmt.Errorf("wallstore: end session %q: %w", id, err) }
	switch {
	case at.IsZero():
		return fail(fmt.Errorf("%w: no time", ErrInvalid))
	case reason == "":
		return fail(fmt.Errorf("%w: empty end reason", ErrInvalid))
	case deliveredMWh < 0:
		return fail(fmt.Errorf("%w: delivered %d mWh is negative", ErrInvalid, deliveredMWh))
	}
	return s.write(ctx, fail, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q["session_end"],
			sql.Named("id", id), sql.Named("at", ms(at)),
			sql.Named("reason", reason), sql.Named("delivered_mwh", deliveredMWh))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 1 {
			return nil
		}
		if err := sqlitedb.WhyNotOpen(ctx, tx, s.q["session_ended"], id); !errors.Is(err, ErrSessionEnded) {
			return err
		}
		return nil
	})
}

// AddInvoice records an invoice before it is handed out, so that a payment
// for it can never arrive unrecorded. Adding the same invoice again is a
// no-op; the same hash with other values is ErrExists. A session that has
// ended takes no new invoices (ErrSessionEnded).
func (s *Store) AddInvoice(ctx context.Context, inv Invoice) error {
	hash, herr := normHex(inv.PaymentHash, "payment hash")
	fail := func(err error) error {
		return fmt.Errorf("wallstore: add invoice %s of session %q: %w", short(hash), inv.SessionID, err)
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
	case inv.CreatedAt.IsZero():
		return fail(fmt.Errorf("%w: no creation time", ErrInvalid))
	case ms(inv.ExpiresAt) <= ms(inv.CreatedAt):
		return fail(fmt.Errorf("%w: expiry %v is not after creation %v", ErrInvalid, inv.ExpiresAt, inv.CreatedAt))
	}
	return s.write(ctx, fail, func(tx *sql.Tx) error {
		ended, err := sqlitedb.SessionEnded(ctx, tx, s.q["session_ended"], inv.SessionID)
		if err != nil {
			return fmt.Errorf("session: %w", err)
		}
		got, found, err := s.getInvoice(ctx, tx, hash)
		if err != nil {
			return err
		}
		if found {
			same := got.SessionID == inv.SessionID && got.AmountMsat == inv.AmountMsat &&
				got.Bolt11 == inv.Bolt11 && ms(got.CreatedAt) == ms(inv.CreatedAt) && ms(got.ExpiresAt) == ms(inv.ExpiresAt)
			if same {
				return nil
			}
			return ErrExists
		}
		if ended {
			return ErrSessionEnded
		}
		_, err = tx.ExecContext(ctx, s.q["invoice_insert"],
			sql.Named("hash", hash), sql.Named("session_id", inv.SessionID),
			sql.Named("amount_msat", inv.AmountMsat), sql.Named("bolt11", inv.Bolt11),
			sql.Named("created", ms(inv.CreatedAt)), sql.Named("expires", ms(inv.ExpiresAt)))
		return err
	})
}

// storedInvoice is an invoice row with its fate.
type storedInvoice struct {
	Invoice
	State        string
	PaidMsat     int64
	Preimage     string
	AfterEnd     bool
	SessionEnded bool
}

func (s *Store) getInvoice(ctx context.Context, tx *sql.Tx, hash string) (storedInvoice, bool, error) {
	var (
		x                storedInvoice
		created, expires int64
		preimage         sql.NullString
	)
	err := tx.QueryRowContext(ctx, s.q["invoice_get"], sql.Named("hash", hash)).Scan(
		&x.PaymentHash, &x.SessionID, &x.AmountMsat, &x.Bolt11, &created, &expires,
		&x.State, &x.PaidMsat, &preimage, &x.AfterEnd, &x.SessionEnded)
	if errors.Is(err, sql.ErrNoRows) {
		return storedInvoice{}, false, nil
	}
	if err != nil {
		return storedInvoice{}, false, err
	}
	x.CreatedAt = time.UnixMilli(created).UTC()
	x.ExpiresAt = time.UnixMilli(expires).UTC()
	x.Preimage = preimage.String
	return x, true, nil
}

// SettleInvoice records a payment: what lnd says was paid (a payer may
// overpay) and the preimage, which must hash to the payment hash. It is
// idempotent: a second call for a settled invoice returns New=false and
// counts nothing twice (and ErrConflict if its amount or preimage differ
// from the first; the first stands). A payment for an ended session is
// recorded all the same, with AfterEnd set; one for an invoice the wall had
// marked canceled or expired is recorded too: money that arrived is a fact.
func (s *Store) SettleInvoice(ctx context.Context, hash string, amtPaidMsat int64, preimageHex string, at time.Time) (Settlement, error) {
	hash, herr := normHex(hash, "payment hash")
	fail := func(err error) error { return fmt.Errorf("wallstore: settle invoice %s: %w", short(hash), err) }
	if herr != nil {
		return Settlement{}, fail(herr)
	}
	// Never echo the preimage, not even a bad one: errors end up in logs.
	preimage, perr := normHex(preimageHex, "preimage")
	switch {
	case perr != nil:
		return Settlement{}, fail(perr)
	case amtPaidMsat <= 0:
		return Settlement{}, fail(fmt.Errorf("%w: amount paid %d msat must be positive", ErrInvalid, amtPaidMsat))
	case at.IsZero():
		return Settlement{}, fail(fmt.Errorf("%w: no settlement time", ErrInvalid))
	}
	pre, _ := hex.DecodeString(preimage)
	want, _ := hex.DecodeString(hash)
	if sum := sha256.Sum256(pre); !bytes.Equal(sum[:], want) {
		return Settlement{}, fail(fmt.Errorf("%w: the preimage does not hash to the payment hash", ErrInvalid))
	}
	var out Settlement
	err := s.write(ctx, fail, func(tx *sql.Tx) error {
		inv, found, err := s.getInvoice(ctx, tx, hash)
		if err != nil {
			return err
		}
		if !found {
			return ErrNotFound
		}
		if inv.State == InvoiceSettled {
			out = Settlement{SessionID: inv.SessionID, AmtPaidMsat: inv.PaidMsat, AfterEnd: inv.AfterEnd}
			if inv.PaidMsat != amtPaidMsat || inv.Preimage != preimage {
				return fmt.Errorf("%w: recorded %d msat paid, now told %d msat (or another preimage)",
					ErrConflict, inv.PaidMsat, amtPaidMsat)
			}
			return nil
		}
		res, err := tx.ExecContext(ctx, s.q["invoice_settle"],
			sql.Named("hash", hash), sql.Named("paid_msat", amtPaidMsat),
			sql.Named("preimage", preimage), sql.Named("at", ms(at)),
			sql.Named("after_end", inv.SessionEnded))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n != 1 {
			return fmt.Errorf("settled %d rows, want 1", n)
		}
		out = Settlement{SessionID: inv.SessionID, AmtPaidMsat: amtPaidMsat, New: true, AfterEnd: inv.SessionEnded}
		return nil
	})
	return out, err
}

// CloseInvoice marks an open invoice "canceled" or "expired". It never
// overwrites a settled invoice (ErrSettled says so); closing an invoice
// already closed changes nothing and succeeds.
func (s *Store) CloseInvoice(ctx context.Context, hash, state string, at time.Time) error {
	hash, herr := normHex(hash, "payment hash")
	fail := func(err error) error {
		return fmt.Errorf("wallstore: close invoice %s as %q: %w", short(hash), state, err)
	}
	switch {
	case herr != nil:
		return fail(herr)
	case state != InvoiceCanceled && state != InvoiceExpired:
		return fail(fmt.Errorf("%w: state must be %q or %q", ErrInvalid, InvoiceCanceled, InvoiceExpired))
	case at.IsZero():
		return fail(fmt.Errorf("%w: no time", ErrInvalid))
	}
	return s.write(ctx, fail, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q["invoice_close"],
			sql.Named("hash", hash), sql.Named("state", state), sql.Named("at", ms(at)))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 1 {
			return nil
		}
		inv, found, err := s.getInvoice(ctx, tx, hash)
		switch {
		case err != nil:
			return err
		case !found:
			return ErrNotFound
		case inv.State == InvoiceSettled:
			return ErrSettled
		}
		return nil
	})
}

// OpenInvoices returns a connector's invoices still open, oldest first,
// for it to reconcile with lnd at start.
func (s *Store) OpenInvoices(ctx context.Context, connector int) ([]Invoice, error) {
	rows, err := s.r.QueryContext(ctx, s.q["invoices_open"], sql.Named("connector", connector))
	if err != nil {
		return nil, fmt.Errorf("wallstore: open invoices: %w", err)
	}
	defer rows.Close()
	var out []Invoice
	for rows.Next() {
		var (
			x                Invoice
			created, expires int64
		)
		if err := rows.Scan(&x.PaymentHash, &x.SessionID, &x.AmountMsat, &x.Bolt11, &created, &expires); err != nil {
			return nil, fmt.Errorf("wallstore: open invoices: %w", err)
		}
		x.CreatedAt = time.UnixMilli(created).UTC()
		x.ExpiresAt = time.UnixMilli(expires).UTC()
		out = append(out, x)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("wallstore: open invoices: %w", err)
	}
	return out, nil
}

// PaidMsat is what a session's settled invoices brought, late ones included.
func (s *Store) PaidMsat(ctx context.Context, sessionID string) (int64, error) {
	var paid int64
	err := s.r.QueryRowContext(ctx, s.q["session_paid"], sql.Named("id", sessionID)).Scan(&paid)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("wallstore: paid for session %q: %w", sessionID, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("wallstore: paid for session %q: %w", sessionID, err)
	}
	return paid, nil
}

// AddEvent records something that happened, for people reading the
// history. sessionID "" means the event is about the wall, not a session.
func (s *Store) AddEvent(ctx context.Context, sessionID string, at time.Time, kind, detail string) error {
	fail := func(err error) error {
		return fmt.Errorf("wallstore: add event %q of session %q: %w", kind, sessionID, err)
	}
	switch {
	case kind == "":
		return fail(fmt.Errorf("%w: empty kind", ErrInvalid))
	case at.IsZero():
		return fail(fmt.Errorf("%w: no time", ErrInvalid))
	}
	w, err := s.writer()
	if err != nil {
		return fail(err)
	}
	sid := sql.NullString{String: sessionID, Valid: sessionID != ""}
	_, err = w.ExecContext(ctx, s.q["event_insert"],
		sql.Named("session_id", sid), sql.Named("at", ms(at)),
		sql.Named("kind", kind), sql.Named("detail", detail))
	if isConstraint(err, sqlite3.ErrConstraintForeignKey) {
		return fail(fmt.Errorf("session: %w", ErrNotFound))
	}
	if err != nil {
		return fail(err)
	}
	return nil
}

// GetSetting returns a setting; a missing one is ErrNotFound.
func (s *Store) GetSetting(ctx context.Context, key string) (string, error) {
	var v string
	err := s.r.QueryRowContext(ctx, s.q["setting_get"], sql.Named("key", key)).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("wallstore: setting %q: %w", key, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("wallstore: setting %q: %w", key, err)
	}
	return v, nil
}

// SetSetting stores a setting, replacing any earlier value.
func (s *Store) SetSetting(ctx context.Context, key, value string) error {
	if key == "" {
		return fmt.Errorf("wallstore: set setting: %w: empty key", ErrInvalid)
	}
	w, err := s.writer()
	if err != nil {
		return fmt.Errorf("wallstore: set setting %q: %w", key, err)
	}
	_, err = w.ExecContext(ctx, s.q["setting_set"],
		sql.Named("key", key), sql.Named("value", value), sql.Named("at", time.Now().UnixMilli()))
	if err != nil {
		return fmt.Errorf("wallstore: set setting %q: %w", key, err)
	}
	return nil
}

// write runs fn in a write transaction (BEGIN IMMEDIATE) and commits it;
// any error is rolled back and passed through fail.
func (s *Store) write(ctx context.Context, fail func(error) error, fn func(*sql.Tx) error) error {
	if err := s.db.Write(ctx, fn); err != nil {
		return fail(err)
	}
	return nil
}
