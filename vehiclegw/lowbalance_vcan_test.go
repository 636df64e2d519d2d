//go:build vcan

package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.einride.tech/can"

	"satwatt/dbc"
	"satwatt/internal/canlog"
	"satwatt/internal/canutils"
	"satwatt/internal/prereq"
)

// TestGuestLowBalance is the guest half of TestLowBalanceOnVehicleBus: it
// runs where vcan0 exists, with the wall and the car's node on the host.
// The simulated car and vehiclegw run share vcan0; candump captures the
// bus, and every SATWATT_Status frame is decoded with satwatt.dbc. The car's
// channel cannot pay for its plan, so the gateway must show LOW_BALANCE
// while it is still charging on credit it has paid for: before the car
// runs dry, not after a failed payment.
func TestGuestLowBalance(t *testing.T) {
	wallURL, lndURI, simPort := os.Getenv(lowBalanceWallEnv), os.Getenv(lowBalanceLndEnv), os.Getenv(lowBalanceSimcarEnv)
	if wallURL == "" || lndURI == "" || simPort == "" {
		prereq.Missing(t, "no wall or node for the car: TestLowBalanceOnVehicleBus runs this test with them")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	db, err := dbc.LoadBuiltin("satwatt.dbc")
	if err != nil {
		t.Fatal(err)
	}
	statusMsg, walletMsg := db.MessageByName("SATWATT_Status"), db.MessageByName("SATWATT_Wallet")
	dump, err := canutils.StartCandump(ctx, "vcan0")
	if err != nil {
		t.Fatal(err)
	}
	defer dump.Stop()

	// The commands' logs go to one buffer, shown when the test fails.
	var logs syncBuffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("simcar and vehiclegw logs:\n%s", logs.String())
		}
	})
	ctl := "http://127.0.0.1:" + simPort
	simCtx, stopSim := context.WithCancel(ctx)
	simDone := make(chan int, 1)
	go func() {
		simDone <- run(simCtx, []string{"simcar", "--can", "vcan0", "--control", ":" + simPort,
			"--capacity-kwh", "60", "--soc", "20", "--target", "100", "--charger-kw", "11"}, &logs, &logs)
	}()
	defer func() { stopSim(); <-simDone }()
	waitHTTPOK(t, "the simulated car's control API", ctl+"/state", time.Minute)

	carDB := filepath.Join(t.TempDir(), "car.db")
	gwCtx, stopGW := context.WithCancel(ctx)
	gwDone := make(chan int, 1)
	go func() {
		gwDone <- run(gwCtx, []string{"run", "--can", "vcan0", "--wall", wallURL, "--db", carDB,
			"--lndconnect", lndURI, "--target", "80", "--max-price", strconv.Itoa(lowBalancePrice)}, &logs, &logs)
	}()
	defer func() { stopGW(); <-gwDone }()
	httpDo(t, "POST", ctl+"/plug", os.Getenv("SATWATT_SIMCAR_TOKEN"))

	// Follow the bus: every change of state or error is kept for the log.
	type shown struct {
		state, err            string
		creditWh, boughtWh    int64
		satsSpent, balanceSat int64
	}
	var cur, last shown
	var changes []string
	var statusLine string
	next := func(until func(shown) bool, what string) shown {
		t.Helper()
		for {
			var line string
			select {
			case l, ok := <-dump.Lines:
				if !ok {
					t.Fatalf("candump ended while waiting for %s", what)
				}
				line = l
			case code := <-gwDone:
				gwDone <- code
				t.Fatalf("vehiclegw run ended (exit %d) while waiting for %s", code, what)
			case <-ctx.Done():
				t.Fatalf("no %s on vcan0; status changes seen:\n%s", what, strings.Join(changes, "\n"))
			}
			var f can.Frame
			if _, _, err := canlog.ParseCandump([]byte(line), &f); err != nil {
				t.Fatalf("candump printed %q: %v", line, err)
			}
			// The gateway sends its status, then its wallet: judge the
			// pair once the wallet frame is in.
			switch f.ID {
			case statusMsg.ID:
				statusLine = line
				cur.state = named(t, statusMsg, "SW_State", &f)
				cur.err = named(t, statusMsg, "SW_Error", &f)
				cur.creditWh = raw(t, statusMsg, "SW_CreditWh", &f)
				cur.boughtWh = raw(t, statusMsg, "SW_EnergyBoughtWh", &f)
				continue
			case walletMsg.ID:
				cur.satsSpent = raw(t, walletMsg, "SW_SatsSpent", &f)
				cur.balanceSat = raw(t, walletMsg, "SW_BalanceSat", &f)
			default:
				continue
			}
			if cur.state != last.state || cur.err != last.err {
				changes = append(changes, fmt.Sprintf("%s %s  state=%s error=%s credit=%d Wh bought=%d Wh spent=%d sat balance=%d sat",
					statusLine, strings.Fields(line)[2], cur.state, cur.err, cur.creditWh, cur.boughtWh, cur.satsSpent, cur.balanceSat))
			}
			last = cur
			if until(cur) {
				return cur
			}
		}
	}

	got := next(func(s shown) bool {
		return s.state == "CHARGING" && s.err == "LOW_BALANCE" && s.creditWh > 0
	}, "LOW_BALANCE while charging on paid credit")
	if got.boughtWh <= 0 || got.satsSpent <= 0 {
		t.Errorf("low balance shown with %d Wh bought and %d sat spent: the car should have paid first", got.boughtWh, got.satsSpent)
	}
	// The wallet frame says why: what is left cannot buy the rest of the
	// plan (40 kWh at the wall's price is about 40,000 sat).
	if got.balanceSat >= 40_000 || got.balanceSat <= 0 {
		t.Errorf("balance on the bus %d sat, want some but less than the plan needs", got.balanceSat)
	}

	httpDo(t, "POST", ctl+"/unplug", os.Getenv("SATWATT_SIMCAR_TOKEN"))
	next(func(s shown) bool { return s.state == "IDLE" }, "IDLE after the unplug")
	t.Logf("SATWATT_Status changes captured with candump on vcan0, decoded with satwatt.dbc:\n%s", strings.Join(changes, "\n"))

	stopGW()
	if code := <-gwDone; code != 0 && code != 130 {
		t.Errorf("vehiclegw run exit code %d after cancel", code)
	}
	gwDone <- 0
	var hist bytes.Buffer
	if code := run(context.Background(), []string{"history", "--db", carDB}, &hist, &hist); code != 0 {
		t.Errorf("vehiclegw history exit %d: %s", code, hist.String())
	}
	t.Logf("the car's ledger:\n%s", hist.String())
}

func named(t *testing.T, m *dbc.Message, signal string, f *can.Frame) string {
	t.Helper()
	v := raw(t, m, signal, f)
	name, ok := m.Signal(signal).ValueName(v)
	if !ok {
		t.Fatalf("%s.%s = %d has no name in satwatt.dbc", m.Name, signal, v)
	}
	return name
}

func raw(t *testing.T, m *dbc.Message, signal string, f *can.Frame) int64 {
	t.Helper()
	v, ok := m.Signal(signal).DecodeRaw(f)
	if !ok {
		t.Fatalf("%s.%s is not in the frame % x", m.Name, signal, f.Data[:f.Length])
	}
	return v
}

// syncBuffer is a buffer two commands write to at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
