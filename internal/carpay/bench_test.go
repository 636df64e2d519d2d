package carpay

import (
	"crypto/sha256"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"satwatt/internal/clock"
	"satwatt/internal/invoicecheck"
	"satwatt/internal/lndclient"
	"satwatt/internal/offer"
	"satwatt/internal/regtest"
)

// increments is how many payments one run measures: enough for a p99.
const increments = 200

// baselineRuns is how many `lncli payinvoice` runs make the baseline.
const baselineRuns = 50

func percentile(d []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(p * float64(len(s)-1))
	return s[i]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// BenchmarkSystemPaymentSteps measures one pay-as-you-go increment on a real
// regtest channel, split into its steps, over 200 increments: the wall
// creates the invoice (AddInvoice with the offer's description hash), the
// car checks it offline and pays it (SendPaymentV2 to a final state), and
// the wall's settlement watch reports it (measured from the start of the
// payment). The baseline, in the same run on the same channel, is
// `lncli payinvoice` of a wall invoice, process start included.
func BenchmarkSystemPaymentSteps(b *testing.B) {
	net := regtest.StartForTest(b, regtest.Config{
		Nodes:    []string{"wall", "car"},
		Channels: []regtest.ChannelSpec{{From: "car", To: "wall", CapacitySat: 5_000_000}},
	})
	wallNode, carNode := net.Nodes["wall"], net.Nodes["car"]
	ctx := b.Context()
	dialB := func(n *regtest.Node) *lndclient.Client {
		c, err := lndclient.Dial(ctx, lndclient.Config{RPCAddr: n.RPCAddr, TLSCertPath: n.TLSCertPath, MacaroonPath: n.AdminMacaroonPath})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		return c
	}
	wallLnd, carLnd := dialB(wallNode), dialB(carNode)
	o := offer.Offer{SessionID: "bench", PriceMsatPerWh: 500, IncrementWh: 10, FirstMultiple: 1, GraceWh: 5,
		MaxPowerW: 11000, WallNodeKey: wallNode.PubKey, ValidUntil: time.Now().Add(time.Hour), Network: "regtest"}
	metadata, err := offer.Metadata(o, "bench")
	if err != nil {
		b.Fatal(err)
	}
	descHash := offer.DescriptionHash(metadata)
	const amount = 10 * 500
	expect := invoicecheck.Expect{AmountMsat: amount, Metadata: metadata, Offer: o, MaxPaymentMsat: 1_000_000, MaxPriceMsatPerWh: 1000}
	payer := &Payer{Node: carLnd, Network: "regtest", Timeout: 30 * time.Second, Clock: clock.Real{}}

	var mu sync.Mutex
	var open [][32]byte
	watch := wallLnd.WatchSettlements(ctx, func() [][32]byte {
		mu.Lock()
		defer mu.Unlock()
		return append([][32]byte(nil), open...)
	})
	for !watch.Connected() {
		time.Sleep(10 * time.Millisecond)
	}

	for n := 0; n < b.N; n++ {
		var create, pay, settle []time.Duration
		for i := 0; i < increments; i++ {
			t0 := time.Now()
			inv, err := wallLnd.AddInvoice(ctx, amount, descHash, time.Minute)
			if err != nil {
				b.Fatal(err)
			}
			t1 := time.Now()
			mu.Lock()
			open = append(open, inv.PaymentHash)
			mu.Unlock()
			res, err := payer.Pay(ctx, inv.PaymentRequest, expect)
			if err != nil || res.Status != lndclient.Succeeded {
				b.Fatalf("increment %d: %+v %v", i, res, err)
			}
			t2 := time.Now()
			s := <-watch.Settlements()
			t3 := time.Now()
			if s.PaymentHash != inv.PaymentHash || sha256.Sum256(s.Preimage[:]) != s.PaymentHash {
				b.Fatalf("increment %d: settlement %x for invoice %x", i, s.PaymentHash, inv.PaymentHash)
			}
			create = append(create, t1.Sub(t0))
			pay = append(pay, t2.Sub(t1))
			settle = append(settle, t3.Sub(t1))
		}
		var base []time.Duration
		for i := 0; i < baselineRuns; i++ {
			inv, err := wallLnd.AddInvoice(ctx, amount, descHash, time.Minute)
			if err != nil {
				b.Fatal(err)
			}
			t0 := time.Now()
			if out, err := carNode.Lncli(ctx, "payinvoice", "--force", "--json", inv.PaymentRequest); err != nil {
				b.Fatalf("lncli payinvoice: %v: %s", err, out)
			}
			base = append(base, time.Since(t0))
		}
		baseP50 := percentile(base, 0.5)
		b.ReportMetric(ms(percentile(create, 0.5)), "create-p50-ms")
		b.ReportMetric(ms(percentile(create, 0.99)), "create-p99-ms")
		b.ReportMetric(ms(percentile(pay, 0.5)), "checkpay-p50-ms")
		b.ReportMetric(ms(percentile(pay, 0.99)), "checkpay-p99-ms")
		b.ReportMetric(ms(percentile(settle, 0.5)), "settled-p50-ms")
		b.ReportMetric(ms(percentile(settle, 0.99)), "settled-p99-ms")
		b.ReportMetric(ms(baseP50), "lncli-p50-ms")
		b.ReportMetric(ms(percentile(base, 0.99)), "lncli-p99-ms")
		b.ReportMetric(float64(percentile(pay, 0.5))/float64(baseP50), "checkpay/lncli")
		b.Log("increments " + strconv.Itoa(increments) + ", baseline runs " + strconv.Itoa(baselineRuns) + fmt.Sprintf(", settled p50 %.1f ms vs lncli p50 %.1f ms", ms(percentile(settle, 0.5)), ms(baseP50)))
	}
}
