package main

import (
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"satwatt/internal/carpay"
	"satwatt/internal/clock"
	"satwatt/internal/lndclient"
	"satwatt/internal/regtest"
	"satwatt/internal/wallclient"
	"satwatt/wallctl/internal/chargepoint"
)

// loopIncrements is how many increments BenchmarkSystemPaymentLoop times.
const loopIncrements = 200

func pct(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[int(p*float64(len(s)-1))]
}

func msf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// benchNetwork starts a regtest network with a channel of capacitySat
// from the car to the wall, and dials the car's node quietly (a log line
// per payment would bury the figures).
func benchNetwork(b *testing.B, capacitySat int64) (wall, car *regtest.Node, carLn *lndclient.Client) {
	net := regtest.StartForTest(b, regtest.Config{
		Nodes:    []string{"wall", "car"},
		Channels: []regtest.ChannelSpec{{From: "car", To: "wall", CapacitySat: capacitySat}},
	})
	wall, car = net.Nodes["wall"], net.Nodes["car"]
	carLn, err := lndclient.Dial(b.Context(), lndclient.Config{RPCAddr: car.RPCAddr, TLSCertPath: car.TLSCertPath,
		MacaroonPath: car.AdminMacaroonPath, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { carLn.Close() })
	return wall, car, carLn
}

// BenchmarkSystemPaymentLoop times one pay-as-you-go increment end to end,
// 200 times, through wallctl serve with real lnd on both sides: the car
// fetches the offer, asks the callback for an invoice, checks it and pays
// it from its node, and the increment counts when the wall's status
// stream shows it credited (the settlement seen by the wall's lnd watch,
// written to SQLite, credited to the session). Baseline, in the same run
// on the same channel: `lncli payinvoice` of a wall invoice, process start
// included. One op is the whole benchmark; run it with -benchtime 1x.
func BenchmarkSystemPaymentLoop(b *testing.B) {
	bin := buildWallctl(b)
	wn, cn, carLn := benchNetwork(b, 5_000_000)
	ctx := b.Context()
	c := &car{t: b, payer: carpay.Payer{Node: carLn, Network: "regtest", Timeout: 30 * time.Second, Clock: clock.Real{}}, paid: map[string]int64{}}
	// 1,000 msat/Wh and 5 Wh increments: each payment is 5,000 msat. The
	// credit grows faster than the simulated EVSE's vehicle draws it.
	w := startWall(b, bin, "--db", b.TempDir()+"/wall.db", "--evse", "sim",
		"--lnd-rpc", wn.RPCAddr, "--lnd-tlscert", wn.TLSCertPath, "--lnd-macaroon", wn.AdminMacaroonPath,
		"--price", "1000", "--increment-wh", "5", "--first-multiple", "2", "--grace-wh", "2")
	w.post("/api/sim/plug")
	w.waitFor("session open", 20*time.Second, func(s chargepoint.Status) bool { return s.Connector == "awaiting_payment" })
	u, err := url.Parse(w.base)
	if err != nil {
		b.Fatal(err)
	}
	follow := (&wallclient.Client{Base: u}).Follow(ctx)
	paidNow := int64(0)
	credited := func(want int64) {
		for st := range follow {
			if st.Session != nil && st.Session.PaidMsat >= want {
				paidNow = st.Session.PaidMsat
				return
			}
		}
		b.Fatal("the wall's status stream ended")
	}
	c.pay(ctx, w.base, 10_000) // the first payment, not timed
	credited(10_000)
	for range b.N {
		var loop []time.Duration
		for range loopIncrements {
			want := paidNow + 5_000
			t0 := time.Now()
			c.pay(ctx, w.base, 5_000)
			credited(want)
			loop = append(loop, time.Since(t0))
		}
		var base []time.Duration
		for i := range 50 {
			out, err := wn.Lncli(ctx, "addinvoice", "--amt", "5", "--memo", "baseline "+string(rune('a'+i%26)))
			if err != nil {
				b.Fatalf("lncli addinvoice: %v: %s", err, out)
			}
			_, pr, _ := strings.Cut(string(out), `"payment_request": "`)
			pr, _, _ = strings.Cut(pr, `"`)
			t0 := time.Now()
			if out, err := cn.Lncli(ctx, "payinvoice", "--force", "--json", pr); err != nil {
				b.Fatalf("lncli payinvoice: %v: %s", err, out)
			}
			base = append(base, time.Since(t0))
		}
		b.ReportMetric(msf(pct(loop, 0.5)), "p50-ms")
		b.ReportMetric(msf(pct(loop, 0.99)), "p99-ms")
		b.ReportMetric(msf(pct(base, 0.5)), "lncli-p50-ms")
		b.ReportMetric(msf(pct(base, 0.99)), "lncli-p99-ms")
		b.ReportMetric(float64(pct(loop, 0.5))/float64(pct(base, 0.5)), "x-lncli-p50")
		b.ReportMetric(0, "ns/op")
	}
	w.post("/api/sim/unplug")
}
