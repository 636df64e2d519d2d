package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"satwatt/internal/carpay"
	"satwatt/internal/clock"
	"satwatt/internal/invoicecheck"
	"satwatt/internal/lndclient"
	"satwatt/internal/wallclient"
)

// The capacity ladder: wall sizes tried in turn until one fails. The top
// is a bound of the benchmark, not of the wall: reaching it means "at
// least".
var capacitySteps = []int{50, 100, 150, 200, 250}

const (
	// Each simulated car pays one 10 Wh increment every capacityPeriod
	// while its EVSE draws 7.36 kW (6.1 Wh per period), after a first
	// payment of 40 Wh: its credit only grows, so a suspension can only
	// be the wall failing to credit what was paid.
	capacityPeriod  = 3 * time.Second
	capacityMeasure = 12 * time.Second
	capacityPrice   = 1000 // msat/Wh
	capacityIncWh   = 10
	capacityFirst   = 4 // increments in the first payment
)

// capacityResult is one wall size's outcome.
type capacityResult struct {
	latencies             []time.Duration
	suspended             int64 // sessions the wall suspended although paid ahead
	errs                  int64
	firstErr              error
	settledMsat, paidMsat int64
	// CPU seconds used during the run, by process.
	cpu  map[string]float64
	took time.Duration
}

func (r capacityResult) ok() bool {
	return len(r.latencies) > 0 && pct(r.latencies, 0.99) < time.Second && r.suspended == 0 && r.errs == 0
}

// BenchmarkSystemWallCapacity finds how many cars one wallctl and one lnd
// serve at once. For each size N on the ladder it starts wallctl serve
// --connectors N on the simulated EVSEs, plugs every connector's
// simulated vehicle and runs N simulated cars over loopback, each doing
// what vehiclegw does for an increment (fetch the offer, ask the callback
// for an invoice, check it, pay it) every 3 s, and timing it until the
// connector's status stream shows the payment credited. A size passes
// when the p99 of those increments is under one second, no session was
// suspended (the cars pay ahead, so any suspension is the wall's
// mistake: it is read from the wall's own event records), and no
// increment failed. The simulated cars pay from one car-side lnd: N car
// nodes on the same two cores would measure the machine, not the wall.
// One op is the whole ladder; run it with -benchtime 1x.
func BenchmarkSystemWallCapacity(b *testing.B) {
	bin := buildWallctl(b)
	wn, cn, carLn := benchNetwork(b, 10_000_000)
	payer := carpay.Payer{Node: carLn, Network: "regtest", Timeout: 30 * time.Second, Clock: clock.Real{}}
	lnd := []string{"--lnd-rpc", wn.RPCAddr, "--lnd-tlscert", wn.TLSCertPath, "--lnd-macaroon", wn.AdminMacaroonPath}
	for range b.N {
		best := 0
		for _, n := range capacitySteps {
			r := capacityRun(b, bin, lnd, &payer, n, map[string]int{"wall lnd": wn.Pid(), "car lnd": cn.Pid()})
			p50, p99 := time.Duration(0), time.Duration(0)
			if len(r.latencies) > 0 {
				p50, p99 = pct(r.latencies, 0.5), pct(r.latencies, 0.99)
			}
			// One line a size: benchmark logs are cut after ten lines.
			b.Logf("%3d cars: %4d increments, p50 %6.1f ms, p99 %6.1f ms, %d suspended, %d failed (first: %v); CPU in %.1f s on %d cores: wallctl %.1f s, wall lnd %.1f s, car lnd %.1f s",
				n, len(r.latencies), msf(p50), msf(p99), r.suspended, r.errs, r.firstErr,
				r.took.Seconds(), runtime.NumCPU(), r.cpu["wallctl"], r.cpu["wall lnd"], r.cpu["car lnd"])
			if r.settledMsat != r.paidMsat {
				b.Errorf("%d cars: the cars paid %d msat, the wall's records hold %d", n, r.paidMsat, r.settledMsat)
			}
			b.ReportMetric(msf(p99), "p99-ms@"+strconv.Itoa(n))
			if !r.ok() {
				break
			}
			best = n
		}
		b.ReportMetric(float64(best), "cars")
		b.ReportMetric(0, "ns/op")
	}
}

// capacityRun serves n cars from one fresh wallctl for capacityMeasure.
func capacityRun(b *testing.B, bin string, lnd []string, payer *carpay.Payer, n int, pids map[string]int) capacityResult {
	db := filepath.Join(b.TempDir(), "wall.db")
	w := startWall(b, bin, append([]string{"--db", db, "--evse", "sim", "--connectors", strconv.Itoa(n),
		"--price", strconv.Itoa(capacityPrice), "--increment-wh", strconv.Itoa(capacityIncWh),
		"--first-multiple", strconv.Itoa(capacityFirst), "--grace-wh", "2", "--log-level", "warn",
		// Every simulated car dials from this one host.
		"--max-conns-per-host", "2048"}, lnd...)...)
	defer func() {
		w.cmd.Process.Signal(syscall.SIGTERM)
		w.cmd.Wait()
	}()
	ctx, cancel := context.WithCancel(b.Context())
	defer cancel()

	var res capacityResult
	var mu sync.Mutex
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		res.errs++
		if res.firstErr == nil {
			res.firstErr = err
		}
	}
	var paid atomic.Int64
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	for k := 1; k <= n; k++ {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			c, err := newCapacityCar(ctx, w.base, k, payer)
			if err == nil {
				err = c.increment(ctx, capacityFirst*capacityIncWh*capacityPrice)
			}
			ready.Done()
			if err != nil {
				fail(fmt.Errorf("car %d: first payment: %w", k, err))
				return
			}
			paid.Add(capacityFirst * capacityIncWh * capacityPrice)
			<-start
			// Cars pay at their own moments, not in lockstep.
			next := time.Now().Add(rand.N(capacityPeriod))
			for end := time.Now().Add(capacityMeasure); ; {
				if sleepUntil(ctx, next) != nil || next.After(end) {
					return
				}
				t0 := time.Now()
				if err := c.increment(ctx, capacityIncWh*capacityPrice); err != nil {
					if ctx.Err() == nil {
						fail(fmt.Errorf("car %d: %w", k, err))
					}
					return
				}
				paid.Add(capacityIncWh * capacityPrice)
				mu.Lock()
				res.latencies = append(res.latencies, time.Since(t0))
				mu.Unlock()
				next = next.Add(capacityPeriod)
			}
		}()
	}
	ready.Wait()
	pids["wallctl"] = w.cmd.Process.Pid
	before := cpuSeconds(pids)
	t0 := time.Now()
	close(start)
	done.Wait()
	res.took = time.Since(t0)
	res.cpu = cpuSeconds(pids)
	for k, v := range before {
		res.cpu[k] -= v
	}
	cancel()
	res.paidMsat = paid.Load()

	// The wall's own records: suspensions and what it holds as paid.
	rdb, err := sql.Open("sqlite3", "file:"+db+"?mode=ro")
	if err != nil {
		b.Fatal(err)
	}
	defer rdb.Close()
	if err := rdb.QueryRow(`SELECT count(*) FROM events WHERE kind = 'state' AND detail = 'suspended'`).Scan(&res.suspended); err != nil {
		b.Fatal(err)
	}
	if err := rdb.QueryRow(`SELECT coalesce(sum(amount_paid_msat), 0) FROM invoices WHERE state = 'settled'`).Scan(&res.settledMsat); err != nil {
		b.Fatal(err)
	}
	return res
}

// cpuSeconds reads each process's user and system time from /proc.
func cpuSeconds(pids map[string]int) map[string]float64 {
	out := map[string]float64{}
	for name, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// Fields after "(comm) ": state is 0, utime 11 and stime 12, in
		// clock ticks of 1/100 s (USER_HZ on Linux).
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 12 {
			u, _ := strconv.ParseFloat(f[11], 64)
			st, _ := strconv.ParseFloat(f[12], 64)
			out[name] = (u + st) / 100
		}
	}
	return out
}

func sleepUntil(ctx context.Context, t time.Time) error {
	tm := time.NewTimer(time.Until(t))
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}

// capacityCar is one simulated car on connector k: it plugs the
// connector's simulated vehicle in and pays the way vehiclegw does.
type capacityCar struct {
	wc      *wallclient.Client
	payer   *carpay.Payer
	paid    atomic.Int64 // credited, as the status stream last said
	changed chan struct{}
}

func newCapacityCar(ctx context.Context, base string, k int, payer *carpay.Payer) (*capacityCar, error) {
	u, err := url.Parse(fmt.Sprintf("%s/c/%d", base, k))
	if err != nil {
		return nil, err
	}
	req, _ := http.NewRequestWithContext(ctx, "POST", u.String()+"/api/sim/plug", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("plug: %s", resp.Status)
	}
	c := &capacityCar{wc: &wallclient.Client{Base: u}, payer: payer, changed: make(chan struct{}, 1)}
	open := make(chan struct{})
	go func() {
		var once sync.Once
		for st := range c.wc.Follow(ctx) {
			if st.Session != nil {
				once.Do(func() { close(open) })
				c.paid.Store(st.Session.PaidMsat)
				select {
				case c.changed <- struct{}{}:
				default:
				}
			}
		}
	}()
	select {
	case <-open:
		return c, nil
	case <-time.After(30 * time.Second):
		return nil, errors.New("no session opened within 30 s of plugging in")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// increment buys amt msat of energy and waits until the wall credits it.
func (c *capacityCar) increment(ctx context.Context, amt int64) error {
	want := c.paid.Load() + amt
	o, err := c.wc.Offer(ctx)
	if err != nil {
		return fmt.Errorf("offer: %w", err)
	}
	pr, err := c.wc.Invoice(ctx, o, amt, -1)
	if err != nil {
		return fmt.Errorf("invoice: %w", err)
	}
	res, err := c.payer.Pay(ctx, pr, invoicecheck.Expect{AmountMsat: amt, Metadata: o.Metadata, Offer: o.Terms,
		MaxPaymentMsat: 100_000, MaxPriceMsatPerWh: 2_000})
	if err != nil {
		return err
	}
	if res.Status != lndclient.Succeeded {
		return fmt.Errorf("payment %s: %s", res.Status, res.FailureReason)
	}
	limit := time.After(30 * time.Second)
	for c.paid.Load() < want {
		select {
		case <-c.changed:
		case <-limit:
			return fmt.Errorf("paid, but not credited within 30 s (%d of %d msat)", c.paid.Load(), want)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
