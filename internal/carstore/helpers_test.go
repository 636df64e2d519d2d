package carstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"satwatt/internal/offer"
	"satwatt/internal/sqlitedb"
)

// t0 is a fixed instant; tests never read the wall clock for data.
var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

const (
	nodeKey = "02" + "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
	wallURL = "http://wall.local/lnurl"
)

func testOffer(id string) offer.Offer {
	return offer.Offer{
		SessionID:      id,
		PriceMsatPerWh: 250,
		IncrementWh:    10,
		FirstMultiple:  3,
		GraceWh:        2,
		MaxPowerW:      7400,
		WallNodeKey:    nodeKey,
		ValidUntil:     t0.Add(time.Hour),
		Network:        "regtest",
	}
}

// payment returns a preimage and its payment hash, in hex, derived from
// seed so that every test names its own payments.
func payment(seed string) (preimageHex, hashHex string) {
	pre := sha256.Sum256([]byte("preimage " + seed))
	h := sha256.Sum256(pre[:])
	return hex.EncodeToString(pre[:]), hex.EncodeToString(h[:])
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// openStore opens a fresh store in the test's own directory.
func openStore(t testing.TB) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "car.db")
	s, err := Open(ctxT(t), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func mustOpenSession(t testing.TB, s *Store, id string, at time.Time) {
	t.Helper()
	err := s.OpenSession(ctxT(t), SessionOpen{Offer: testOffer(id), WallURL: wallURL, Metadata: `[["text/plain","` + id + `"]]`, StartedAt: at, SoCPermille: 412})
	if err != nil {
		t.Fatalf("OpenSession(%s): %v", id, err)
	}
}

// mustInvoice adds an invoice for amount and returns its preimage and hash.
func mustInvoice(t testing.TB, s *Store, session, seed string, amount int64, at time.Time) (string, string) {
	t.Helper()
	pre, hash := payment(seed)
	if err := s.AddInvoice(ctxT(t), Invoice{PaymentHash: hash, SessionID: session, AmountMsat: amount, Bolt11: "lnbcrt" + seed, RequestedAt: at}); err != nil {
		t.Fatalf("AddInvoice(%s): %v", seed, err)
	}
	return pre, hash
}

// mustPay adds an invoice, records it in flight and then succeeded with
// paid and fee, and returns its hash.
func mustPay(t testing.TB, s *Store, session, seed string, paid, fee int64, at time.Time) string {
	t.Helper()
	pre, hash := mustInvoice(t, s, session, seed, paid, at)
	ctx := ctxT(t)
	if err := s.RecordPayment(ctx, PaymentOutcome{PaymentHash: hash, Status: StatusInFlight, At: at}); err != nil {
		t.Fatalf("RecordPayment(%s, in flight): %v", seed, err)
	}
	if err := s.RecordPayment(ctx, PaymentOutcome{PaymentHash: hash, Status: StatusSucceeded, PaidMsat: paid, FeeMsat: fee, PreimageHex: pre, At: at.Add(time.Second)}); err != nil {
		t.Fatalf("RecordPayment(%s, succeeded): %v", seed, err)
	}
	return hash
}

// rawDB opens path with plain database/sql, as another program or the
// sqlite3 shell would, read-only unless rw.
func rawDB(t testing.TB, path string, rw bool) *sql.DB {
	t.Helper()
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	v := url.Values{}
	if !rw {
		v.Set("mode", "ro")
	}
	db, err := sql.Open("sqlite3", sqlitedb.DSN(abs, v))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// snapshot reads every file in dir, so that a test can tell that nothing
// was written, created or removed.
func snapshot(t testing.TB, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(b)
	}
	return out
}

func sameFiles(t testing.TB, before, after map[string]string) {
	t.Helper()
	for name, b := range before {
		a, ok := after[name]
		switch {
		case !ok:
			t.Errorf("%s was removed", name)
		case a != b:
			t.Errorf("%s changed (%d bytes before, %d after)", name, len(b), len(a))
		}
	}
	for name := range after {
		if _, ok := before[name]; !ok {
			t.Errorf("%s was created", name)
		}
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
