package sqlitedb

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	schema "satwatt/sql"
)

func TestNormHex(t *testing.T) {
	good := strings.Repeat("ab", 32)
	cases := []struct {
		in, want string
		wantErr  string
	}{
		{good, good, ""},
		{strings.ToUpper(good), good, ""},
		{good[:62], "", "62 characters"},
		{good[:63] + "g", "", "not hex"},
		{"", "", "0 characters"},
	}
	for _, tc := range cases {
		got, err := NormHex(tc.in, "preimage")
		if tc.wantErr != "" {
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.wantErr) || (tc.in != "" && strings.Contains(err.Error(), tc.in)) {
				t.Errorf("NormHex(%q) = %v, want ErrInvalid saying %q and not repeating the value", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("NormHex(%q) = %q, %v", tc.in, got, err)
		}
	}
}

func TestRangeMS(t *testing.T) {
	at := time.UnixMilli(1_700_000_000_123)
	cases := []struct {
		since, until time.Time
		lo, hi       int64
	}{
		{time.Time{}, time.Time{}, math.MinInt64, math.MaxInt64},
		{at, time.Time{}, 1_700_000_000_123, math.MaxInt64},
		{time.Time{}, at, math.MinInt64, 1_700_000_000_123},
	}
	for _, tc := range cases {
		if lo, hi := RangeMS(tc.since, tc.until); lo != tc.lo || hi != tc.hi {
			t.Errorf("RangeMS(%v, %v) = %d, %d; want %d, %d", tc.since, tc.until, lo, hi, tc.lo, tc.hi)
		}
	}
}

// TestOpenChecksQueriesFirst: a store that names a query its schema lacks
// fails at open, naming the query, before the file is created.
func TestOpenChecksQueriesFirst(t *testing.T) {
	k := Kind{Store: "teststore", Name: "test", Program: "testctl", ApplicationID: 0x54657374,
		Migrations: schema.CarMigrations, Queries: schema.CarQueries, QueryNames: []string{"history", "no_such_query"}}
	path := filepath.Join(t.TempDir(), "test.db")
	_, err := Open(context.Background(), k, path, "FULL")
	if err == nil || !strings.Contains(err.Error(), `teststore: open `+path+`: schema has no query "no_such_query"`) {
		t.Fatalf("Open = %v", err)
	}
	if _, serr := os.Stat(path); !errors.Is(serr, os.ErrNotExist) {
		t.Errorf("Open created %s before failing", path)
	}
}
