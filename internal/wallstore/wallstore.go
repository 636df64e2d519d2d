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
// program's database or a schema newer than this code is refused with an
// error naming the path, and the file is left byte for byte as it was.
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
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mattn/go-sqlite3"

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
	ErrNotFound     = errors.New("not found")
	ErrExists       = errors.New("already exists with other values")
	ErrInvalid      = errors.New("invalid argument")
	ErrSessionEnded = errors.New("session has ended")
	// ErrSettled: CloseInvoice found the invoice settled and left it so.
	ErrSettled = errors.New("invoice is settled")
	// ErrConflict: a second settlement of one invoice disagrees with the
	// first (amount or preimage); the first stands.
	ErrConflict = errors.New("conflicts with the recorded settlement")

	// ErrReadOnly: a write to a store opened with OpenReadOnly.
	ErrReadOnly = errors.New("store is open read-only")

	ErrNotDatabase = errors.New("not a SQLite database")
	ErrCorrupt     = errors.New("database is corrupt")
	ErrForeign     = errors.New("not a satwatt wall database")
	ErrTooNew      = errors.New("database schema is newer than this program")
)

const sqliteHeader = "SQLite format 3\x00"

// busyTimeout is how long a write waits for another writer (another
// process: the store itself serialises its own writes).
const busyTimeout = 5 * time.Second

// readers bounds the read connections: history pages and CLI queries.
const readers = 4

// Store is the wall's database. It is safe for concurrent use.
type Store struct {
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

// Open opens the database at path, creating it if it does not exist, and
// brings its schema up to date, one migration per transaction.
func Open(ctx context.Context, path string) (*Store, error) {
	return open(ctx, path, "FULL")
}

// open takes the synchronous mode so that benchmarks can measure the
// product's setting against a baseline; the product always uses FULL.
func open(ctx context.Context, path, synchronous string) (*Store, error) {
	if path == "" {
		return nil, fmt.Errorf("wallstore: open: %w: empty path", ErrInvalid)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("wallstore: open %s: %w", path, err)
	}
	migrations, err := schema.Migrations()
	if err != nil {
		return nil, fmt.Errorf("wallstore: open %s: %w", path, err)
	}
	q, err := schema.Queries()
	if err != nil {
		return nil, fmt.Errorf("wallstore: open %s: %w", path, err)
	}
	for _, n := range queryNames {
		if _, ok := q[n]; !ok {
			return nil, fmt.Errorf("wallstore: open %s: schema has no query %q", path, n)
		}
	}
	if err := inspect(ctx, path, abs, len(migrations), true); err != nil {
		return nil, err
	}

	w, err := sql.Open("sqlite3", dsn(abs, url.Values{
		"_busy_timeout":    {fmt.Sprint(busyTimeout.Milliseconds())},
		"_foreign_keys":    {"on"},
		"_txlock":          {"immediate"},
		"_synchronous":     {synchronous},
		"_stmt_cache_size": {"64"},
	}))
	if err != nil {
		return nil, fmt.Errorf("wallstore: open %s: %w", path, err)
	}
	// One writer connection: SQLite has one write lock anyway, and queuing
	// in Go is cheaper and fairer than spinning on SQLITE_BUSY.
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	fail := func(err error) (*Store, error) {
		w.Close()
		return nil, err
	}
	// Only now, with the file checked, may anything write to it.
	var mode string
	if err := w.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode); err != nil {
		return fail(fmt.Errorf("wallstore: open %s: set WAL mode: %w", path, classify(err)))
	}
	if !strings.EqualFold(mode, "wal") {
		return fail(fmt.Errorf("wallstore: open %s: journal mode is %q, want wal", path, mode))
	}
	if err := migrate(ctx, w, path, migrations); err != nil {
		return fail(err)
	}

	r, err := openReader(ctx, abs)
	if err != nil {
		return fail(fmt.Errorf("wallstore: open %s for reading: %w", path, err))
	}
	return &Store{path: path, w: w, r: r, q: q}, nil
}

// OpenReadOnly opens an existing database for reading only, for the
// history commands, which may run beside a running wallctl: it never
// creates, migrates or writes the file, and the write methods fail with
// ErrReadOnly. The file gets the same checks as with Open, and its schema
// must be at this program's version.
func OpenReadOnly(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, fmt.Errorf("wallstore: open read-only: %w: empty path", ErrInvalid)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("wallstore: open %s: %w", path, err)
	}
	latest, err := schema.Latest()
	if err != nil {
		return nil, fmt.Errorf("wallstore: open %s: %w", path, err)
	}
	q, err := schema.Queries()
	if err != nil {
		return nil, fmt.Errorf("wallstore: open %s: %w", path, err)
	}
	if _, err := os.Stat(abs); err != nil {
		return nil, fmt.Errorf("wallstore: open %s read-only: %w", path, err)
	}
	if err := inspect(ctx, path, abs, latest, false); err != nil {
		return nil, err
	}
	r, err := openReader(ctx, abs)
	if err != nil {
		return nil, fmt.Errorf("wallstore: open %s read-only: %w", path, classify(err))
	}
	var tables int
	if err := r.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'").Scan(&tables); err != nil {
		r.Close()
		return nil, fmt.Errorf("wallstore: open %s read-only: %w", path, classify(err))
	}
	v := 0
	if tables > 0 {
		if v, err = version(ctx, r); err != nil {
			r.Close()
			return nil, fmt.Errorf("wallstore: open %s read-only: %w", path, classify(err))
		}
	}
	if v != latest {
		r.Close()
		if v > latest {
			return nil, fmt.Errorf("wallstore: open %s read-only: %w: schema version %d, this program knows up to %d", path, ErrTooNew, v, latest)
		}
		return nil, fmt.Errorf("wallstore: open %s read-only: schema version %d, want %d: let wallctl open it read-write once to migrate it", path, v, latest)
	}
	return &Store{path: path, r: r, q: q}, nil
}

// openReader opens the pool of read-only connections.
func openReader(ctx context.Context, abs string) (*sql.DB, error) {
	r, err := sql.Open("sqlite3", dsn(abs, url.Values{
		"mode":             {"ro"},
		"_busy_timeout":    {fmt.Sprint(busyTimeout.Milliseconds())},
		"_txlock":          {"deferred"},
		"_stmt_cache_size": {"64"},
	}))
	if err != nil {
		return nil, err
	}
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(readers)
	if err := r.PingContext(ctx); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// writer is the write pool, or ErrReadOnly.
func (s *Store) writer() (*sql.DB, error) {
	if s.w == nil {
		return nil, ErrReadOnly
	}
	return s.w, nil
}

// Close closes the database. The last connection to close checkpoints the
// write-ahead log into the main file.
func (s *Store) Close() error {
	rerr := s.r.Close()
	var werr error
	if s.w != nil {
		werr = s.w.Close()
	}
	if err := errors.Join(rerr, werr); err != nil {
		return fmt.Errorf("wallstore: close %s: %w", s.path, err)
	}
	return nil
}

// dsn is a go-sqlite3 URI for path. The path is escaped, so that a '?' or
// '#' in a directory name cannot turn into parameters.
func dsn(abs string, params url.Values) string {
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: params.Encode()}
	return u.String()
}

// inspect checks an existing file without writing to it: it must be a
// healthy SQLite database that is empty or this program's, at a schema
// version this program knows. A missing or empty file is a new database.
func inspect(ctx context.Context, path, abs string, latest int, check bool) error {
	fi, err := os.Stat(abs)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("wallstore: open %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("wallstore: open %s: %w: not a regular file", path, ErrNotDatabase)
	}
	if fi.Size() == 0 {
		return nil
	}
	f, err := os.Open(abs)
	if err != nil {
		return fmt.Errorf("wallstore: open %s: %w", path, err)
	}
	head := make([]byte, 100) // the SQLite header is 100 bytes
	_, err = io.ReadFull(f, head)
	f.Close()
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("wallstore: open %s: read header: %w", path, err)
	}
	if err != nil || string(head[:len(sqliteHeader)]) != sqliteHeader {
		return fmt.Errorf("wallstore: open %s: %w (no SQLite header); refusing to touch it", path, ErrNotDatabase)
	}

	db, err := sql.Open("sqlite3", dsn(abs, inspectParams(abs, head)))
	if err != nil {
		return fmt.Errorf("wallstore: open %s: %w", path, err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("wallstore: open %s: %w; refusing to touch it", path, classify(err))
	}
	defer conn.Close()

	// quick_check reads every page once (integrity_check also cross-checks
	// indexes, much slower); Open pays it so that the wall never appends
	// payments to a damaged file. The benchmarks show what it costs. A
	// reader skips it: it writes nothing, and SQLite reports a damaged
	// page it reads as an error anyway.
	if check {
		if err := quickCheck(ctx, conn, path); err != nil {
			return err
		}
	}

	var appID int64
	if err := conn.QueryRowContext(ctx, "PRAGMA application_id").Scan(&appID); err != nil {
		return fmt.Errorf("wallstore: open %s: read application id: %w", path, classify(err))
	}
	if appID != 0 && appID != schema.ApplicationID {
		return fmt.Errorf("wallstore: open %s: %w: application id %#x belongs to another program", path, ErrForeign, appID)
	}
	var tables, hasMigrations int
	err = conn.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(name = 'schema_migrations'), 0)
		FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\'`).Scan(&tables, &hasMigrations)
	if err != nil {
		return fmt.Errorf("wallstore: open %s: read schema: %w", path, classify(err))
	}
	if hasMigrations == 0 {
		if tables > 0 {
			return fmt.Errorf("wallstore: open %s: %w: it holds %d tables but no schema_migrations", path, ErrForeign, tables)
		}
		return nil
	}
	v, err := version(ctx, conn)
	if err != nil {
		return fmt.Errorf("wallstore: open %s: %w", path, classify(err))
	}
	if v > latest {
		return fmt.Errorf("wallstore: open %s: %w: schema version %d, this program knows up to %d", path, ErrTooNew, v, latest)
	}
	return nil
}

// quickCheck runs SQLite's quick_check and refuses a damaged file.
func quickCheck(ctx context.Context, conn *sql.Conn, path string) error {
	rows, err := conn.QueryContext(ctx, "PRAGMA quick_check(5)")

	if err != nil {
		return fmt.Errorf("wallstore: open %s: check: %w; refusing to touch it", path, classify(err))
	}
	var problems []string
	for rows.Next() {
		var msg string
		if err := rows.Scan(&msg); err != nil {
			rows.Close()
			return fmt.Errorf("wallstore: open %s: check: %w; refusing to touch it", path, classify(err))
		}
		if msg != "ok" {
			problems = append(problems, msg)
		}
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return fmt.Errorf("wallstore: open %s: check: %w; refusing to touch it", path, classify(err))
	}
	if len(problems) > 0 {
		return fmt.Errorf("wallstore: open %s: %w (%s); refusing to touch it", path, ErrCorrupt, strings.Join(problems, "; "))
	}
	return nil
}

// inspectParams opens the check read-only. A read-only connection to a WAL
// database still creates the -wal and -shm files beside it; when no -wal
// exists (no process has the database open and none crashed with it open),
// the file is opened immutable instead, which creates nothing. When one
// exists, another process may be writing, so the check takes the usual
// shared locks.
func inspectParams(abs string, head []byte) url.Values {
	v := url.Values{
		"mode":          {"ro"},
		"_busy_timeout": {fmt.Sprint(busyTimeout.Milliseconds())},
	}
	const walVersion = 2 // header bytes 18 and 19: file format read/write versions
	if head[18] == walVersion && head[19] == walVersion && !exists(abs+"-wal") && !exists(abs+"-journal") {
		v.Set("immutable", "1")
	}
	return v
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return !errors.Is(err, os.ErrNotExist)
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

const migrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name    TEXT NOT NULL,
    applied INTEGER NOT NULL -- unix ms
) STRICT`

func version(ctx context.Context, q queryer) (int, error) {
	var v int
	if err := q.QueryRowContext(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

// migrate applies the migrations the database lacks, each in its own
// transaction together with its row in schema_migrations, so a crash
// leaves the database at one version or the next, never between.
func migrate(ctx context.Context, db *sql.DB, path string, ms []schema.Migration) error {
	if _, err := db.ExecContext(ctx, migrationsTable); err != nil {
		return fmt.Errorf("wallstore: open %s: create schema_migrations: %w", path, classify(err))
	}
	// A newer program may have migrated the file since inspect looked.
	v, err := version(ctx, db)
	if err != nil {
		return fmt.Errorf("wallstore: open %s: %w", path, classify(err))
	}
	if v > len(ms) {
		return fmt.Errorf("wallstore: open %s: %w: schema version %d, this program knows up to %d", path, ErrTooNew, v, len(ms))
	}
	for _, m := range ms {
		if err := applyMigration(ctx, db, m, len(ms)); err != nil {
			return fmt.Errorf("wallstore: open %s: migration %s: %w", path, m.Name, err)
		}
	}
	return nil
}

func applyMigration(ctx context.Context, db *sql.DB, m schema.Migration, latest int) error {
	v, err := version(ctx, db)
	if err != nil {
		return classify(err)
	}
	if v >= m.Version {
		return nil
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return classify(err)
	}
	defer tx.Rollback()
	// Again under the write lock: another process may have migrated since.
	if v, err = version(ctx, tx); err != nil {
		return err
	}
	if v > latest {
		return fmt.Errorf("%w: schema version %d, this program knows up to %d", ErrTooNew, v, latest)
	}
	if v >= m.Version {
		return nil
	}
	if v != m.Version-1 {
		return fmt.Errorf("database is at version %d, cannot apply version %d", v, m.Version)
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (version, name, applied) VALUES (?, ?, ?)",
		m.Version, m.Name, time.Now().UnixMilli()); err != nil {
		return err
	}
	// PRAGMAs take no parameters; both values are integers from this code.
	// user_version mirrors the version for people at the sqlite3 shell.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d; PRAGMA application_id = %d",
		m.Version, schema.ApplicationID)); err != nil {
		return err
	}
	return tx.Commit()
}

// classify makes SQLite's "not a database" and "malformed" errors testable
// with errors.Is, keeping SQLite's message.
func classify(err error) error {
	var se sqlite3.Error
	if errors.As(err, &se) {
		switch se.Code {
		case sqlite3.ErrNotADB:
			return fmt.Errorf("%w: %w", ErrNotDatabase, err)
		case sqlite3.ErrCorrupt:
			return fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
	}
	return err
}

// isConstraint reports whether err is the SQLite constraint failure ext.
func isConstraint(err error, ext sqlite3.ErrNoExtended) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && se.ExtendedCode == ext
}

// ms is a time as stored.
func ms(t time.Time) int64 { return t.UnixMilli() }

// fromMS is a stored time; NULL is the zero time.
func fromMS(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMilli(v.Int64).UTC()
}

// rangeMS is [since, until) in unix ms, a zero time meaning no bound.
func rangeMS(since, until time.Time) (int64, int64) {
	lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
	if !since.IsZero() {
		lo = ms(since)
	}
	if !until.IsZero() {
		hi = ms(until)
	}
	return lo, hi
}
