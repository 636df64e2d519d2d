package dbc

import (
	"testing"

	"go.einride.tech/can"
)

func benchDB(b *testing.B) *Database {
	b.Helper()
	db, err := LoadBuiltin("satwatt.dbc")
	if err != nil {
		b.Fatal(err)
	}
	return db
}

var sinkFloat float64

// BenchmarkBitsBaseline is the bare bit extraction with einride's helper, the
// floor that BenchmarkDecodeSignal is measured against.
func BenchmarkBitsBaseline(b *testing.B) {
	f := can.Frame{ID: 0x4A0, Length: 8, Data: can.Data{0x3D, 0x02, 0xD7, 0x98, 0x0C, 0xFE}}
	for b.Loop() {
		sinkFloat = float64(f.Data.SignedBitsLittleEndian(32, 16))
	}
}

func BenchmarkDecodeSignal(b *testing.B) {
	s := benchDB(b).Lookup(0x4A0, false).Signal("EV_PackCurrent")
	f := can.Frame{ID: 0x4A0, Length: 8, Data: can.Data{0x3D, 0x02, 0xD7, 0x98, 0x0C, 0xFE}}
	b.ReportAllocs()
	for b.Loop() {
		v, _ := s.Decode(&f)
		sinkFloat = v
	}
}

var sinkMessage *Message

func BenchmarkLookupUnknown(b *testing.B) {
	db := benchDB(b)
	b.ReportAllocs()
	for b.Loop() {
		sinkMessage = db.Lookup(0x7AB, false)
	}
}
