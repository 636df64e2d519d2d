// Package wallstore is the wall controller's ledger in SQLite: sessions,
// the invoices it hands out and the payments that settle them, meter
// samples, events, settings, and the history read back from them.
//
// Durability. The database runs in WAL mode with synchronous=FULL: every
// commit is fsynced to the write-ahead log before it returns. An invoice is
// written before it is handed out and a settlement before energy is
// credited, so a commit that returned must survive a power cut; with
// synchronous=NORMAL (the WAL default) the last commits may be lost on power
// loss, though never corrupted. The cost is one fsync per write, which the
// benchmarks measure. Writes take the write lock at BEGIN (_txlock=immediate)
// so that two writers wait for each other instead of failing half-way, and
// a busy timeout makes a second writing process wait its turn, not fail.
//
// Safety of the file. Open checks an existing file read-only before it
// writes anything: a file that is not SQLite, a corrupt database, another
// program's database (the car's ledger included) or a schema newer than
// this code is refused with an error naming the path, and the file is left
// byte for byte as it was. The opening, checking and migrating is package
// sqlitedb's, shared with the car's ledger (carstore).
//
// OpenReadOnly is for the history commands: it never creates, migrates or
// writes the file, and may run beside the wallctl that writes it.
//
// Times are stored as unix milliseconds UTC, money as integer msat and
// energy as integer mWh. Preimages are stored (they are the proof of a
// payment) but never put into error messages.
package wallstore

import (
	"context"
	"database/sql"
	"errors"
	"net/url"
	"time"

	"github.com/mattn/go-sqlite3"

	"satwatt/internal/sqlitedb"
	schema "satwatt/sql"
)

// Session states, as the metering state machine names them.
const (
	StateAwaitingPayment = "awaiting_payment"
	StateEnergising      = "energising"
	StateSuspended       = "suspended"
	StateEnded           = "ended"
)

// End reasons, as the metering state machine names them.
const (
	ReasonUnplugged     = "unplugged"
	ReasonUnpaidTimeout = "unpaid_timeout"
	ReasonBuyerStopped  = "buyer_stopped"
	ReasonChargerFault  = "charger_fault"
	ReasonWallShutdown  = "wall_shutdown"
)

// Invoice states.
const (
	InvoiceOpen     = "open"
	InvoiceSettled  = "settled"
	InvoiceCanceled = "canceled"
	InvoiceExpired  = "expired"
)

// Errors callers can test with errors.Is. Every error the store returns
// wraps one of these or a database error, and says what failed.
var (
	ErrNotFound     = sqlitedb.ErrNotFound
	ErrExists       = errors.New("already exists with other values")
	ErrInvalid      = sqlitedb.ErrInvalid
	ErrSessionEnded = sqlitedb.ErrSessionEnded
	// ErrSettled: CloseInvoice found the invoice settled and left it so.
	ErrSettled = errors.New("invoice is settled")
	// ErrConflict: a second settlement of one invoice disagrees with the
	// first (amount or preimage); the first stands.
	ErrConflict = errors.New("conflicts with the recorded settlement")

	// ErrReadOnly: a write to a store opened with OpenReadOnly.
	ErrReadOnly = sqlitedb.ErrReadOnly

	ErrNotDatabase = sqlitedb.ErrNotDatabase
	ErrCorrupt     = sqlitedb.ErrCorrupt
	// ErrForeign: not a satwatt wall database (another program's, or the car's).
	ErrForeign = sqlitedb.ErrForeign
	ErrTooNew  = sqlitedb.ErrTooNew
)

// Store is the wall's database. It is safe for concurrent use.
type Store struct {
	db   *sqlitedb.DB
	path string
	w    *sql.DB // one connection: every write goes through it, in order; nil when read-only
	r    *sql.DB // read-only connections, so history never waits for the write lock
	q    map[string]string
}

// queryNames are the named queries the store runs; Open checks that the
// schema package has each one, so a missing query fails at start, not in
// the middle of a session.
var queryNames = []string{
	"session_insert", "session_get", "sessions_open", "session_ended", "session_progress",
	"meter_sample_insert", "session_end",
	"invoice_insert", "invoice_get", "invoice_settle", "invoice_close", "invoices_open",
	"session_paid", "receipt_payments",
	"history", "history_totals", "daily_totals", "monthly_totals",
	"setting_get", "setting_set", "event_insert",
}

// kind is the wall's ledger for sqlitedb.
var kind = sqlitedb.Kind{
	Store:         "wallstore",
	Name:          "wall",
	Program:       "wallctl",
	ApplicationID: schema.ApplicationID,
	Migrations:    schema.Migrations,
	Queries:       schema.Queries,
	QueryNames:    queryNames,
}

// Open opens the database at path, creating it if it does not exist, and
// brings its schema up to date, one migration per transaction.
func Open(ctx context.Context, path string) (*Store, error) {
	return open(ctx, path, "FULL")
}

// open takes the synchronous mode so that benchmarks can measure the
// product's setting against a baseline; the product always uses FULL.
func open(ctx context.Context, path, synchronous string) (*Store, error) {
	db, err := sqlitedb.Open(ctx, kind, path, synchronous)
	if err != nil {
		return nil, err
	}
	return newStore(db), nil
}

// OpenReadOnly opens an existing database for reading only, for the
// history commands, which may run beside a running wallctl: it never
// creates, migrates or writes the file, and the write methods fail with
// ErrReadOnly. The file gets the same checks as with Open, and its schema
// must be at this program's version.
func OpenReadOnly(ctx context.Context, path string) (*Store, error) {
	db, err := sqlitedb.OpenReadOnly(ctx, kind, path)
	if err != nil {
		return nil, err
	}
	return newStore(db), nil
}

func newStore(db *sqlitedb.DB) *Store {
	return &Store{db: db, path: db.Path, w: db.W, r: db.R, q: db.Q}
}

// writer is the write pool, or ErrReadOnly.
func (s *Store) writer() (*sql.DB, error) { return s.db.Writer() }

// Close closes the database. The last connection to close checkpoints the
// write-ahead log into the main file.
func (s *Store) Close() error { return s.db.Close() }

// The helpers below are sqlitedb's, under the names this package's code
// and tests use.

const migrationsTable = sqlitedb.MigrationsTable

func dsn(abs string, params url.Values) string { return sqlitedb.DSN(abs, params) }

// isConstraint reports whether err is the SQLite constraint failure ext.
func isConstraint(err error, ext sqlite3.ErrNoExtended) bool { return sqlitedb.IsConstraint(err, ext) }

// ms is a time as stored.
func ms(t time.Time) int64 { return sqlitedb.MS(t) }

// fromMS is a stored time; NULL is the zero time.
func fromMS(v sql.NullInt64) time.Time { return sqlitedb.FromMS(v) }

// rangeMS is [since, until) in unix ms, a zero time meaning no bound.
func rangeMS(since, until time.Time) (int64, int64) { return sqlitedb.RangeMS(since, until) }

func describeRange(since, until time.Time) string { return sqlitedb.DescribeRange(since, until) }

// normHex checks a 32-byte value in hex and returns it in lower case, the
// form the schema stores. Its message never repeats the value.
func normHex(v, what string) (string, error) { return sqlitedb.NormHex(v, what) }

// short abbreviates a payment hash for messages.
func short(hash string) string { return sqlitedb.Short(hash) }
