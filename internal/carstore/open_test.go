package carstore

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"satwatt/internal/sqlitedb"
	"satwatt/internal/wallstore"
	schema "satwatt/sql"
)

func TestOpenMigratesAndReopens(t *testing.T) {
	latest, err := schema.CarLatest()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		prepare func(t *testing.T, dir string) string // returns the path to open
	}{
		{"missing file", func(t *testing.T, dir string) string { return filepath.Join(dir, "car.db") }},
		{"empty file", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "car.db")
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
			return filepath.Join(d, "car.db")
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
				if err := s.db.W.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
					t.Fatal(err)
				}
				if got != want {
					t.Errorf("PRAGMA %s = %s, want %s", pragma, got, want)
				}
			}
			mustOpenSession(t, s, "s1", t0)
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}

			db := rawDB(t, path, false)
			var versions, userVersion, appID int64
			if err := db.QueryRow("SELECT count(*) FROM schema_migrations").Scan(&versions); err != nil {
				t.Fatal(err)
			}
			if err := db.QueryRow("PRAGMA user_version").Scan(&userVersion); err != nil {
				t.Fatal(err)
			}
			if err := db.QueryRow("PRAGMA application_id").Scan(&appID); err != nil {
				t.Fatal(err)
			}
			if versions != int64(latest) || userVersion != int64(latest) || appID != schema.CarApplicationID {
				t.Fatalf("after a fresh open: %d migrations, user_version %d, application_id %#x; want %d, %d, %#x",
					versions, userVersion, appID, latest, latest, schema.CarApplicationID)
			}
			db.Close()

			// Re-open: nothing is applied again and the data is there.
			s, err = Open(ctx, path)
			if err != nil {
				t.Fatalf("re-Open: %v", err)
			}
			defer s.Close()
			if open, err := s.OpenSessions(ctx); err != nil || len(open) != 1 || open[0].ID != "s1" {
				t.Fatalf("OpenSessions after re-open = %+v, %v", open, err)
			}
			var again int64
			if err := s.r.QueryRowContext(ctx, "SELECT count(*) FROM schema_migrations").Scan(&again); err != nil || again != versions {
				t.Errorf("re-open left %d schema_migrations rows (%v), was %d", again, err, versions)
			}
		})
	}
}

// wallLedger makes a file of the other satwatt ledger: the wall's.
func wallLedger(t *testing.T) []byte {
	p := filepath.Join(t.TempDir(), "wall.db")
	w, err := wallstore.Open(ctxT(t), p)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.SetSetting(ctxT(t), "k", "v"); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// carDB makes a real car database with some history and returns its bytes.
func carDB(t *testing.T) []byte {
	t.Helper()
	s, path := openStore(t)
	for i := range 30 {
		id := fmt.Sprintf("s%02d", i)
		at := t0.Add(time.Duration(i) * time.Hour)
		mustOpenSession(t, s, id, at)
		mustPay(t, s, id, id, 7500, 3, at)
		if err := s.EndSession(ctxT(t), SessionEnd{ID: id, At: at.Add(time.Minute), Reason: "unplugged", SoCPermille: 800, DeliveredMWh: 30_000, MeasuredMWh: 29_000}); err != nil {
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
			b, err := os.ReadFile(filepath.Join("testdata", "TestOpenRefusesBadFiles", name))
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
		msg     string // also in the message
	}{
		{"text file", fixture("notes.txt"), ErrNotDatabase, "no SQLite header"},
		{"random bytes", fixture("random.bin"), ErrNotDatabase, ""},
		{"SQLite magic then garbage", fixture("header-only.db"), ErrNotDatabase, ""},
		{"shorter than a header", func(*testing.T) []byte { return []byte("SQLite format 3\x00") }, ErrNotDatabase, ""},
		{"car database truncated", func(t *testing.T) []byte { b := carDB(t); return b[:len(b)/2] }, ErrCorrupt, ""},
		{"car database with a garbled page", func(t *testing.T) []byte {
			b := carDB(t)
			// Page 2 (the first table's root): overwrite its b-tree header.
			for i := 4096; i < 4096+64; i++ {
				b[i] = 0xA5
			}
			return b
		}, ErrCorrupt, ""},
		{"the wall's ledger", wallLedger, ErrForeign, fmt.Sprintf("%#x", schema.ApplicationID)},
		{"another program's tables", foreign("CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER)"), ErrForeign, "no schema_migrations"},
		{"another program's application id", foreign("PRAGMA application_id = 1234"), ErrForeign, "0x4d2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "car.db")
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
			if !containsAll(err.Error(), "carstore: open", path, tc.msg) {
				t.Errorf("error %q does not name the store, the path and %q", err, tc.msg)
			}
			sameFiles(t, before, snapshot(t, dir))
			// Read-only, the same refusal.
			if s, err := OpenReadOnly(ctxT(t), path); !errors.Is(err, tc.want) {
				if s != nil {
					s.Close()
				}
				t.Errorf("OpenReadOnly = %v, want %v", err, tc.want)
			}
			sameFiles(t, before, snapshot(t, dir))
		})
	}
	// The other way round: the wall's store refuses the car's ledger.
	dir := t.TempDir()
	path := filepath.Join(dir, "car.db")
	if err := os.WriteFile(path, carDB(t), 0o600); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, dir)
	if w, err := wallstore.Open(ctxT(t), path); !errors.Is(err, wallstore.ErrForeign) {
		if w != nil {
			w.Close()
		}
		t.Errorf("wallstore.Open(car.db) = %v, want ErrForeign", err)
	}
	sameFiles(t, before, snapshot(t, dir))
}

func TestOpenRefusesDirectoryAndEmptyPath(t *testing.T) {
	if _, err := Open(ctxT(t), t.TempDir()); !errors.Is(err, ErrNotDatabase) {
		t.Errorf("Open(dir) = %v, want ErrNotDatabase", err)
	}
	if _, err := Open(ctxT(t), ""); !errors.Is(err, ErrInvalid) {
		t.Errorf(`Open("") = %v, want ErrInvalid`, err)
	}
	if _, err := OpenReadOnly(ctxT(t), ""); !errors.Is(err, ErrInvalid) {
		t.Errorf(`OpenReadOnly("") = %v, want ErrInvalid`, err)
	}
}

func TestOpenRefusesNewerVersion(t *testing.T) {
	ctx := ctxT(t)
	latest, err := schema.CarLatest()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "car.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	mustOpenSession(t, s, "s1", t0)
	// A newer vehiclegw has been here.
	if _, err := s.db.W.ExecContext(ctx, "INSERT INTO schema_migrations (version, name, applied) VALUES (?, 'from_the_future', 0)", latest+1); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, dir)
	for name, open := range map[string]func() (*Store, error){
		"Open":         func() (*Store, error) { return Open(ctx, path) },
		"OpenReadOnly": func() (*Store, error) { return OpenReadOnly(ctx, path) },
	} {
		_, err = open()
		if !errors.Is(err, ErrTooNew) || !containsAll(err.Error(), path, fmt.Sprint(latest+1)) {
			t.Errorf("%s of a version %d database = %v, want ErrTooNew naming the path and the version", name, latest+1, err)
		}
	}
	sameFiles(t, before, snapshot(t, dir))
}

func TestOpenReadOnly(t *testing.T) {
	cases := []struct {
		name    string
		prepare func(t *testing.T, path string)
		want    error  // nil: opens
		wantMsg string // in the error
	}{
		{"current version", func(t *testing.T, path string) {
			s, err := Open(ctxT(t), path)
			if err != nil {
				t.Fatal(err)
			}
			mustOpenSession(t, s, "s1", t0)
			mustPay(t, s, "s1", "p1", 7500, 2, t0)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		}, nil, ""},
		{"missing file", func(*testing.T, string) {}, os.ErrNotExist, ""},
		{"not a database", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("hello"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, ErrNotDatabase, ""},
		{"older version", func(t *testing.T, path string) {
			ms, err := schema.CarMigrations()
			if err != nil {
				t.Fatal(err)
			}
			db := rawDB(t, path, true)
			if _, err := db.Exec(sqlitedb.MigrationsTable + ";" + ms[0].SQL + "; INSERT INTO schema_migrations VALUES (1, 'old', 0)"); err != nil {
				t.Fatal(err)
			}
			db.Close()
		}, nil, "let vehiclegw open it read-write once"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxT(t)
			path := filepath.Join(t.TempDir(), "car.db")
			tc.prepare(t, path)
			before, _ := os.ReadFile(path)
			s, err := OpenReadOnly(ctx, path)
			if after, _ := os.ReadFile(path); string(before) != string(after) {
				t.Error("OpenReadOnly changed the file")
			}
			if tc.want != nil || tc.wantMsg != "" {
				if err == nil {
					s.Close()
					t.Fatal("OpenReadOnly succeeded")
				}
				if (tc.want != nil && !errors.Is(err, tc.want)) || !containsAll(err.Error(), tc.wantMsg, path) {
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
			if _, tot, err := s.History(ctx, HistoryQuery{}); err != nil || tot.Sessions != 1 || tot.PaidMsat != 7500 || tot.FeeMsat != 2 {
				t.Fatalf("History = %+v, %v", tot, err)
			}
			_, h := payment("p2")
			writes := map[string]error{
				"OpenSession":   s.OpenSession(ctx, SessionOpen{Offer: testOffer("s2"), WallURL: wallURL, StartedAt: t0, SoCPermille: SoCUnknown}),
				"AddInvoice":    s.AddInvoice(ctx, Invoice{PaymentHash: h, SessionID: "s1", AmountMsat: 1, Bolt11: "x", RequestedAt: t0}),
				"RecordPayment": s.RecordPayment(ctx, PaymentOutcome{PaymentHash: h, Status: StatusInFlight, At: t0}),
				"RecordRefusal": s.RecordRefusal(ctx, Refusal{SessionID: "s1", At: t0, Reason: "payee mismatch"}),
				"RecordMeter":   s.RecordMeter(ctx, MeterSample{SessionID: "s1", At: t0, DeliveredMWh: 1, MeasuredMWh: 1}),
				"EndSession":    s.EndSession(ctx, SessionEnd{ID: "s1", At: t0, Reason: "unplugged", SoCPermille: SoCUnknown}),
				"AddEvent":      s.AddEvent(ctx, "", t0, "x", ""),
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

// crashChildEnv tells the test binary, run again as a child, to write to
// the database it names and die without closing it.
const crashChildEnv = "CARSTORE_CRASH_CHILD_DB"

const crashExitCode = 3

// TestRecoveryAfterCrash: what the car finds after a crash, closed or not:
// the open session, and every payment whose outcome only lnd knows.
func TestRecoveryAfterCrash(t *testing.T) {
	if path := os.Getenv(crashChildEnv); path != "" {
		s, err := Open(ctxT(t), path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		writeCrashWork(t, s)
		// Die as a power cut or kill -9 would: no Close, no checkpoint.
		os.Exit(crashExitCode)
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
			cmd := exec.Command(os.Args[0], "-test.run=^TestRecoveryAfterCrash$", "-test.count=1")
			cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != crashExitCode {
				t.Fatalf("child: %v (want exit code %d)\n%s", err, crashExitCode, out)
			}
			if fi, err := os.Stat(path + "-wal"); err != nil || fi.Size() == 0 {
				t.Fatalf("no write-ahead log left by the crash: %v", err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxT(t)
			path := filepath.Join(t.TempDir(), "car.db")
			tc.crash(t, path)

			s, err := Open(ctx, path)
			if err != nil {
				t.Fatalf("re-Open after the crash: %v", err)
			}
			defer s.Close()
			open, err := s.OpenSessions(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(open) != 1 || open[0].ID != "crashed" || open[0].DeliveredMWh != 12_345 || open[0].MeasuredMWh != 12_001 ||
				!open[0].Offer.Equal(testOffer("crashed")) || open[0].WallURL != wallURL || open[0].SoCStartPermille != 412 ||
				open[0].SoCEndPermille != SoCUnknown || open[0].Ended() || !open[0].UpdatedAt.Equal(t0.Add(time.Minute)) {
				t.Fatalf("OpenSessions = %+v, want the one session left open, as written", open)
			}
			if paid, err := s.PaidSince(ctx, t0); err != nil || paid != 7504 {
				t.Errorf("PaidSince = %d, %v; want 7504 (the success survived)", paid, err)
			}
			pending, err := s.InFlight(ctx)
			if err != nil {
				t.Fatal(err)
			}
			_, sent := payment("crash-in-flight")
			_, unsent := payment("crash-requested")
			if len(pending) != 2 || pending[0].PaymentHash != sent || pending[0].Status != StatusInFlight ||
				pending[1].PaymentHash != unsent || pending[1].Status != StatusRequested || pending[1].Bolt11 != "lnbcrtcrash-requested" {
				t.Fatalf("InFlight = %+v, want the payment in flight and the invoice requested just before the crash", pending)
			}
			// The car's recovery: lnd says one failed and never saw the other.
			for _, h := range []string{sent, unsent} {
				if err := s.RecordPayment(ctx, PaymentOutcome{PaymentHash: h, Status: StatusFailed, FailureReason: "not known to lnd", At: t0.Add(time.Hour)}); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.EndSession(ctx, SessionEnd{ID: "crashed", At: t0.Add(time.Hour), Reason: "car_restart", SoCPermille: SoCUnknown, DeliveredMWh: 12_345, MeasuredMWh: 12_001}); err != nil {
				t.Fatal(err)
			}
			if open, err := s.OpenSessions(ctx); err != nil || len(open) != 0 {
				t.Errorf("OpenSessions after recovery = %+v, %v; want none", open, err)
			}
			if pending, err := s.InFlight(ctx); err != nil || len(pending) != 0 {
				t.Errorf("InFlight after recovery = %+v, %v; want none", pending, err)
			}
		})
	}
}

// writeCrashWork is what the car wrote before it crashed: a payment that
// succeeded, one in flight, and an invoice it was about to pay.
func writeCrashWork(t *testing.T, s *Store) {
	ctx := ctxT(t)
	mustOpenSession(t, s, "crashed", t0)
	mustPay(t, s, "crashed", "crash-paid", 7500, 4, t0)
	_, h := mustInvoice(t, s, "crashed", "crash-in-flight", 2500, t0.Add(30*time.Second))
	if err := s.RecordPayment(ctx, PaymentOutcome{PaymentHash: h, Status: StatusInFlight, At: t0.Add(31 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	mustInvoice(t, s, "crashed", "crash-requested", 2500, t0.Add(50*time.Second))
	if err := s.RecordMeter(ctx, MeterSample{SessionID: "crashed", At: t0.Add(time.Minute), DeliveredMWh: 12_345, MeasuredMWh: 12_001}); err != nil {
		t.Fatal(err)
	}
}
