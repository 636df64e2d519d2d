package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"satwatt/internal/metering"
	"satwatt/internal/simevse"
	"satwatt/internal/wallstore"
	"satwatt/wallctl/internal/chargepoint"
	"satwatt/wallctl/internal/chargepoint/lnfake"
	"satwatt/wallctl/internal/httpapi"
)

// BenchmarkLNURLCallback measures what the wall adds to a car's invoice
// request, lnd excluded: the HTTP round trip over a real loopback socket,
// the controller's checks and the invoice row written to a real SQLite file
// (synchronous=FULL) before the invoice is handed out. lnd is the in-memory
// stand-in, so its own latency (a few ms on regtest) is not in the figure.
// Baseline, in the same run: GET /healthz on the same server.
func BenchmarkLNURLCallback(b *testing.B) {
	ctx := b.Context()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	sim, err := simevse.New(simevse.Config{Log: quiet})
	if err != nil {
		b.Fatal(err)
	}
	store, err := wallstore.Open(ctx, filepath.Join(b.TempDir(), "wall.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	ln := lnfake.New()
	terms := metering.Terms{PriceMsatPerWh: 100, IncrementWh: 50, FirstMultiple: 2, GraceWh: 10, UnpaidTimeout: time.Hour}
	// Open invoices are bounded per session; here every request stays
	// open, so the bound is lifted to measure the request itself.
	cp, err := chargepoint.New(chargepoint.Config{Terms: terms, MaxCurrentA: 32, InvoiceExpiry: time.Hour,
		MaxOpenInvoices: b.N + 1_000, Logger: quiet}, sim, ln,
		func(_ context.Context, _ func() [][32]byte) chargepoint.Watch { return ln }, store)
	if err != nil {
		b.Fatal(err)
	}
	fv := sim.Vehicle().(*simevse.FixedVehicle)
	h, err := httpapi.New(httpapi.Config{Token: "bench-token-0123456789", Logger: quiet, Sim: fv}, cp, store)
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	go cp.Run(ctx)
	fv.Plug()

	var offer struct {
		Callback    string `json:"callback"`
		MinSendable int64  `json:"minSendable"`
	}
	for deadline := time.Now().Add(10 * time.Second); offer.Callback == ""; {
		if time.Now().After(deadline) {
			b.Fatal("no session offered within 10 s of plug-in")
		}
		if resp, err := http.Get(srv.URL + "/lnurlp"); err == nil {
			if resp.StatusCode == 200 {
				json.NewDecoder(resp.Body).Decode(&offer)
			}
			resp.Body.Close()
		}
		time.Sleep(20 * time.Millisecond)
	}
	client := srv.Client()
	get := func(url string) time.Duration {
		t0 := time.Now()
		resp, err := client.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
		}
		return time.Since(t0)
	}
	callback := fmt.Sprintf("%s?amount=%d", offer.Callback, offer.MinSendable)
	get(callback) // the first request pays for connection set-up

	lat := make([]time.Duration, 0, b.N)
	base := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		lat = append(lat, get(callback))
		base = append(base, get(srv.URL+"/healthz"))
	}
	b.StopTimer()
	p := func(d []time.Duration, q float64) float64 {
		slices.Sort(d)
		return float64(d[int(q*float64(len(d)-1))].Microseconds())
	}
	p50, p99, b50 := p(lat, 0.50), p(lat, 0.99), p(base, 0.50)
	b.ReportMetric(p50, "callback-p50-µs")
	b.ReportMetric(p99, "callback-p99-µs")
	b.ReportMetric(b50, "healthz-p50-µs")
	b.ReportMetric(p50/max(b50, 1), "ratio-p50")
}
