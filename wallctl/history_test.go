package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"satwatt/internal/offer"
	"satwatt/internal/wallstore"
)

// update rewrites the golden files: go test ./wallctl -run Format -update.
var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// testZone is the local time zone of these tests: the commands print
// local times, and the golden files must not depend on the machine's zone.
var testZone = time.FixedZone("UTC+1", 3600)

func useTestZone(t *testing.T) {
	t.Helper()
	old := time.Local
	time.Local = testZone
	t.Cleanup(func() { time.Local = old })
}

// testPayment derives a preimage and its hash from seed.
func testPayment(seed string) (preimageHex, hashHex string) {
	pre := sha256.Sum256([]byte("preimage " + seed))
	h := sha256.Sum256(pre[:])
	return hex.EncodeToString(pre[:]), hex.EncodeToString(h[:])
}

// seedWall writes a wall database with an ended session (one payment
// arriving after its end), an unpaid one and a running one.
func seedWall(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "wall.db")
	st, err := wallstore.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	t0 := time.Date(2026, 1, 31, 22, 30, 0, 0, time.UTC)
	open := func(id string, at time.Time) {
		o := offer.Offer{SessionID: id, PriceMsatPerWh: 250, IncrementWh: 10, FirstMultiple: 3, GraceWh: 2, MaxPowerW: 7400,
			WallNodeKey: "02" + strings.Repeat("ab", 32), ValidUntil: at.Add(time.Hour), Network: "regtest"}
		if err := st.OpenSession(ctx, wallstore.SessionOpen{ID: id, StartedAt: at, Offer: o, Metadata: "[]"}); err != nil {
			t.Fatal(err)
		}
	}
	invoice := func(id, seed string, amount int64, at time.Time) (string, string) {
		pre, hash := testPayment(seed)
		if err := st.AddInvoice(ctx, wallstore.Invoice{PaymentHash: hash, SessionID: id, AmountMsat: amount,
			Bolt11: "lnbcrt" + seed, CreatedAt: at, ExpiresAt: at.Add(10 * time.Minute)}); err != nil {
			t.Fatal(err)
		}
		return pre, hash
	}
	pay := func(id, seed string, amount int64, at time.Time) {
		pre, hash := invoice(id, seed, amount, at)
		if _, err := st.SettleInvoice(ctx, hash, amount, pre, at.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
	}

	open("unpaid", t0)
	invoice("unpaid", "unpaid-1", 7500, t0)
	if err := st.EndSession(ctx, "unpaid", t0.Add(5*time.Minute), wallstore.ReasonUnpaidTimeout, 0); err != nil {
		t.Fatal(err)
	}

	t1 := t0.Add(24 * time.Hour)
	open("paid", t1)
	pay("paid", "paid-1", 7500, t1)
	pay("paid", "paid-2", 2500, t1.Add(time.Minute))
	latePre, lateHash := invoice("paid", "paid-late", 2501, t1.Add(2*time.Minute))
	if err := st.EndSession(ctx, "paid", t1.Add(30*time.Minute), wallstore.ReasonUnplugged, 30_001); err != nil {
		t.Fatal(err)
	}
	if _, err := st.SettleInvoice(ctx, lateHash, 2501, latePre, t1.Add(31*time.Minute)); err != nil {
		t.Fatal(err)
	}

	t2 := t1.Add(14 * 24 * time.Hour)
	open("running", t2)
	pay("running", "running-1", 250, t2)
	if err := st.RecordProgress(ctx, "running", t2.Add(time.Minute), wallstore.StateEnergising, 999, 7000); err != nil {
		t.Fatal(err)
	}
	return path
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// TestHistoryOutputFormat pins what wallctl history and session show
// print, byte for byte: people read it and scripts parse it.
func TestHistoryOutputFormat(t *testing.T) {
	useTestZone(t)
	db := seedWall(t)
	empty := filepath.Join(t.TempDir(), "empty.db")
	if st, err := wallstore.Open(context.Background(), empty); err != nil {
		t.Fatal(err)
	} else {
		st.Close()
	}
	cases := []struct {
		golden string
		args   []string
	}{
		{"history.txt", []string{"history", "--db", db}},
		{"history.csv", []string{"history", "--db", db, "--csv"}},
		{"history.json", []string{"history", "--db", db, "--json"}},
		{"history-range.txt", []string{"history", "--db", db, "--since", "2026-02-01", "--until", "2026-02-15", "--limit", "1"}},
		{"history-range.csv", []string{"history", "--db", db, "--since", "2026-02-01T00:00:00+01:00", "--until", "2026-02-14", "--csv"}},
		{"history-empty.txt", []string{"history", "--db", empty}},
		{"history-empty.csv", []string{"history", "--db", empty, "--csv"}},
		{"history-empty.json", []string{"history", "--db", empty, "--json"}},
		{"session-show.txt", []string{"session", "show", "paid", "--db", db}},
		{"session-show.json", []string{"session", "show", "--db", db, "--json", "paid"}},
		{"session-show-running.txt", []string{"session", "show", "running", "--db", db}},
		{"session-show-unpaid.json", []string{"session", "show", "unpaid", "--db", db, "--json"}},
	}
	for _, tc := range cases {
		t.Run(tc.golden, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), tc.args, &stdout, &stderr); code != 0 {
				t.Fatalf("wallctl %v exited %d: %s", tc.args, code, stderr.String())
			}
			if stderr.Len() > 0 {
				t.Errorf("stderr: %s", stderr.String())
			}
			golden(t, "wallctl-"+tc.golden, stdout.Bytes())
		})
	}
}

// TestHistoryAndSessionErrors: what a mistake prints, and its exit code.
func TestHistoryAndSessionErrors(t *testing.T) {
	useTestZone(t)
	db := seedWall(t)
	missing := filepath.Join(t.TempDir(), "missing.db")
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"csv and json", []string{"history", "--db", db, "--csv", "--json"}, 2, "wallctl history: usage: choose --csv or --json, not both"},
		{"bad since", []string{"history", "--db", db, "--since", "yesterday"}, 2, `wallctl history: usage: --since "yesterday": use a date (2026-11-25) or an RFC 3339 time`},
		{"bad until", []string{"history", "--db", db, "--until", "2026-13-01"}, 2, `--until "2026-13-01"`},
		{"negative limit", []string{"history", "--db", db, "--limit", "-1"}, 1, "limit -1 is negative"},
		{"positional argument", []string{"history", "--db", db, "extra"}, 2, "unexpected arguments: extra"},
		{"missing database", []string{"history", "--db", missing}, 1, missing},
		{"no session id", []string{"session", "show", "--db", db}, 2, "which session? wallctl session show ID"},
		{"unknown session", []string{"session", "show", "nope", "--db", db}, 1, `wallctl session show: wallstore: receipt of session "nope": not found`},
		{"two ids", []string{"session", "show", "paid", "--db", db, "other", "more"}, 2, "unexpected arguments"},
		{"an id before and after the flags", []string{"session", "show", "paid", "--db", db, "other"}, 2, "unexpected arguments: other"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tc.args, &stdout, &stderr)
			if code != tc.code || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("wallctl %v exited %d with %q; want %d with %q", tc.args, code, stderr.String(), tc.code, tc.want)
			}
			if stdout.Len() > 0 {
				t.Errorf("stdout: %s", stdout.String())
			}
		})
	}
}
