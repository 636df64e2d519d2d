package wallstore

import (
	"errors"
	"testing"
	"time"
)

func TestSeriesCreditFollowsPaymentsAndEnergy(t *testing.T) {
	s, _ := openStore(t)
	ctx := ctxT(t)
	mustOpenSession(t, s, "s1", t0)
	mustOpenSession(t, s, "other", t0)
	// 250 msat/Wh. Settlement lands one second after the time given.
	mustPay(t, s, "s1", "a", 7500, 7500, t0)                     // settled t0+1s
	mustPay(t, s, "s1", "b", 2500, 2500, t0.Add(59*time.Second)) // settled t0+60s
	mustPay(t, s, "other", "c", 9000, 9000, t0)
	for _, p := range []struct {
		at      time.Duration
		power   int64
		mWh     int64
		session string
	}{
		{0, 0, 0, "s1"},
		{time.Second, 7000, 0, "s1"}, // same instant as the first settlement: it counts
		{30 * time.Second, 7000, 20_000, "s1"},
		{60 * time.Second, 7000, 31_999, "s1"},
		{30 * time.Second, 5000, 99_000, "other"},
	} {
		if err := s.RecordProgress(ctx, p.session, t0.Add(p.at), "energising", p.mWh, p.power); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Series(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	want := []Point{
		{At: t0, PowerW: 0, DeliveredMWh: 0, CreditMsat: 0},
		{At: t0.Add(time.Second), PowerW: 7000, DeliveredMWh: 0, CreditMsat: 7500},
		{At: t0.Add(30 * time.Second), PowerW: 7000, DeliveredMWh: 20_000, CreditMsat: 7500 - 5000},
		// 31.999 Wh cost 7,999 msat (rounded down like the meter).
		{At: t0.Add(60 * time.Second), PowerW: 7000, DeliveredMWh: 31_999, CreditMsat: 10_000 - 7999},
	}
	if len(got) != len(want) {
		t.Fatalf("%d points, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if !got[i].At.Equal(want[i].At) || got[i].PowerW != want[i].PowerW ||
			got[i].DeliveredMWh != want[i].DeliveredMWh || got[i].CreditMsat != want[i].CreditMsat {
			t.Errorf("point %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if _, err := s.Series(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown session: %v, want ErrNotFound", err)
	}
}
