// Package carstore is the car's ledger in SQLite: every charging session
// with the wall's offer, every invoice the car asked for, what became of
// each payment, every invoice it refused, both meters (the energy the wall
// reported and the energy the car measured on CAN), events, and the
// history read back from them. It mirrors the wall's ledger (wallstore)
// from the payer's side.
//
// The order of writes is the safety: an invoice is written (AddInvoice)
// before it is paid, so a payment can never leave the car unrecorded; after
// a crash, InFlight lists every payment whose outcome only lnd knows, and
// the car follows each up before it pays anything more.
//
// The file is opened, checked and migrated by package sqlitedb, as the
// wall's is: WAL with synchronous=FULL (a commit that returned survives a
// power cut), a busy timeout, foreign keys, quick_check before the first
// write, and refusal of a file that is not SQLite, is corrupt, is another
// program's (the wall's ledger included) or has a newer schema, leaving it
// byte for byte as it was. OpenReadOnly is for vehiclegw history.
//
// Times are stored as unix milliseconds UTC, money as integer msat, energy
// as integer mWh and state of charge as integer permille. Preimages are
// stored (they are the proof of payment) but never put into error messages.
package carstore

import (
	"context"
	"database/sql"
	"errors"

	"satwatt/internal/sqlitedb"
	schema "satwatt/sql"
)

// Payment states: what became of an invoice the car asked for.
const (
	// StatusRequested: recorded by AddInvoice, no payment recorded yet.
	// After a crash it may have been sent all the same: lnd knows.
	StatusRequested = "requested"
	StatusInFlight  = "in_flight" // handed to lnd; possibly paid
	StatusSucceeded = "succeeded" // paid; the preimage is the proof
	StatusFailed    = "failed"    // lnd gave up
	StatusRefused   = "refused"   // the car's checks refused it; not sent
)

// SoCUnknown stands for a state of charge the car could not read; it is
// stored as NULL.
const SoCUnknown = -1

// Errors callers can test with errors.Is. Every error the store returns
// wraps one of these or a database error, and says what failed.
var (
	ErrNotFound     = sqlitedb.ErrNotFound
	ErrExists       = errors.New("already exists with other values")
	ErrInvalid      = sqlitedb.ErrInvalid
	ErrSessionEnded = sqlitedb.ErrSessionEnded
	// ErrConflict: a payment outcome contradicts the recorded one (a
	// failure after a success, or another amount, fee or preimage); the
	// recorded success stands.
	ErrConflict = errors.New("conflicts with the recorded payment")

	// ErrReadOnly: a write to a store opened with OpenReadOnly.
	ErrReadOnly = sqlitedb.ErrReadOnly

	ErrNotDatabase = sqlitedb.ErrNotDatabase
	ErrCorrupt     = sqlitedb.ErrCorrupt
	// ErrForeign: not a satwatt car database (another program's, or the wall's).
	ErrForeign = sqlitedb.ErrForeign
	ErrTooNew  = sqlitedb.ErrTooNew
)

// Store is the car's database. It is safe for concurrent use.
type Store struct {
	db *sqlitedb.DB
	r  *sql.DB // read-only connections
	q  map[string]string
}

// kind is the car's ledger for sqlitedb.
var kind = sqlitedb.Kind{
	Store:         "carstore",
	Name:          "car",
	Program:       "vehiclegw",
	ApplicationID: schema.CarApplicationID,
	Migrations:    schema.CarMigrations,
	Queries:       schema.CarQueries,
	QueryNames: []string{
		"session_insert", "session_get", "sessions_open", "session_ended", "session_meter",
		"meter_sample_insert", "session_end",
		"invoice_insert", "invoice_get", "payment_update", "invoice_refuse", "invoices_pending",
		"paid_since", "receipt_invoices", "refusal_insert", "receipt_refusals",
		"history", "history_totals", "event_insert",
	},
}

// Open opens the database at path, creating it if it does not exist, and
// brings its schema up to date, one migration per transaction.
func Open(ctx context.Context, path string) (*Store, error) {
	db, err := sqlitedb.Open(ctx, kind, path, "FULL")
	if err != nil {
		return nil, err
	}
	return &Store{db: db, r: db.R, q: db.Q}, nil
}

// OpenReadOnly opens an existing database for reading only, for vehiclegw
// history, which may run beside the vehiclegw that writes it: it never
// creates, migrates or writes the file, and the write methods fail with
// ErrReadOnly. Its schema must be at this program's version.
func OpenReadOnly(ctx context.Context, path string) (*Store, error) {
	db, err := sqlitedb.OpenReadOnly(ctx, kind, path)
	if err != nil {
		return nil, err
	}
	return &Store{db: db, r: db.R, q: db.Q}, nil
}

// Close closes the database. The last connection to close checkpoints the
// write-ahead log into the main file.
func (s *Store) Close() error { return s.db.Close() }

// write runs fn in one write transaction; any error is rolled back and
// passed through fail.
func (s *Store) write(ctx context.Context, fail func(error) error, fn func(*sql.Tx) error) error {
	if err := s.db.Write(ctx, fn); err != nil {
		return fail(err)
	}
	return nil
}
