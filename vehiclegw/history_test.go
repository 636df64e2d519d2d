package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"satwatt/internal/carstore"
	"satwatt/internal/offer"
	"satwatt/internal/wallstore"
)

// update rewrites the golden files: go test ./vehiclegw -run History -update.
var update = flag.Bool("update", false, "rewrite the golden files in testdata/history/")

// useTestZone fixes the local time zone: the commands print local times,
// and the golden files must not depend on the machine's zone.
func useTestZone(t *testing.T) {
	t.Helper()
	old := time.Local
	time.Local = time.FixedZone("UTC+1", 3600)
	t.Cleanup(func() { time.Local = old })
}

func testPayment(seed string) (preimageHex, hashHex string) {
	pre := sha256.Sum256([]byte("preimage " + seed))
	h := sha256.Sum256(pre[:])
	return hex.EncodeToString(pre[:]), hex.EncodeToString(h[:])
}

// seedCar writes a car ledger: an ended session with payments that
// succeeded and failed and two refused invoices, a running one with a
// payment in flight and no state of charge, and one that paid nothing.
func seedCar(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "car.db")
	st, err := carstore.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	open := func(id string, at time.Time, soc int64) {
		o := offer.Offer{SessionID: id, PriceMsatPerWh: 250, IncrementWh: 10, FirstMultiple: 3, GraceWh: 2, MaxPowerW: 7400,
			WallNodeKey: "02" + strings.Repeat("ab", 32), ValidUntil: at.Add(time.Hour), Network: "regtest"}
		must(st.OpenSession(ctx, carstore.SessionOpen{Offer: o, WallURL: "http://wall.local:8080", Metadata: `[["text/plain","` + id + `"]]`, StartedAt: at, SoCPermille: soc}))
	}
	invoice := func(id, seed string, amount int64, at time.Time) (string, string) {
		pre, hash := testPayment(seed)
		must(st.AddInvoice(ctx, carstore.Invoice{PaymentHash: hash, SessionID: id, AmountMsat: amount, Bolt11: "lnbcrt" + seed, RequestedAt: at}))
		return pre, hash
	}
	pay := func(id, seed string, amount, fee int64, at time.Time) {
		pre, hash := invoice(id, seed, amount, at)
		must(st.RecordPayment(ctx, carstore.PaymentOutcome{PaymentHash: hash, Status: carstore.StatusInFlight, At: at}))
		must(st.RecordPayment(ctx, carstore.PaymentOutcome{PaymentHash: hash, Status: carstore.StatusSucceeded, PaidMsat: amount, FeeMsat: fee, PreimageHex: pre, At: at.Add(time.Second)}))
	}

	t0 := time.Date(2026, 1, 31, 22, 30, 0, 0, time.UTC)
	open("nothing-paid", t0, 900)
	must(st.EndSession(ctx, carstore.SessionEnd{ID: "nothing-paid", At: t0.Add(5 * time.Minute), Reason: "price_above_limit", SoCPermille: 900}))

	t1 := t0.Add(24 * time.Hour)
	open("paid", t1, 412)
	pay("paid", "paid-1", 7500, 3, t1)
	_, failed := invoice("paid", "paid-failed", 2500, t1.Add(time.Minute))
	must(st.RecordPayment(ctx, carstore.PaymentOutcome{PaymentHash: failed, Status: carstore.StatusFailed, FailureReason: "no route", At: t1.Add(time.Minute + time.Second)}))
	pay("paid", "paid-2", 2500, 1, t1.Add(2*time.Minute))
	_, refused := invoice("paid", "paid-refused", 2500, t1.Add(3*time.Minute))
	must(st.RecordRefusal(ctx, carstore.Refusal{SessionID: "paid", At: t1.Add(3 * time.Minute), PaymentHash: refused, AmountMsat: 2500,
		Bolt11: "lnbcrtpaid-refused", Reason: "payee mismatch", Detail: "signed by 03cd…, the offer names 02ab…"}))
	must(st.RecordRefusal(ctx, carstore.Refusal{SessionID: "paid", At: t1.Add(4 * time.Minute), Bolt11: "garbage", Reason: "undecodable", Detail: "checksum failed"}))
	must(st.RecordMeter(ctx, carstore.MeterSample{SessionID: "paid", At: t1.Add(4 * time.Minute), DeliveredMWh: 30_001, MeasuredMWh: 28_500}))
	must(st.EndSession(ctx, carstore.SessionEnd{ID: "paid", At: t1.Add(30 * time.Minute), Reason: "invoice_rejected", SoCPermille: 437,
		DeliveredMWh: 30_001, MeasuredMWh: 28_500}))

	t2 := t1.Add(14 * 24 * time.Hour)
	open("running", t2, carstore.SoCUnknown)
	pay("running", "running-1", 250, 0, t2)
	_, flying := invoice("running", "running-2", 2500, t2.Add(time.Minute))
	must(st.RecordPayment(ctx, carstore.PaymentOutcome{PaymentHash: flying, Status: carstore.StatusInFlight, At: t2.Add(time.Minute)}))
	must(st.RecordMeter(ctx, carstore.MeterSample{SessionID: "running", At: t2.Add(time.Minute), DeliveredMWh: 999, MeasuredMWh: 950}))
	return path
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "history", name)
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

func runOK(t *testing.T, args ...string) []byte {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), args, &stdout, &stderr); code != 0 {
		t.Fatalf("vehiclegw %v exited %d: %s", args, code, stderr.String())
	}
	if stderr.Len() > 0 {
		t.Errorf("vehiclegw %v wrote to stderr: %s", args, stderr.String())
	}
	return stdout.Bytes()
}

// TestHistoryCommand runs vehiclegw history and session show on a real
// ledger and pins what they print.
func TestHistoryCommand(t *testing.T) {
	useTestZone(t)
	db := seedCar(t)
	empty := filepath.Join(t.TempDir(), "empty.db")
	if st, err := carstore.Open(context.Background(), empty); err != nil {
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
		{"history-empty.json", []string{"history", "--db", empty, "--json"}},
		{"session-show.txt", []string{"session", "show", "paid", "--db", db}},
		{"session-show.json", []string{"session", "show", "--db", db, "--json", "paid"}},
		{"session-show-running.txt", []string{"session", "show", "running", "--db", db}},
		{"session-show-nothing-paid.json", []string{"session", "show", "nothing-paid", "--db", db, "--json"}},
	}
	for _, tc := range cases {
		t.Run(tc.golden, func(t *testing.T) {
			golden(t, tc.golden, runOK(t, tc.args...))
		})
	}
}

// TestHistoryJSONAgrees: what a script reads from --json adds up.
func TestHistoryJSONAgrees(t *testing.T) {
	useTestZone(t)
	db := seedCar(t)
	var hist struct {
		Sessions []struct {
			ID          string `json:"id"`
			PaidMsat    int64  `json:"paid_msat"`
			FeeMsat     int64  `json:"fee_msat"`
			Pending     int64  `json:"pending"`
			SoCStart    *int64 `json:"soc_start_permille"`
			MeasuredMWh int64  `json:"measured_mwh"`
		} `json:"sessions"`
		Totals struct {
			Sessions    int64 `json:"sessions"`
			PaidMsat    int64 `json:"paid_msat"`
			FeeMsat     int64 `json:"fee_msat"`
			MeasuredMWh int64 `json:"measured_mwh"`
			Payments    int64 `json:"payments"`
		} `json:"totals"`
	}
	if err := json.Unmarshal(runOK(t, "history", "--db", db, "--json"), &hist); err != nil {
		t.Fatal(err)
	}
	var paid, fee, measured int64
	for _, s := range hist.Sessions {
		paid += s.PaidMsat
		fee += s.FeeMsat
		measured += s.MeasuredMWh
	}
	tot := hist.Totals
	if tot.Sessions != 3 || tot.PaidMsat != paid || paid != 10_250 || tot.FeeMsat != fee || fee != 4 || tot.MeasuredMWh != measured || tot.Payments != 3 {
		t.Errorf("totals %+v; the sessions sum to %d msat paid, %d msat fees, %d mWh measured", tot, paid, fee, measured)
	}
	if s := hist.Sessions[0]; s.ID != "running" || s.Pending != 1 || s.SoCStart != nil {
		t.Errorf("newest session %+v, want running with one payment pending and no state of charge", s)
	}

	var rc struct {
		PaidMsat     int64 `json:"paid_msat"`
		FeeMsat      int64 `json:"fee_msat"`
		DeliveredMWh int64 `json:"delivered_mwh"`
		MeasuredMWh  int64 `json:"measured_mwh"`
		Payments     []struct {
			PaymentHash string `json:"payment_hash"`
			Status      string `json:"status"`
			Preimage    string `json:"preimage"`
			PaidMsat    int64  `json:"paid_msat"`
		} `json:"payments"`
		Refusals []struct {
			Reason string `json:"reason"`
		} `json:"refusals"`
	}
	if err := json.Unmarshal(runOK(t, "session", "show", "paid", "--db", db, "--json"), &rc); err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, p := range rc.Payments {
		if p.Status != carstore.StatusSucceeded {
			continue
		}
		pre, _ := hex.DecodeString(p.Preimage)
		if h := sha256.Sum256(pre); hex.EncodeToString(h[:]) != p.PaymentHash {
			t.Errorf("payment %s: the preimage is no proof of it", p.PaymentHash)
		}
		sum += p.PaidMsat
	}
	if sum != rc.PaidMsat || rc.PaidMsat != 10_000 || rc.FeeMsat != 4 || rc.DeliveredMWh != 30_001 || rc.MeasuredMWh != 28_500 ||
		len(rc.Payments) != 4 || len(rc.Refusals) != 2 {
		t.Errorf("receipt %+v", rc)
	}
}

// TestHistoryCommandErrors: what a mistake prints, and its exit code.
func TestHistoryCommandErrors(t *testing.T) {
	useTestZone(t)
	db := seedCar(t)
	wallDB := filepath.Join(t.TempDir(), "wall.db")
	if w, err := wallstore.Open(context.Background(), wallDB); err != nil {
		t.Fatal(err)
	} else {
		w.Close()
	}
	missing := filepath.Join(t.TempDir(), "missing.db")
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"csv and json", []string{"history", "--db", db, "--csv", "--json"}, 2, "vehiclegw history: usage: choose --csv or --json, not both"},
		{"bad since", []string{"history", "--db", db, "--since", "yesterday"}, 2, `--since "yesterday": use a date (2026-11-25) or an RFC 3339 time`},
		{"negative limit", []string{"history", "--db", db, "--limit", "-1"}, 1, "limit -1 is negative"},
		{"missing ledger", []string{"history", "--db", missing}, 1, "carstore: open " + missing},
		{"the wall's database", []string{"history", "--db", wallDB}, 1, "another program's database"},
		{"no session id", []string{"session", "show", "--db", db}, 2, "which session? vehiclegw session show ID (ids are in vehiclegw history)"},
		{"unknown session", []string{"session", "show", "nope", "--db", db}, 1, `vehiclegw session show: carstore: receipt of session "nope": not found`},
		{"two ids", []string{"session", "show", "paid", "running"}, 2, "unexpected arguments: running"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tc.args, &stdout, &stderr)
			if code != tc.code || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("vehiclegw %v exited %d with %q; want %d with %q", tc.args, code, stderr.String(), tc.code, tc.want)
			}
			if stdout.Len() > 0 {
				t.Errorf("stdout: %s", stdout.String())
			}
		})
	}
}
