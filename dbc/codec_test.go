package dbc

import (
	"math"
	"strings"
	"testing"

	"go.einride.tech/can"
)

func frame(id uint32, data ...byte) can.Frame {
	f := can.Frame{ID: id, Length: uint8(len(data))}
	copy(f.Data[:], data)
	return f
}

func truncated(f can.Frame, n uint8) can.Frame {
	f.Length = n
	return f
}

var (
	// Intel (little-endian) message 0x100 of testdata/codec.dbc. Worked by hand:
	//   U12  4|12   bytes 0-1 = 0x3CA5, >>4 = 0x3CA = 970
	//   S8   16|8-  byte 2 = 0xF6 = -10
	//   Temp 24|8   byte 3 = 0x64 = 100; 100*0.5 - 40 = 10 degC
	//   Flag 39|1   byte 4 bit 7 = 1
	//   S13  40|13- byte 5 = 0x00, byte 6 low 5 bits of 0xFE = 0x1E: raw
	//               0x1E00 = 7680, minus 8192 = -512; *0.25 = -128
	//   Gear 56|3   byte 7 = 0xFB, low 3 bits = 0b011 = 3 (DRIVE); the set
	//               upper bits of bytes 6 and 7 check the masking.
	intelFrame = frame(0x100, 0xA5, 0x3C, 0xF6, 0x64, 0x80, 0x00, 0xFE, 0xFB)
	// Motorola (big-endian) message 0x200; start bit is the MSB:
	//   M16   7|16@0  byte 0 then byte 1 = 0x1234 = 4660
	//   M12   19|12@0 byte 2 bits 3..0 (0xA7 -> 0x7), byte 3 (0x89): 0x789 = 1929
	//   MS10  37|10@0- byte 4 bits 5..0 (0xE2 -> 0b100010), byte 5 bits 7..4
	//                  (0x5F -> 0x5): 0b1000100101 = 549, minus 1024 = -475;
	//                  *0.5 = -237.5
	//   MFlag 48|1@0  byte 6 bit 0 = 1
	motoFrame = frame(0x200, 0x12, 0x34, 0xA7, 0x89, 0xE2, 0x5F, 0x01, 0x00)
	// IEEE floats, little-endian: 1.5 = 0x3FC00000; -2.25 = 0xC0100000,
	// and F32Scaled is -2.25*2 + 1 = -3.5.
	floatFrame = frame(0x300, 0x00, 0x00, 0xC0, 0x3F, 0x00, 0x00, 0x10, 0xC0)
	// Multiplexed message 0x400: Page 0 carries Volts (0x03E8 = 1000, *0.1 =
	// 100 V), Page 1 carries Amps (0xFC18 = -1000 A); Always is byte 7.
	muxPage0 = frame(0x400, 0x00, 0xE8, 0x03, 0, 0, 0, 0, 0x07)
	muxPage1 = frame(0x400, 0x01, 0x18, 0xFC, 0, 0, 0, 0, 0x09)
	muxPage2 = frame(0x400, 0x02, 0xE8, 0x03, 0, 0, 0, 0, 0x0B)
)

func TestDecode(t *testing.T) {
	db := loadTestdata(t, "codec.dbc")
	remote := intelFrame
	remote.IsRemote = true
	for _, tc := range []struct {
		name   string
		f      can.Frame
		signal string
		want   float64
		raw    int64
		ok     bool
	}{
		{"intel unsigned", intelFrame, "U12", 970, 970, true},
		{"intel signed", intelFrame, "S8", -10, -10, true},
		{"intel scale and offset", intelFrame, "Temp", 10, 100, true},
		{"intel 1 bit", intelFrame, "Flag", 1, 1, true},
		{"intel signed scaled", intelFrame, "S13", -128, -512, true},
		{"intel last byte", intelFrame, "Gear", 3, 3, true},
		{"motorola 16", motoFrame, "M16", 4660, 4660, true},
		{"motorola 12 across bytes", motoFrame, "M12", 1929, 1929, true},
		{"motorola signed", motoFrame, "MS10", -237.5, -475, true},
		{"motorola 1 bit", motoFrame, "MFlag", 1, 1, true},
		{"float32", floatFrame, "F32", 1.5, 0x3FC00000, true},
		{"float32 scaled", floatFrame, "F32Scaled", -3.5, 0xC0100000, true},
		{"mux page 0 volts", muxPage0, "Volts", 100, 1000, true},
		{"mux page 0 not amps", muxPage0, "Amps", 0, 0, false},
		{"mux page 1 amps", muxPage1, "Amps", -1000, -1000, true},
		{"mux page 1 not volts", muxPage1, "Volts", 0, 0, false},
		{"mux page 2 neither", muxPage2, "Volts", 0, 0, false},
		{"mux page 2 neither amps", muxPage2, "Amps", 0, 0, false},
		{"mux switch itself", muxPage1, "Page", 1, 1, true},
		{"mux unmultiplexed signal", muxPage2, "Always", 11, 11, true},
		{"mux switch outside frame", truncated(muxPage0, 0), "Volts", 0, 0, false},
		// A 6-byte frame of an 8-byte message: what lies inside decodes.
		{"short: U12 inside", truncated(intelFrame, 6), "U12", 970, 970, true},
		{"short: Flag inside", truncated(intelFrame, 6), "Flag", 1, 1, true},
		{"short: S13 needs 7 bytes", truncated(intelFrame, 6), "S13", 0, 0, false},
		{"short: Gear needs 8 bytes", truncated(intelFrame, 6), "Gear", 0, 0, false},
		{"short: S13 with 7 bytes", truncated(intelFrame, 7), "S13", -128, -512, true},
		{"short motorola: MS10 inside 6", truncated(motoFrame, 6), "MS10", -237.5, -475, true},
		{"short motorola: MS10 needs 6", truncated(motoFrame, 5), "MS10", 0, 0, false},
		{"short motorola: MFlag needs 7", truncated(motoFrame, 6), "MFlag", 0, 0, false},
		{"empty frame", truncated(intelFrame, 0), "U12", 0, 0, false},
		{"remote frame", remote, "U12", 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := db.Lookup(tc.f.ID, false)
			s := m.Signal(tc.signal)
			got, ok := s.Decode(&tc.f)
			if ok != tc.ok || got != tc.want {
				t.Errorf("Decode = %v, %v; want %v, %v", got, ok, tc.want, tc.ok)
			}
			raw, ok := s.DecodeRaw(&tc.f)
			if ok != tc.ok || raw != tc.raw {
				t.Errorf("DecodeRaw = %d, %v; want %d, %v", raw, ok, tc.raw, tc.ok)
			}
		})
	}
}

// Decode reports what the frame says, even outside the DBC's [min, max]:
// clamping would hide a sender's fault or an SNA value.
func TestDecodeDoesNotClamp(t *testing.T) {
	db, err := LoadBuiltin("satwatt.dbc")
	if err != nil {
		t.Fatal(err)
	}
	// EV_StateOfCharge 0|10 at 0.1 %, range [0, 100]: raw 0x3FF = 1023 = 102.3 %.
	f := frame(0x4A0, 0xFF, 0x03, 0, 0, 0, 0, 0, 0)
	got, ok := db.Lookup(0x4A0, false).Signal("EV_StateOfCharge").Decode(&f)
	if !ok || math.Abs(got-102.3) > 1e-9 {
		t.Errorf("Decode = %v, %v; want 102.3", got, ok)
	}
}

func TestValueTable(t *testing.T) {
	db := loadTestdata(t, "codec.dbc")
	gear := db.Lookup(0x100, false).Signal("Gear")
	for _, tc := range []struct {
		raw  int64
		name string
		ok   bool
	}{
		{0, "PARK", true},
		{3, "DRIVE", true},
		{7, "SNA", true},
		{5, "", false},
		{-1, "", false},
	} {
		name, ok := gear.ValueName(tc.raw)
		if name != tc.name || ok != tc.ok {
			t.Errorf("ValueName(%d) = %q, %v; want %q, %v", tc.raw, name, ok, tc.name, tc.ok)
		}
	}
	if raw, ok := gear.RawValue("REVERSE"); !ok || raw != 1 {
		t.Errorf("RawValue(REVERSE) = %d, %v", raw, ok)
	}
	if _, ok := gear.RawValue("reverse"); ok {
		t.Error("RawValue must match exactly")
	}
	if !gear.HasValueTable() || db.Lookup(0x100, false).Signal("U12").HasValueTable() {
		t.Error("HasValueTable wrong")
	}
	if got := len(gear.Desc.ValueDescriptions); got != 5 {
		t.Errorf("descriptor has %d value descriptions, want 5", got)
	}
}

func TestSignalEncode(t *testing.T) {
	db := loadTestdata(t, "codec.dbc")
	for _, tc := range []struct {
		message uint32
		signal  string
		value   float64
		raw     int64
		err     string // substring of the error; "" for success
	}{
		// 0.29999999/0.1 = 2.9999999: truncation would give 2.
		{0x500, "Tenth", 0.29999999, 3, ""},
		{0x500, "Tenth", 0.36, 4, ""},
		{0x500, "Tenth", 0.34, 3, ""},
		{0x500, "Tenth", 0.1 * 3, 3, ""},
		{0x500, "Tenth", 25.5, 255, ""},
		{0x500, "Tenth", 0, 0, ""},
		{0x500, "Tenth", 25.6, 0, "signal Tenth: value 25.6 is outside its range [0, 25.5]"},
		{0x500, "Tenth", -0.1, 0, "signal Tenth: value -0.1 is outside its range [0, 25.5]"},
		{0x500, "Signed", -128, -128, ""},
		{0x500, "Signed", 127, 127, ""},
		{0x500, "Signed", -2.6, -3, ""},
		{0x500, "Signed", -129, 0, "outside its range [-128, 127]"},
		{0x500, "NoRange", 15, 15, ""},
		{0x500, "NoRange", 16, 0, "signal NoRange: value 16 gives raw 16, outside the 4-bit unsigned range 0..15"},
		{0x500, "NoRange", -1, 0, "outside the 4-bit unsigned range 0..15"},
		{0x500, "Offset", 10, 100, ""},
		{0x500, "Offset", -40, 0, ""},
		{0x500, "Offset", 87.5, 255, ""},
		{0x500, "Offset", 87.6, 0, "value 87.6 degC is outside its range [-40, 87.5]"},
		{0x500, "MotoEnc", -20.48, -2048, ""},
		{0x500, "MotoEnc", 20.47, 2047, ""},
		{0x500, "Wide", 65535, 65535, ""},
		{0x500, "Wide", 65536, 0, "outside the 16-bit unsigned range 0..65535"},
		{0x500, "Tenth", math.NaN(), 0, "signal Tenth: cannot encode NaN"},
		{0x500, "NoRange", math.Inf(1), 0, "cannot encode +Inf"},
		{0x100, "S13", -1024, -4096, ""},
		{0x100, "Flag", 1, 1, ""},
		{0x200, "MS10", -237.5, -475, ""},
		{0x300, "F32", 1.5, 0x3FC00000, ""},
		{0x300, "F32Scaled", -3.5, 0xC0100000, ""},
		{0x300, "F32", 1e39, 0, "does not fit a 32-bit float"},
	} {
		t.Run(tc.signal, func(t *testing.T) {
			s := db.Lookup(tc.message, false).Signal(tc.signal)
			f := can.Frame{ID: tc.message, Length: 8}
			err := s.Encode(&f.Data, tc.value)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Encode(%v) error %v, want %q", tc.value, err, tc.err)
				}
				if f.Data != (can.Data{}) {
					t.Errorf("a refused value changed the data: % X", f.Data)
				}
				return
			}
			if err != nil {
				t.Fatalf("Encode(%v): %v", tc.value, err)
			}
			raw, ok := s.DecodeRaw(&f)
			if !ok || raw != tc.raw {
				t.Errorf("Encode(%v) wrote raw %d, want %d", tc.value, raw, tc.raw)
			}
		})
	}
}

// Encoding one signal leaves its neighbours' bits alone.
func TestSignalEncodeKeepsOtherBits(t *testing.T) {
	db := loadTestdata(t, "codec.dbc")
	for _, tc := range []struct {
		f      can.Frame
		signal string
	}{
		{intelFrame, "S13"},
		{intelFrame, "U12"},
		{intelFrame, "Flag"},
		{motoFrame, "M12"},
		{motoFrame, "MS10"},
	} {
		m := db.Lookup(tc.f.ID, false)
		s := m.Signal(tc.signal)
		f := tc.f
		v, _ := s.Decode(&f)
		if err := s.Encode(&f.Data, v); err != nil {
			t.Fatal(err)
		}
		if f.Data != tc.f.Data {
			t.Errorf("%s: re-encoding its own value changed % X to % X", tc.signal, tc.f.Data, f.Data)
		}
	}
}

func TestMessageEncode(t *testing.T) {
	db := loadTestdata(t, "codec.dbc")
	for _, tc := range []struct {
		name    string
		message string
		values  map[string]float64
		want    can.Frame
		err     string
	}{
		{"intel round trip", "Intel",
			map[string]float64{"U12": 970, "S8": -10, "Temp": 10, "Flag": 1, "S13": -128, "Gear": 3},
			// As intelFrame, without the bits no signal covers.
			frame(0x100, 0xA0, 0x3C, 0xF6, 0x64, 0x80, 0x00, 0x1E, 0x03), ""},
		{"motorola round trip", "Moto",
			map[string]float64{"M16": 4660, "M12": 1929, "MS10": -237.5, "MFlag": 1},
			frame(0x200, 0x12, 0x34, 0x07, 0x89, 0x22, 0x50, 0x01, 0x00), ""},
		{"signals not given are raw 0", "Enc",
			map[string]float64{"Tenth": 1.2},
			frame(0x500, 12, 0, 0, 0, 0, 0, 0, 0), ""},
		{"extended", "Extended", map[string]float64{"X": 5},
			can.Frame{ID: 0x200, IsExtended: true, Length: 8, Data: can.Data{5}}, ""},
		{"mux page 1", "Muxed", map[string]float64{"Page": 1, "Amps": -1000, "Always": 9}, muxPage1, ""},
		{"mux page 0", "Muxed", map[string]float64{"Page": 0, "Volts": 100, "Always": 7}, muxPage0, ""},
		{"declared length 5", "Short", map[string]float64{"Fits": 1}, frame(0x600, 1, 0, 0, 0, 0), ""},
		{"unknown signals", "Enc", map[string]float64{"Tenth": 1, "Zap": 1, "Bogus": 2}, can.Frame{},
			"message Enc has no signal named Bogus, Zap"},
		{"mux value missing", "Muxed", map[string]float64{"Volts": 1}, can.Frame{},
			"a value for its multiplexor Page is required"},
		{"mux wrong group", "Muxed", map[string]float64{"Page": 0, "Amps": 5}, can.Frame{},
			"signal Amps is sent only when Page is 1, not 0"},
		{"signal past declared length", "Short", map[string]float64{"Overhang": 1}, can.Frame{},
			"signal Overhang needs 6 bytes but message Short declares 5"},
		{"out of range", "Enc", map[string]float64{"Offset": 100}, can.Frame{},
			"signal Offset: value 100 degC is outside its range [-40, 87.5]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := db.MessageByName(tc.message).Encode(tc.values)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f != tc.want {
				t.Errorf("frame %v, want %v", f, tc.want)
			}
		})
	}
}

// Values that are whole multiples of the factor come back exactly (to float
// precision) after Encode and Decode.
func TestEncodeDecodeRoundTrip(t *testing.T) {
	db, err := LoadBuiltin("satwatt.dbc")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		message string
		values  map[string]float64
	}{
		{"EV_BatteryStatus", map[string]float64{"EV_StateOfCharge": 57.3, "EV_PackVoltage": 391.27, "EV_PackCurrent": -123.4, "EV_PackTemperature": -12}},
		{"EV_BatteryStatus", map[string]float64{"EV_StateOfCharge": 100, "EV_PackVoltage": 655.35, "EV_PackCurrent": 3276.7, "EV_PackTemperature": 127}},
		{"EV_BatteryEnergy", map[string]float64{"EV_UsableEnergyFull": 75.5, "EV_UsableEnergyRemaining": 40.01, "EV_NominalEnergyFull": 78.8}},
		{"EV_ChargePort", map[string]float64{"EV_CableState": 2, "EV_PortDoor": 1, "EV_ChargeState": 2, "EV_ChargeMode": 1, "EV_TargetSOC": 80}},
		{"EV_ChargePower", map[string]float64{"EV_ACVoltage": 230.4, "EV_ACCurrent": 15.9, "EV_ChargePower": 1000000}},
		{"SATWATT_Status", map[string]float64{"SW_State": 4, "SW_Error": 10, "SW_Counter": 15, "SW_CreditWh": -250, "SW_EnergyBoughtWh": 4294967295}},
		{"SATWATT_Wallet", map[string]float64{"SW_SatsSpent": 12345, "SW_BalanceSat": 4000000000}},
	} {
		t.Run(tc.message, func(t *testing.T) {
			m := db.MessageByName(tc.message)
			f, err := m.Encode(tc.values)
			if err != nil {
				t.Fatal(err)
			}
			if f.ID != m.ID || f.Length != 8 || f.IsExtended {
				t.Errorf("frame header %v", f)
			}
			for name, want := range tc.values {
				got, ok := m.Signal(name).Decode(&f)
				if !ok || math.Abs(got-want) > 1e-9*math.Max(1, math.Abs(want)) {
					t.Errorf("%s = %v, %v; want %v", name, got, ok, want)
				}
			}
		})
	}
}

func TestDecodeDoesNotAllocate(t *testing.T) {
	db := loadTestdata(t, "codec.dbc")
	for _, tc := range []struct {
		name string
		f    can.Frame
		sig  *Signal
	}{
		{"intel", intelFrame, db.Lookup(0x100, false).Signal("S13")},
		{"motorola", motoFrame, db.Lookup(0x200, false).Signal("MS10")},
		{"float", floatFrame, db.Lookup(0x300, false).Signal("F32Scaled")},
		{"multiplexed", muxPage1, db.Lookup(0x400, false).Signal("Amps")},
		{"short frame", truncated(intelFrame, 2), db.Lookup(0x100, false).Signal("Gear")},
	} {
		f := tc.f
		if n := testing.AllocsPerRun(100, func() { tc.sig.Decode(&f) }); n != 0 {
			t.Errorf("%s: Decode allocates %v times", tc.name, n)
		}
		if n := testing.AllocsPerRun(100, func() { tc.sig.DecodeRaw(&f) }); n != 0 {
			t.Errorf("%s: DecodeRaw allocates %v times", tc.name, n)
		}
	}
	if n := testing.AllocsPerRun(100, func() { db.Lookup(0x7AB, false) }); n != 0 {
		t.Errorf("Lookup allocates %v times", n)
	}
}
