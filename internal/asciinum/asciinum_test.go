package asciinum

import (
	"math"
	"testing"
)

func TestDecimal(t *testing.T) {
	tests := []struct {
		in    string
		limit uint64
		want  uint64
		ok    bool
	}{
		{"0", 9, 0, true},
		{"007", 9, 7, true},
		{"255", 255, 255, true},
		{"256", 255, 0, false},
		{"999999999", 999999999, 999999999, true},
		{"1844674407370955160", math.MaxUint64/10 - 1, 1844674407370955160, true},
		{"99999999999999999999999", 1 << 40, 0, false}, // would overflow uint64
		{"", 9, 0, false},
		{"1a", 99, 0, false},
		{"-1", 99, 0, false},
		{"+1", 99, 0, false},
		{" 1", 99, 0, false},
		{"1.5", 99, 0, false},
	}
	for _, tt := range tests {
		got, ok := Decimal([]byte(tt.in), tt.limit)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Decimal(%q, %d) = %d, %v; want %d, %v", tt.in, tt.limit, got, ok, tt.want, tt.ok)
		}
	}
}

func TestHexDigit(t *testing.T) {
	tests := []struct {
		in   byte
		want byte
		ok   bool
	}{
		{'0', 0, true},
		{'9', 9, true},
		{'a', 10, true},
		{'f', 15, true},
		{'A', 10, true},
		{'F', 15, true},
		{'g', 0xff, false},
		{'G', 0xff, false},
		{'/', 0xff, false},
		{':', 0xff, false},
		{'@', 0xff, false},
		{'`', 0xff, false},
		{' ', 0xff, false},
		{0xff, 0xff, false},
	}
	for _, tt := range tests {
		got, ok := HexDigit(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("HexDigit(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// The log parsers promise no garbage per valid line, so neither helper may
// allocate.
func TestNoAllocs(t *testing.T) {
	b := []byte("1234567890")
	allocs := testing.AllocsPerRun(100, func() {
		if _, ok := Decimal(b, math.MaxUint32*10); !ok {
			t.Fatal("Decimal failed")
		}
		for _, c := range b {
			if _, ok := HexDigit(c); !ok {
				t.Fatal("HexDigit failed")
			}
		}
	})
	if allocs != 0 {
		t.Errorf("got %v allocs per run, want 0", allocs)
	}
}
