package vehiclestate

import (
	"testing"
	"time"

	"go.einride.tech/can"

	vp "satwatt/internal/vehicleprofile"
)

func bind(t testing.TB, profile, dbcOverride string) *vp.Binding {
	t.Helper()
	b, err := vp.LoadBinding(profile, dbcOverride)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func encode(t testing.TB, b *vp.Binding, msg string, values map[string]float64) can.Frame {
	t.Helper()
	m := b.DB.MessageByName(msg)
	if m == nil {
		t.Fatalf("no message %s", msg)
	}
	f, err := m.Encode(values)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

var t0 = time.Date(2026, 11, 25, 2, 0, 0, 0, time.UTC)

func TestGenericDecodeAndUnits(t *testing.T) {
	b := bind(t, "generic", "")
	tr := New(b, nil)
	feed := func(f can.Frame, at time.Duration) { tr.Update(&f, t0.Add(at)) }
	feed(encode(t, b, "EV_BatteryStatus", map[string]float64{"EV_StateOfCharge": 48.3, "EV_PackVoltage": 372.25, "EV_PackCurrent": -12.5}), 0)
	feed(encode(t, b, "EV_BatteryEnergy", map[string]float64{"EV_UsableEnergyFull": 60.25, "EV_UsableEnergyRemaining": 29.1}), 0)
	feed(encode(t, b, "EV_ChargePort", map[string]float64{"EV_CableState": 2, "EV_PortDoor": 1, "EV_ChargeState": 2}), 0)
	feed(encode(t, b, "EV_ChargePower", map[string]float64{"EV_ACVoltage": 230.1, "EV_ACCurrent": 16, "EV_ChargePower": 3680}), 0)
	s := tr.Snapshot(t0.Add(50 * time.Millisecond))
	checks := []struct {
		name string
		got  any
		want any
	}{
		{"soc", deref(s.SOCPct), 48.3},
		{"pack energy Wh", derefI(s.PackEnergyWh), int64(60250)},
		{"remaining Wh", derefI(s.EnergyRemainingWh), int64(29100)},
		{"voltage", deref(s.PackVoltageV), 372.25},
		{"current", deref(s.PackCurrentA), -12.5},
		{"power", derefI(s.ChargePowerW), int64(3680)},
		{"ac voltage", deref(s.ACVoltageV), 230.1},
		{"cable", s.Cable, Latched},
		{"door", s.PortDoor, Open},
		{"charging", s.Charging, Charging},
		{"charging value", s.ChargingValue, "CHARGING"},
		{"kind", s.PackEnergyKind, "usable"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	if len(s.Stale) != 0 {
		t.Errorf("stale %v, want none", s.Stale)
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

func derefI(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestStaleValuesBecomeUnknown(t *testing.T) {
	b := bind(t, "generic", "")
	tr := New(b, nil)
	f := encode(t, b, "EV_BatteryStatus", map[string]float64{"EV_StateOfCharge": 50})
	tr.Update(&f, t0)
	stale := b.Roles[vp.RoleSOC].StaleAfter
	if stale != time.Second { // ten cycles of 100 ms from the DBC
		t.Fatalf("soc stale after %v, want 1s from the DBC's cycle time", stale)
	}
	tests := []struct {
		at      time.Duration
		known   bool
		inStale bool
	}{
		{0, true, false},
		{stale, true, false},
		{stale + time.Millisecond, false, true},
		{time.Hour, false, true},
	}
	for _, tc := range tests {
		s := tr.Snapshot(t0.Add(tc.at))
		if (s.SOCPct != nil) != tc.known {
			t.Errorf("at %v: soc known=%v, want %v", tc.at, s.SOCPct != nil, tc.known)
		}
		found := false
		for _, r := range s.Stale {
			found = found || r == vp.RoleSOC
		}
		if found != tc.inStale {
			t.Errorf("at %v: soc in stale list=%v, want %v (%v)", tc.at, found, tc.inStale, s.Stale)
		}
	}
}

func TestSNAIsUnknown(t *testing.T) {
	b := bind(t, "generic", "")
	tr := New(b, nil)
	f := encode(t, b, "EV_ChargePort", map[string]float64{"EV_CableState": 1})
	tr.Update(&f, t0)
	if got := tr.Snapshot(t0).Cable; got != Connected {
		t.Fatalf("cable %s, want connected", got)
	}
	f = encode(t, b, "EV_ChargePort", map[string]float64{"EV_CableState": 3}) // SNA
	tr.Update(&f, t0.Add(100*time.Millisecond))
	if got := tr.Snapshot(t0.Add(100 * time.Millisecond)).Cable; got != Unknown {
		t.Fatalf("cable %s after SNA, want unknown", got)
	}
}

func TestEvents(t *testing.T) {
	b := bind(t, "generic", "")
	var got []string
	tr := New(b, func(e Event) { got = append(got, e.Kind) })
	steps := []struct {
		cable, door, charge float64
	}{
		{0, 0, 0}, // first sight: no event
		{0, 1, 0}, // door opens
		{1, 1, 1}, // plugged, ready
		{2, 1, 1}, // latched: still plugged, no event
		{2, 1, 2}, // charging
		{2, 1, 3}, // complete
		{0, 1, 0}, // unplugged
		{0, 0, 0}, // door closed
	}
	for i, s := range steps {
		f := encode(t, b, "EV_ChargePort", map[string]float64{"EV_CableState": s.cable, "EV_PortDoor": s.door, "EV_ChargeState": s.charge})
		tr.Update(&f, t0.Add(time.Duration(i)*100*time.Millisecond))
	}
	want := []string{DoorOpened, CablePlugged, ChargingStarted, ChargingStopped, CableUnplugged, DoorClosed}
	if len(got) != len(want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("events %v, want %v", got, want)
		}
	}
}

// TestEnergyIntegration checks the integral in exact integers: 7 kW for one
// hour sampled every 100 ms is 7,000,000 mWh, with nothing lost to rounding,
// and a gap longer than the staleness timeout adds nothing.
func TestEnergyIntegration(t *testing.T) {
	b := bind(t, "generic", "")
	tests := []struct {
		name     string
		powerW   float64
		samples  int
		step     time.Duration
		gapAfter int // sample index after which a 10 s gap occurs; -1 for none
		wantMWh  int64
	}{
		{"7 kW for an hour", 7000, 36001, 100 * time.Millisecond, -1, 7_000_000},
		{"zero power", 0, 1000, 100 * time.Millisecond, -1, 0},
		// 11 samples, 10 intervals, one of them the gap: 9 × 0.1 s at 3.6 kW = 0.9 Wh
		{"gap is not guessed", 3600, 11, 100 * time.Millisecond, 5, 900},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := New(b, nil)
			at := t0
			for i := 0; i < tc.samples; i++ {
				f := encode(t, b, "EV_ChargePower", map[string]float64{"EV_ChargePower": tc.powerW})
				tr.Update(&f, at)
				at = at.Add(tc.step)
				if i == tc.gapAfter {
					at = at.Add(10 * time.Second)
				}
			}
			if got := tr.ChargedEnergyMWh(); got != tc.wantMWh {
				t.Errorf("energy %d mWh, want %d", got, tc.wantMWh)
			}
		})
	}
}

func TestUnknownIDsAndShortFramesAreCounted(t *testing.T) {
	b := bind(t, "generic", "")
	tr := New(b, nil)
	unknown := can.Frame{ID: 0x123, Length: 8}
	tr.Update(&unknown, t0)
	short := encode(t, b, "EV_BatteryStatus", map[string]float64{"EV_StateOfCharge": 77.7, "EV_PackCurrent": 5})
	short.Length = 3 // holds SOC (bits 0..9) but not the current (bits 32..47)
	tr.Update(&short, t0)
	c := tr.Counters()
	if c.Frames != 2 || c.UnknownID != 1 || c.LengthMismatch != 1 || c.LengthMismatchByID[0x4A0] != 1 {
		t.Errorf("counters %+v", c)
	}
	s := tr.Snapshot(t0)
	if s.SOCPct == nil || *s.SOCPct != 77.7 {
		t.Errorf("soc from a short frame: %v, want 77.7", deref(s.SOCPct))
	}
	if s.PackCurrentA != nil {
		t.Errorf("current from a frame too short to hold it: %v, want unknown", *s.PackCurrentA)
	}
}

func TestUpdateDoesNotAllocate(t *testing.T) {
	b := bind(t, "generic", "")
	tr := New(b, nil)
	frames := []can.Frame{
		encode(t, b, "EV_BatteryStatus", map[string]float64{"EV_StateOfCharge": 50}),
		encode(t, b, "EV_ChargePower", map[string]float64{"EV_ChargePower": 7000}),
		encode(t, b, "EV_ChargePort", map[string]float64{"EV_CableState": 2}),
		{ID: 0x7DF, Length: 8},
	}
	at := t0
	allocs := testing.AllocsPerRun(1000, func() {
		for i := range frames {
			at = at.Add(10 * time.Millisecond)
			tr.Update(&frames[i], at)
		}
	})
	if allocs != 0 {
		t.Errorf("Update allocates %v times per round, want 0", allocs)
	}
}

// TestHostileBus: what a hostile or broken node can put on the bus. Frames
// of the gateway's own status messages are counted and never read; a value
// outside its signal's DBC range is not used (the reading becomes unknown,
// not absurd); and a flood of random IDs, lengths and bytes leaves every
// value the tracker holds within its DBC range.
func TestHostileBus(t *testing.T) {
	b := bind(t, "generic", "")
	tr := New(b, nil)
	good := encode(t, b, "EV_BatteryStatus", map[string]float64{"EV_StateOfCharge": 48.3, "EV_PackVoltage": 372.25, "EV_PackCurrent": -12.5})
	tr.Update(&good, t0)

	allOnes := good
	for i := range allOnes.Data {
		allOnes.Data[i] = 0xFF
	}
	tr.Update(&allOnes, t0.Add(10*time.Millisecond))
	if s := tr.Snapshot(t0.Add(20 * time.Millisecond)); s.SOCPct != nil {
		t.Errorf("state of charge %v from a frame of all ones, want unknown", *s.SOCPct)
	}
	if c := tr.Counters(); c.OutOfRange == 0 {
		t.Error("a frame of all ones counted no value out of range")
	}
	tr.Update(&good, t0.Add(30*time.Millisecond))
	if s := tr.Snapshot(t0.Add(40 * time.Millisecond)); s.SOCPct == nil || *s.SOCPct != 48.3 {
		t.Errorf("state of charge %v after a good frame again, want 48.3", deref(s.SOCPct))
	}

	if len(b.StatusMessages) == 0 {
		t.Fatal("the generic profile has no status messages")
	}
	for i, m := range b.StatusMessages {
		spoof := can.Frame{ID: m.ID, IsExtended: m.Extended, Length: m.Length}
		spoof.Data[0] = byte(i + 1)
		tr.Update(&spoof, t0.Add(50*time.Millisecond))
	}
	if c := tr.Counters(); c.ForeignStatus != uint64(len(b.StatusMessages)) || tr.ForeignStatus() != c.ForeignStatus {
		t.Errorf("foreign status frames %d (%d), want %d", c.ForeignStatus, tr.ForeignStatus(), len(b.StatusMessages))
	}

	// A deterministic flood: 200,000 frames of random IDs (the profile's
	// own among them), lengths and bytes.
	seed := uint64(0x9E3779B97F4A7C15)
	next := func() uint64 { seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17; return seed }
	var ids []uint32
	for _, m := range b.DB.Messages {
		ids = append(ids, m.ID)
	}
	for i := range 200_000 {
		r := next()
		f := can.Frame{ID: uint32(r % 0x800), Length: uint8(r >> 11 % 9)}
		if r>>20%4 == 0 {
			f.ID = ids[int(r>>24)%len(ids)]
		}
		for j := range f.Data {
			f.Data[j] = byte(next())
		}
		tr.Update(&f, t0.Add(time.Second+time.Duration(i)*250*time.Microsecond))
		if i%1000 != 0 {
			continue
		}
		for role, s := range tr.roles {
			if s.valid && s.b.Kind == vp.Numeric && s.b.Factor != 0 && !s.sig.InRange(s.value/s.b.Factor) {
				t.Fatalf("frame %d: %s holds %v, outside %s's DBC range", i, role, s.value, s.sig.Name)
			}
		}
	}
	c := tr.Counters()
	t.Logf("flood: %d frames, %d of unknown IDs, %d length mismatches, %d values out of range, %d foreign status frames",
		c.Frames, c.UnknownID, c.LengthMismatch, c.OutOfRange, c.ForeignStatus)
}
