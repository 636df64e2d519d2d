// Package sqlitedb opens satwatt's SQLite ledgers, the wall's (wallstore)
// and the car's (carstore), the same careful way: it checks an existing
// file before it writes anything, brings the schema up to date one
// migration per transaction, and hands the store a writer and a pool of
// readers. The stores keep their own queries and rules.
//
// Durability. The database runs in WAL mode with synchronous=FULL: every
// commit is fsynced to the write-ahead log before it returns, so a commit
// that returned survives a power cut; with synchronous=NORMAL (the WAL
// default) the last commits may be lost on power loss, though never
// corrupted. Writes take the write lock at BEGIN (_txlock=immediate) so
// that two writers wait for each other instead of failing half-way, and a
// busy timeout makes a second writing process wait its turn, not fail.
//
// Safety of the file. Open checks an existing file read-only before it
// writes anything: a file that is not SQLite, a corrupt database, another
// program's database (the other satwatt ledger included) or a schema newer
// than this code is refused with an error naming the path, and the file is
// left byte for byte as it was.
//
// OpenReadOnly is for the history commands: it never creates, migrates or
// writes the file, and may run beside the program that writes it.
package sqlitedb

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

// Errors callers can test with errors.Is; the stores re-export them.
var (
	ErrInvalid = errors.New("invalid argument")
	// ErrNotFound and ErrSessionEnded are the stores' answers about a
	// session that is missing, or has ended, when a write needs it open.
	ErrNotFound     = errors.New("not found")
	ErrSessionEnded = errors.New("session has ended")
	// ErrReadOnly: a write to a database opened with OpenReadOnly.
	ErrReadOnly    = errors.New("store is open read-only")
	ErrNotDatabase = errors.New("not a SQLite database")
	ErrCorrupt     = errors.New("database is corrupt")
	ErrForeign     = errors.New("another program's database")
	ErrTooNew      = errors.New("database schema is newer than this program")
)

const sqliteHeader = "SQLite format 3\x00"

// BusyTimeout is how long a write waits for another writer (another
// process: a store serialises its own writes).
const BusyTimeout = 5 * time.Second

// readers bounds the read connections: history pages and CLI queries.
const readers = 4

// Kind says which ledger a file must be.
type Kind struct {
	Store         string // prefixes every error: "wallstore"
	Name          string // in messages: "wall", as in "a satwatt wall database"
	Program       string // the program that migrates it: "wallctl"
	ApplicationID int64
	Migrations    func() ([]schema.Migration, error)
	Queries       func() (map[string]string, error)
	// QueryNames are the named queries the store runs; Open checks that
	// the schema has each one, so a missing query fails at start, not in
	// the middle of a session.
	QueryNames []string
}

// DB is an open ledger.
type DB struct {
	Path string            // as given to Open, for messages
	W    *sql.DB           // one connection: every write goes through it, in order; nil when read-only
	R    *sql.DB           // read-only connections, so history never waits for the write lock
	Q    map[string]string // the named queries, all of Kind.QueryNames present
	kind Kind
}

// Open opens the database at path, creating it if it does not exist, and
// brings its schema up to date, one migration per transaction.
// synchronous is SQLite's mode; the stores use FULL, and only their
// benchmarks pass another, to measure what durability costs.
func Open(ctx context.Context, k Kind, path, synchronous string) (*DB, error) {
	if path == "" {
		return nil, fmt.Errorf("%s: open: %w: empty path", k.Store, ErrInvalid)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("%s: open %s: %w", k.Store, path, err)
	}
	migrations, err := k.Migrations()
	if err != nil {
		return nil, fmt.Errorf("%s: open %s: %w", k.Store, path, err)
	}
	q, err := k.queries(path)
	if err != nil {
		return nil, err
	}
	if err := k.inspect(ctx, path, abs, len(migrations), true); err != nil {
		return nil, err
	}

	w, err := sql.Open("sqlite3", DSN(abs, url.Values{
		"_busy_timeout":    {fmt.Sprint(BusyTimeout.Milliseconds())},
		"_foreign_keys":    {"on"},
		"_txlock":          {"immediate"},
		"_synchronous":     {synchronous},
		"_stmt_cache_size": {"64"},
	}))
	if err != nil {
		return nil, fmt.Errorf("%s: open %s: %w", k.Store, path, err)
	}
	// One writer connection: SQLite has one write lock anyway, and queuing
	// in Go is cheaper and fairer than spinning on SQLITE_BUSY.
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	fail := func(err error) (*DB, error) {
		w.Close()
		return nil, err
	}
	// Only now, with the file checked, may anything write to it.
	var mode string
	if err := w.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode); err != nil {
		return fail(fmt.Errorf("%s: open %s: set WAL mode: %w", k.Store, path, Classify(err)))
	}
	if !strings.EqualFold(mode, "wal") {
		return fail(fmt.Errorf("%s: open %s: journal mode is %q, want wal", k.Store, path, mode))
	}
	if err := k.migrate(ctx, w, path, migrations); err != nil {
		return fail(err)
	}

	r, err := openReader(ctx, abs)
	if err != nil {
		return fail(fmt.Errorf("%s: open %s for reading: %w", k.Store, path, err))
	}
	return &DB{Path: path, W: w, R: r, Q: q, kind: k}, nil
}

// OpenReadOnly opens an existing database for reading only: it never
// creates, migrates or writes the file, and Writer fails with ErrReadOnly.
// The file gets the same checks as with Open, but for quick_check, and its
// schema must be at this program's version.
func OpenReadOnly(ctx context.Context, k Kind, path string) (*DB, error) {
	if path == "" {
		return nil, fmt.Errorf("%s: open read-only: %w: empty path", k.Store, ErrInvalid)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("%s: open %s: %w", k.Store, path, err)
	}
	migrations, err := k.Migrations()
	if err != nil {
		return nil, fmt.Errorf("%s: open %s: %w", k.Store, path, err)
	}
	latest := len(migrations)
	q, err := k.queries(path)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(abs); err != nil {
		return nil, fmt.Errorf("%s: open %s read-only: %w", k.Store, path, err)
	}
	if err := k.inspect(ctx, path, abs, latest, false); err != nil {
		return nil, err
	}
	r, err := openReader(ctx, abs)
	if err != nil {
		return nil, fmt.Errorf("%s: open %s read-only: %w", k.Store, path, Classify(err))
	}
	var tables int
	if err := r.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'").Scan(&tables); err != nil {
		r.Close()
		return nil, fmt.Errorf("%s: open %s read-only: %w", k.Store, path, Classify(err))
	}
	v := 0
	if tables > 0 {
		if v, err = version(ctx, r); err != nil {
			r.Close()
			return nil, fmt.Errorf("%s: open %s read-only: %w", k.Store, path, Classify(err))
		}
	}
	if v != latest {
		r.Close()
		if v > latest {
			return nil, fmt.Errorf("%s: open %s read-only: %w: schema version %d, this program knows up to %d", k.Store, path, ErrTooNew, v, latest)
		}
		return nil, fmt.Errorf("%s: open %s read-only: schema version %d, want %d: let %s open it read-write once to migrate it", k.Store, path, v, latest, k.Program)
	}
	return &DB{Path: path, R: r, Q: q, kind: k}, nil
}

func (k Kind) queries(path string) (map[string]string, error) {
	q, err := k.Queries()
	if err != nil {
		return nil, fmt.Errorf("%s: open %s: %w", k.Store, path, err)
	}
	for _, n := range k.QueryNames {
		if _, ok := q[n]; !ok {
			return nil, fmt.Errorf("%s: open %s: schema has no query %q", k.Store, path, n)
		}
	}
	return q, nil
}

// openReader opens the pool of read-only connections.
func openReader(ctx context.Context, abs string) (*sql.DB, error) {
	r, err := sql.Open("sqlite3", DSN(abs, url.Values{
		"mode":             {"ro"},
		"_busy_timeout":    {fmt.Sprint(BusyTimeout.Milliseconds())},
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

// Writer is the write pool, or ErrReadOnly.
func (db *DB) Writer() (*sql.DB, error) {
	if db.W == nil {
		return nil, ErrReadOnly
	}
	return db.W, nil
}

// Write runs fn in a write transaction (BEGIN IMMEDIATE) and commits it;
// on any error it rolls back and returns the error as it is, for the
// caller to say what failed.
func (db *DB) Write(ctx context.Context, fn func(*sql.Tx) error) error {
	w, err := db.Writer()
	if err != nil {
		return err
	}
	tx, err := w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Close closes the database. The last connection to close checkpoints the
// write-ahead log into the main file.
func (db *DB) Close() error {
	rerr := db.R.Close()
	var werr error
	if db.W != nil {
		werr = db.W.Close()
	}
	if err := errors.Join(rerr, werr); err != nil {
		return fmt.Errorf("%s: close %s: %w", db.kind.Store, db.Path, err)
	}
	return nil
}

// DSN is a go-sqlite3 URI for the absolute path abs. The path is escaped,
// so that a '?' or '#' in a directory name cannot turn into parameters.
func DSN(abs string, params url.Values) string {
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: params.Encode()}
	return u.String()
}

// inspect checks an existing file without writing to it: it must be a
// healthy SQLite database that is empty or of this kind, at a schema
// version this program knows. A missing or empty file is a new database.
func (k Kind) inspect(ctx context.Context, path, abs string, latest int, check bool) error {
	fi, err := os.Stat(abs)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: open %s: %w", k.Store, path, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: open %s: %w: not a regular file", k.Store, path, ErrNotDatabase)
	}
	if fi.Size() == 0 {
		return nil
	}
	f, err := os.Open(abs)
	if err != nil {
		return fmt.Errorf("%s: open %s: %w", k.Store, path, err)
	}
	head := make([]byte, 100) // the SQLite header is 100 bytes
	_, err = io.ReadFull(f, head)
	f.Close()
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%s: open %s: read header: %w", k.Store, path, err)
	}
	if err != nil || string(head[:len(sqliteHeader)]) != sqliteHeader {
		return fmt.Errorf("%s: open %s: %w (no SQLite header); refusing to touch it", k.Store, path, ErrNotDatabase)
	}

	db, err := sql.Open("sqlite3", DSN(abs, inspectParams(abs, head)))
	if err != nil {
		return fmt.Errorf("%s: open %s: %w", k.Store, path, err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("%s: open %s: %w; refusing to touch it", k.Store, path, Classify(err))
	}
	defer conn.Close()

	// quick_check reads every page once (integrity_check also cross-checks
	// indexes, much slower); Open pays it so that no payment is appended
	// to a damaged file. The wall's benchmarks show what it costs. A
	// reader skips it: it writes nothing, and SQLite reports a damaged
	// page it reads as an error anyway.
	if check {
		if err := k.quickCheck(ctx, conn, path); err != nil {
			return err
		}
	}

	var appID int64
	if err := conn.QueryRowContext(ctx, "PRAGMA application_id").Scan(&appID); err != nil {
		return fmt.Errorf("%s: open %s: read application id: %w", k.Store, path, Classify(err))
	}
	if appID != 0 && appID != k.ApplicationID {
		return fmt.Errorf("%s: open %s: %w: application id %#x, a satwatt %s database has %#x", k.Store, path, ErrForeign, appID, k.Name, k.ApplicationID)
	}
	var tables, hasMigrations int
	err = conn.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(name = 'schema_migrations'), 0)
		FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\'`).Scan(&tables, &hasMigrations)
	if err != nil {
		return fmt.Errorf("%s: open %s: read schema: %w", k.Store, path, Classify(err))
	}
	if hasMigrations == 0 {
		if tables > 0 {
			return fmt.Errorf("%s: open %s: %w: it holds %d tables but no schema_migrations", k.Store, path, ErrForeign, tables)
		}
		return nil
	}
	v, err := version(ctx, conn)
	if err != nil {
		return fmt.Errorf("%s: open %s: %w", k.Store, path, Classify(err))
	}
	if v > latest {
		return fmt.Errorf("%s: open %s: %w: schema version %d, this program knows up to %d", k.Store, path, ErrTooNew, v, latest)
	}
	return nil
}

// quickCheck runs SQLite's quick_check and refuses a damaged file.
func (k Kind) quickCheck(ctx context.Context, conn *sql.Conn, path string) error {
	fail := func(err error) error {
		return fmt.Errorf("%s: open %s: check: %w; refusing to touch it", k.Store, path, Classify(err))
	}
	rows, err := conn.QueryContext(ctx, "PRAGMA quick_check(5)")
	if err != nil {
		return fail(err)
	}
	var problems []string
	for rows.Next() {
		var msg string
		if err := rows.Scan(&msg); err != nil {
			rows.Close()
			return fail(err)
		}
		if msg != "ok" {
			problems = append(problems, msg)
		}
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return fail(err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s: open %s: %w (%s); refusing to touch it", k.Store, path, ErrCorrupt, strings.Join(problems, "; "))
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
		"_busy_timeout": {fmt.Sprint(BusyTimeout.Milliseconds())},
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

// MigrationsTable records the versions applied to a database.
const MigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
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
func (k Kind) migrate(ctx context.Context, db *sql.DB, path string, ms []schema.Migration) error {
	if _, err := db.ExecContext(ctx, MigrationsTable); err != nil {
		return fmt.Errorf("%s: open %s: create schema_migrations: %w", k.Store, path, Classify(err))
	}
	// A newer program may have migrated the file since inspect looked.
	v, err := version(ctx, db)
	if err != nil {
		return fmt.Errorf("%s: open %s: %w", k.Store, path, Classify(err))
	}
	if v > len(ms) {
		return fmt.Errorf("%s: open %s: %w: schema version %d, this program knows up to %d", k.Store, path, ErrTooNew, v, len(ms))
	}
	for _, m := range ms {
		if err := k.applyMigration(ctx, db, m, len(ms)); err != nil {
			return fmt.Errorf("%s: open %s: migration %s: %w", k.Store, path, m.Name, err)
		}
	}
	return nil
}

func (k Kind) applyMigration(ctx context.Context, db *sql.DB, m schema.Migration, latest int) error {
	v, err := version(ctx, db)
	if err != nil {
		return Classify(err)
	}
	if v >= m.Version {
		return nil
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return Classify(err)
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
		m.Version, k.ApplicationID)); err != nil {
		return err
	}
	return tx.Commit()
}

// Classify makes SQLite's "not a database" and "malformed" errors testable
// with errors.Is, keeping SQLite's message.
func Classify(err error) error {
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

// IsConstraint reports whether err is the SQLite constraint failure ext.
func IsConstraint(err error, ext sqlite3.ErrNoExtended) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && se.ExtendedCode == ext
}

// MS is a time as stored: unix milliseconds.
func MS(t time.Time) int64 { return t.UnixMilli() }

// FromMS is a stored time, in UTC; NULL is the zero time.
func FromMS(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMilli(v.Int64).UTC()
}

// RangeMS is [since, until) in unix ms, a zero time meaning no bound: the
// smallest and largest integers, so that one indexed query serves every
// range.
func RangeMS(since, until time.Time) (int64, int64) {
	lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
	if !since.IsZero() {
		lo = MS(since)
	}
	if !until.IsZero() {
		hi = MS(until)
	}
	return lo, hi
}

// DescribeRange prints [since, until) for messages.
func DescribeRange(since, until time.Time) string {
	f := func(t time.Time) string {
		if t.IsZero() {
			return "…"
		}
		return t.Format(time.RFC3339)
	}
	return "[" + f(since) + ", " + f(until) + ")"
}

// NormHex checks a 32-byte value in hex and returns it in lower case, the
// form the schemas store. Its message never repeats the value: it may be
// a preimage, and errors end up in logs.
func NormHex(v, what string) (string, error) {
	if len(v) != 64 {
		return "", fmt.Errorf("%w: %s is %d characters, want 64 hex digits", ErrInvalid, what, len(v))
	}
	v = strings.ToLower(v)
	for i := 0; i < len(v); i++ {
		if c := v[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", fmt.Errorf("%w: %s is not hex", ErrInvalid, what)
		}
	}
	return v, nil
}

// Short abbreviates a payment hash for messages.
func Short(hash string) string {
	if len(hash) > 8 {
		return hash[:8] + "…"
	}
	if hash == "" {
		return `""`
	}
	return hash
}

// SessionEnded runs query (one row: whether session :id has ended) in tx;
// a session that does not exist is ErrNotFound.
func SessionEnded(ctx context.Context, tx *sql.Tx, query, id string) (bool, error) {
	var ended bool
	err := tx.QueryRowContext(ctx, query, sql.Named("id", id)).Scan(&ended)
	if errors.Is(err, sql.ErrNoRows) {
		return false, ErrNotFound
	}
	return ended, err
}

// WhyNotOpen explains why an update of a running session changed no row.
func WhyNotOpen(ctx context.Context, tx *sql.Tx, query, id string) error {
	ended, err := SessionEnded(ctx, tx, query, id)
	switch {
	case err != nil:
		return err
	case ended:
		return ErrSessionEnded
	}
	return errors.New("session is open but was not updated")
}
