package wallstore

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	schema "satwatt/sql"
)

func TestOpenMigratesAndReopens(t *testing.T) {
	latest, err := schema.Latest()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		prepare func(t *testing.T, dir string) string // returns the path to open
	}{
		{"missing file", func(t *testing.T, dir string) string { return filepath.Join(dir, "wall.db") }},
		{"empty file", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "wall.db")
			if err := os.WriteFile(p, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}},
		{"odd characters in the path", func(t *testing.T, dir string) string {
			d := filepath.Join(dir, "a dir?with#odd%chars")
			if err := os.Mkdir(d, 0o700); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(d, "wall.db")
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxT(t)
			path := tc.prepare(t, t.TempDir())
			s, err := Open(ctx, path)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			// The writer's settings are the product's durability settings.
			for pragma, want := range map[string]string{
				"journal_mode": "wal", "synchronous": "2", "foreign_keys": "1", "busy_timeout": "5000",
			} {
				var got string
				if err := s.w.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
					t.Fatal(err)
				}
				if got != want {
					t.Errorf("PRAGMA %s = %s, want %s", pragma, got, want)
				}
			}
			if err := s.SetSetting(ctx, "price_msat_per_wh", "250"); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if _, err := os.Stat(path); err != nil {
				t.Fatalf("the database is not at the path given: %v", err)
			}

			db := rawDB(t, path, false)
			var versions, maxVersion, userVersion, appID int64
			var firstApplied int64
			if err := db.QueryRow("SELECT count(*), max(version), min(applied) FROM schema_migrations").Scan(&versions, &maxVersion, &firstApplied); err != nil {
				t.Fatal(err)
			}
			if err := db.QueryRow("PRAGMA user_version").Scan(&userVersion); err != nil {
				t.Fatal(err)
			}
			if err := db.QueryRow("PRAGMA application_id").Scan(&appID); err != nil {
				t.Fatal(err)
			}
			if versions != int64(latest) || maxVersion != int64(latest) || userVersion != int64(latest) || appID != schema.ApplicationID {
				t.Fatalf("after a fresh open: %d migrations up to %d, user_version %d, application_id %#x; want %d, %d, %d, %#x",
					versions, maxVersion, userVersion, appID, latest, latest, latest, schema.ApplicationID)
			}
			db.Close()

			// Re-open: nothing is applied again and the data is there.
			s, err = Open(ctx, path)
			if err != nil {
				t.Fatalf("re-Open: %v", err)
			}
			defer s.Close()
			if v, err := s.GetSetting(ctx, "price_msat_per_wh"); err != nil || v != "250" {
				t.Fatalf("setting after re-open = %q, %v", v, err)
			}
			var again, applied int64
			if err := s.r.QueryRowContext(ctx, "SELECT count(*), min(applied) FROM schema_migrations").Scan(&again, &applied); err != nil {
				t.Fatal(err)
			}
			if again != versions || applied != firstApplied {
				t.Errorf("re-open changed schema_migrations: %d rows (first applied %d), was %d (%d)", again, applied, versions, firstApplied)
			}
		})
	}
}

func TestOpenRefusesNewerVersion(t *testing.T) {
	ctx := ctxT(t)
	latest, err := schema.Latest()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "wall.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	mustOpenSession(t, s, "s1", t0)
	// A newer wallctl has been here.
	if _, err := s.w.ExecContext(ctx, "INSERT INTO schema_migrations (version, name, applied) VALUES (?, 'from_the_future', 0)", latest+1); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, dir)
	_, err = Open(ctx, path)
	if !errors.Is(err, ErrTooNew) {
		t.Fatalf("Open of a version %d database = %v, want ErrTooNew", latest+1, err)
	}
	if !containsAll(err.Error(), path, fmt.Sprint(latest+1)) {
		t.Errorf("error %q should name the path and the version", err)
	}
	sameFiles(t, before, snapshot(t, dir))
}

// wallDB makes a real wall database with some history and returns its bytes.
func wallDB(t *testing.T) []byte {
	t.Helper()
	s, path := openStore(t)
	for i := range 30 {
		id := fmt.Sprintf("s%02d", i)
		mustOpenSession(t, s, id, t0.Add(time.Duration(i)*time.Hour))
		mustPay(t, s, id, id, 7500, 7500, t0.Add(time.Duration(i)*time.Hour))
		if err := s.EndSession(ctxT(t), id, t0.Add(time.Duration(i)*time.Hour+time.Minute), ReasonUnplugged, 30_000); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOpenRefusesBadFiles(t *testing.T) {
	fixture := func(name string) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			b, err := os.ReadFile(filepath.Join("testdata", t.Name()[:strings.Index(t.Name(), "/")], name))
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
	// foreign makes another program's SQLite database.
	foreign := func(setup string) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			p := filepath.Join(t.TempDir(), "other.db")
			db := rawDB(t, p, true)
			if _, err := db.Exec(setup); err != nil {
				t.Fatal(err)
			}
			db.Close()
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
	cases := []struct {
		name    string
		content func(t *testing.T) []byte
		want    error
	}{
		{"text file", fixture("notes.txt"), ErrNotDatabase},
		{"random bytes", fixture("random.bin"), ErrNotDatabase},
		{"SQLite magic then garbage", fixture("header-only.db"), ErrNotDatabase},
		{"shorter than a header", func(*testing.T) []byte { return []byte("SQLite format 3\x00") }, ErrNotDatabase},
		{"wall database truncated", func(t *testing.T) []byte { b := wallDB(t); return b[:len(b)/2] }, ErrCorrupt},
		{"wall database with a garbled page", func(t *testing.T) []byte {
			b := wallDB(t)
			// Page 2 (the first table's root): overwrite its b-tree header.
			for i := 4096; i < 4096+64; i++ {
				b[i] = 0xA5
			}
			return b
		}, ErrCorrupt},
		{"another program's tables", foreign("CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER)"), ErrForeign},
		{"another program's application id", foreign("PRAGMA application_id = 1234"), ErrForeign},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "wall.db")
			if err := os.WriteFile(path, tc.content(t), 0o600); err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, dir)
			s, err := Open(ctxT(t), path)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("Open = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the path", err)
			}
			sameFiles(t, before, snapshot(t, dir))
		})
	}
}

func TestOpenRefusesDirectory(t *testing.T) {
	dir := t.TempDir()
	_, err := Open(ctxT(t), dir)
	if !errors.Is(err, ErrNotDatabase) {
		t.Fatalf("Open(dir) = %v, want ErrNotDatabase", err)
	}
}

// crashChildEnv tells the test binary, run again as a child, to write to
// the database it names and die without closing it.
const crashChildEnv = "WALLSTORE_CRASH_CHILD_DB"

func TestOpenSessionsAfterCrash(t *testing.T) {
	if path := os.Getenv(crashChildEnv); path != "" {
		crashChild(t, path)
		return
	}
	cases := []struct {
		name  string
		crash func(t *testing.T, path string)
	}{
		{"closed without ending the session", func(t *testing.T, path string) {
			s, err := Open(ctxT(t), path)
			if err != nil {
				t.Fatal(err)
			}
			writeCrashWork(t, s)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		}},
		{"process died without closing", func(t *testing.T, path string) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestOpenSessionsAfterCrash$", "-test.count=1")
			cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != crashExitCode {
				t.Fatalf("child: %v (want exit code %d)\n%s", err, crashExitCode, out)
			}
			// The child died with its commits in the write-ahead log only.
			if fi, err := os.Stat(path + "-wal"); err != nil || fi.Size() == 0 {
				t.Fatalf("no write-ahead log left by the crash: %v", err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxT(t)
			path := filepath.Join(t.TempDir(), "wall.db")
			tc.crash(t, path)

			s, err := Open(ctx, path)
			if err != nil {
				t.Fatalf("re-Open after the crash: %v", err)
			}
			defer s.Close()
			open, err := s.OpenSessions(ctx, 1)
			if err != nil {
				t.Fatal(err)
			}
			if len(open) != 1 || open[0].ID != "crashed" {
				t.Fatalf("OpenSessions = %+v, want the one session left open", open)
			}
			got := open[0]
			if got.State != StateEnergising || got.DeliveredMWh != 12_345 || !got.UpdatedAt.Equal(t0.Add(time.Minute)) ||
				got.Ended() || !got.Offer.Equal(testOffer("crashed")) || got.EVSEStartMWh != 1_000_000 {
				t.Errorf("open session after the crash = %+v", got)
			}
			if paid, err := s.PaidMsat(ctx, "crashed"); err != nil || paid != 7600 {
				t.Errorf("PaidMsat after the crash = %d, %v; want 7600 (the settlement survived)", paid, err)
			}
			inv, err := s.OpenInvoices(ctx, 1)
			if err != nil {
				t.Fatal(err)
			}
			if _, hash := payment("crash-open"); len(inv) != 1 || inv[0].PaymentHash != hash || inv[0].AmountMsat != 2500 {
				t.Errorf("OpenInvoices after the crash = %+v, want the one unpaid invoice", inv)
			}
			// The wall's recovery: end it, and it is no longer open.
			if err := s.EndSession(ctx, "crashed", t0.Add(time.Hour), ReasonWallShutdown, 12_345); err != nil {
				t.Fatal(err)
			}
			if open, err := s.OpenSessions(ctx, 1); err != nil || len(open) != 0 {
				t.Errorf("OpenSessions after ending = %+v, %v; want none", open, err)
			}
		})
	}
}

const crashExitCode = 3

func crashChild(t *testing.T, path string) {
	s, err := Open(ctxT(t), path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	writeCrashWork(t, s)
	// Die as a power cut or kill -9 would leave things: no Close, no
	// checkpoint, no deferred functions.
	os.Exit(crashExitCode)
}

// writeCrashWork is what the wall wrote before it crashed.
func writeCrashWork(t *testing.T, s *Store) {
	ctx := ctxT(t)
	mustOpenSession(t, s, "crashed", t0)
	mustPay(t, s, "crashed", "crash-paid", 7500, 7600, t0)
	_, hash := payment("crash-open")
	if err := s.AddInvoice(ctx, Invoice{PaymentHash: hash, SessionID: "crashed", AmountMsat: 2500, Bolt11: "lnbcrt-open", CreatedAt: t0.Add(50 * time.Second), ExpiresAt: t0.Add(10 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordProgress(ctx, "crashed", t0.Add(time.Minute), StateEnergising, 12_345, 7_000); err != nil {
		t.Fatal(err)
	}
}

func TestOpenReadOnly(t *testing.T) {
	latest, err := schema.Latest()
	if err != nil {
		t.Fatal(err)
	}
	// current makes a database at this program's version with one session.
	current := func(t *testing.T, path string) {
		s, err := Open(ctxT(t), path)
		if err != nil {
			t.Fatal(err)
		}
		mustOpenSession(t, s, "s1", t0)
		mustPay(t, s, "s1", "p1", 7500, 7500, t0)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name    string
		prepare func(t *testing.T, path string)
		want    error  // nil: opens
		wantMsg string // in the error
	}{
		{"current version", current, nil, ""},
		{"missing file", func(*testing.T, string) {}, os.ErrNotExist, ""},
		{"not a database", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("hello"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, ErrNotDatabase, ""},
		{"newer version", func(t *testing.T, path string) {
			current(t, path)
			db := rawDB(t, path, true)
			if _, err := db.Exec("INSERT INTO schema_migrations VALUES (?, 'future', 0)", latest+1); err != nil {
				t.Fatal(err)
			}
			db.Close()
		}, ErrTooNew, ""},
		{"older version", func(t *testing.T, path string) {
			ms, err := schema.Migrations()
			if err != nil {
				t.Fatal(err)
			}
			db := rawDB(t, path, true)
			if _, err := db.Exec(migrationsTable + ";" + ms[0].SQL + "; INSERT INTO schema_migrations VALUES (1, 'old', 0)"); err != nil {
				t.Fatal(err)
			}
			db.Close()
		}, nil, "migrate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxT(t)
			path := filepath.Join(t.TempDir(), "wall.db")
			tc.prepare(t, path)
			before, _ := os.ReadFile(path)
			s, err := OpenReadOnly(ctx, path)
			after, _ := os.ReadFile(path)
			if string(before) != string(after) {
				t.Error("OpenReadOnly changed the file")
			}
			if tc.want != nil || tc.wantMsg != "" {
				if err == nil {
					s.Close()
					t.Fatal("OpenReadOnly succeeded")
				}
				if (tc.want != nil && !errors.Is(err, tc.want)) || !strings.Contains(err.Error(), tc.wantMsg) || !strings.Contains(err.Error(), path) {
					t.Fatalf("OpenReadOnly = %v, want %v mentioning %q and the path", err, tc.want, tc.wantMsg)
				}
				if _, serr := os.Stat(path); tc.want == os.ErrNotExist && serr == nil {
					t.Error("OpenReadOnly created the missing file")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if _, tot, err := s.History(ctx, HistoryQuery{}); err != nil || tot.Sessions != 1 || tot.PaidMsat != 7500 {
				t.Fatalf("History = %+v, %v", tot, err)
			}
			writes := map[string]error{
				"OpenSession":    s.OpenSession(ctx, SessionOpen{ID: "s2", StartedAt: t0, Offer: testOffer("s2")}),
				"RecordProgress": s.RecordProgress(ctx, "s1", t0, StateEnergising, 1, 1),
				"EndSession":     s.EndSession(ctx, "s1", t0, ReasonUnplugged, 1),
				"AddEvent":       s.AddEvent(ctx, "", t0, "x", ""),
				"SetSetting":     s.SetSetting(ctx, "k", "v"),
			}
			for name, err := range writes {
				if !errors.Is(err, ErrReadOnly) {
					t.Errorf("%s on a read-only store = %v, want ErrReadOnly", name, err)
				}
			}
			if after, _ := os.ReadFile(path); string(before) != string(after) {
				t.Error("a read-only store changed the file")
			}
		})
	}
}
