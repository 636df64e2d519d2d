package status

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.einride.tech/can"

	"satwatt/internal/clock"
	vp "satwatt/internal/vehicleprofile"
)

func binding(t *testing.T) *vp.Binding {
	t.Helper()
	b, err := vp.LoadBinding("generic", "")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func hexFrame(f can.Frame) string {
	return fmt.Sprintf("%03X#%X", f.ID, f.Data[:f.Length])
}

// The expected bytes are worked out by hand from satwatt.dbc (Intel order):
// SW_State bits 0-3, SW_Error 4-7, SW_Counter 8-11, SW_CreditWh 16-31
// signed, SW_EnergyBoughtWh 32-63; SW_SatsSpent 0-31, SW_BalanceSat 32-63.
func TestEncoderFrames(t *testing.T) {
	enc, err := NewEncoder(binding(t))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		s       Status
		counter uint8
		want    [2]string
	}{
		{"idle", Status{}, 0, [2]string{"5A0#0000000000000000", "5A1#0000000000000000"}},
		{"charging, low balance", Status{State: Charging, Error: LowBalance, CreditWh: -12, EnergyBoughtWh: 1234, SatsSpent: 5678, BalanceSat: 90000}, 3,
			[2]string{"5A0#1403F4FFD2040000", "5A1#2E160000905F0100"}},
		// Credit beyond the signal's range shows at its end; the counter
		// wraps at 4 bits (17 -> 1).
		{"clamped display values", Status{State: Failed, Error: NodeUnreachable, CreditWh: 100000, EnergyBoughtWh: 1 << 40, BalanceSat: -5}, 17,
			[2]string{"5A0#6801FF7FFFFFFFFF", "5A1#0000000000000000"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			frames, err := enc.Frames(tc.s, tc.counter)
			if err != nil {
				t.Fatal(err)
			}
			if len(frames) != 2 {
				t.Fatalf("%d frames, want 2", len(frames))
			}
			for i := range frames {
				if got := hexFrame(frames[i]); got != tc.want[i] {
					t.Errorf("frame %d = %s, want %s", i, got, tc.want[i])
				}
			}
		})
	}
	if _, err := enc.Frames(Status{State: 99}, 0); err == nil {
		t.Error("a state outside the table was encoded")
	}
}

func TestNamesMatchTheDBC(t *testing.T) {
	b := binding(t)
	for s := Idle; s <= Failed; s++ {
		if _, ok := b.Status[vp.StatusState].RawValue(s.String()); !ok {
			t.Errorf("state %v missing from SW_State", s)
		}
	}
	for c := NoError; c <= VehicleDataStale; c++ {
		if _, ok := b.Status[vp.StatusError].RawValue(c.String()); !ok {
			t.Errorf("error %v missing from SW_Error", c)
		}
	}
}

type recorder struct {
	mu     sync.Mutex
	frames []string
	sent   chan struct{}
}

func (r *recorder) Send(ctx context.Context, f can.Frame) error {
	r.mu.Lock()
	r.frames = append(r.frames, hexFrame(f))
	r.mu.Unlock()
	r.sent <- struct{}{}
	return nil
}

func TestTransmitterPeriodAndChange(t *testing.T) {
	enc, err := NewEncoder(binding(t))
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewManual(time.Date(2026, 11, 25, 2, 0, 0, 0, time.UTC))
	rec := &recorder{sent: make(chan struct{}, 16)}
	tx := NewTransmitter(enc, rec, clk, time.Second, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- tx.Run(ctx) }()
	waitSent := func(n int) {
		for i := 0; i < n; i++ {
			select {
			case <-rec.sent:
			case <-time.After(10 * time.Second):
				t.Fatal("nothing sent")
			}
		}
	}
	waitWaiting := func() {
		deadline := time.Now().Add(10 * time.Second)
		for clk.Waiters() == 0 {
			if time.Now().After(deadline) {
				t.Fatal("transmitter never waited on the clock")
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitSent(2) // at start
	waitWaiting()
	clk.Advance(time.Second)
	waitSent(2) // the period
	waitWaiting()
	tx.Set(Status{State: Charging}) // a change goes at once, with no clock movement
	waitSent(2)
	tx.Set(Status{State: Charging}) // no change: nothing extra
	waitWaiting()
	cancel()
	<-done
	rec.mu.Lock()
	defer rec.mu.Unlock()
	want := []string{"5A0#0000000000000000", "5A1#0000000000000000", "5A0#0001000000000000", "5A1#0000000000000000", "5A0#0402000000000000", "5A1#0000000000000000"}
	if fmt.Sprint(rec.frames) != fmt.Sprint(want) {
		t.Errorf("sent %v\nwant %v", rec.frames, want)
	}
}
