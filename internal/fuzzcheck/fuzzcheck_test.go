package fuzzcheck

import (
	"errors"
	"testing"
)

// recorder is a testing.TB that records a failure instead of stopping the
// test, so the checks' own failures can be asserted.
type recorder struct {
	testing.TB
	failed bool
	msg    string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = true
	r.msg = format
}
func (r *recorder) Fatal(args ...any) { r.failed = true }

var sink []byte

func TestAlloc(t *testing.T) {
	tests := []struct {
		name      string
		alloc     int
		wantFault bool
	}{
		{"within the bound", 0, false},
		{"a length field trusted", 64 << 20, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{TB: t}
			Alloc(r, "parser", 10, 16, 1<<20, func() {
				if tt.alloc > 0 {
					sink = make([]byte, tt.alloc)
				}
			})
			if r.failed != tt.wantFault {
				t.Fatalf("failed = %v, want %v", r.failed, tt.wantFault)
			}
		})
	}
}

func TestErrorSays(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		wantFault bool
	}{
		{"prefix and place", errors.New("dbc: line 3: bad signal"), false},
		{"no error", nil, true},
		{"wrong prefix", errors.New("line 3: bad signal"), true},
		{"no place", errors.New("dbc: bad signal"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{TB: t}
			ErrorSays(r, tt.err, "dbc:", "line 3")
			if r.failed != tt.wantFault {
				t.Fatalf("failed = %v, want %v", r.failed, tt.wantFault)
			}
		})
	}
}
