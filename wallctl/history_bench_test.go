package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"satwatt/internal/wallstore"
	"satwatt/internal/wallstore/wallstoretest"
)

// The seeded databases, shared by the runs of one test binary.
var (
	historyDir    string
	historySeeded = map[int]string{}
	historyEnd    = time.Now().Truncate(time.Minute)
)

func TestMain(m *testing.M) {
	code := m.Run()
	if historyDir != "" {
		os.RemoveAll(historyDir)
	}
	os.Exit(code)
}

// BenchmarkHistoryCommand runs wallctl history, as a person or a script
// would, over 10,000, 100,000 and 1,000,000 stored sessions (one every 10
// minutes: about 70 days, two years, 19 years). Baseline in the same run:
// the store's history query alone, so the ratio is what opening,
// formatting and printing add.
func BenchmarkHistoryCommand(b *testing.B) {
	ctx := context.Background()
	end := historyEnd
	// The databases outlive one run, so that -count 3 seeds them once
	// (the million took a minute a run); TestMain removes them.
	if historyDir == "" {
		d, err := os.MkdirTemp("", "wallctl-history-bench-")
		if err != nil {
			b.Fatal(err)
		}
		historyDir = d
	}
	seeded := historySeeded
	// seed writes n sessions; a million are the 100,000 grown tenfold by
	// SQLite itself, which takes seconds instead of minutes.
	seed := func(n int) string {
		path := filepath.Join(historyDir, fmt.Sprintf("wall-%d.db", n))
		st, err := wallstore.Open(ctx, path)
		if err != nil {
			b.Fatal(err)
		}
		st.Close()
		// Seeding only: no fsync and a big page cache, so that the random
		// inserts into the payment-hash index stay in memory; the commands
		// measured open the file with the product's own settings.
		db, err := sql.Open("sqlite3", "file:"+path+"?_sync=OFF&_cache_size=-1000000")
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		base, factor := n, 1
		if n > 100_000 {
			base, factor = 100_000, n/100_000
		}
		if err := wallstoretest.Seed(ctx, db, base, end); err != nil {
			b.Fatal(err)
		}
		if err := wallstoretest.Grow(ctx, db, factor); err != nil {
			b.Fatal(err)
		}
		return path
	}
	month := end.AddDate(0, 0, -30)
	cases := []struct {
		name string
		args []string
		q    wallstore.HistoryQuery
	}{
		{"newest_50", []string{"--limit", "50"}, wallstore.HistoryQuery{Limit: 50}},
		{"last_30_days", []string{"--since", month.Format(time.DateOnly)}, wallstore.HistoryQuery{Since: month}},
		{"all_csv", []string{"--csv"}, wallstore.HistoryQuery{}},
	}
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			path, ok := seeded[n]
			if !ok {
				path = seed(n)
				seeded[n] = path
			}
			ro, err := wallstore.OpenReadOnly(ctx, path)
			if err != nil {
				b.Fatal(err)
			}
			defer ro.Close()
			for _, tc := range cases {
				b.Run(tc.name, func(b *testing.B) {
					// Baseline: the query alone, over the same file.
					t0 := time.Now()
					const baseRuns = 1 // -count gives the median
					for range baseRuns {
						if _, _, err := ro.History(ctx, tc.q); err != nil {
							b.Fatal(err)
						}
					}
					base := time.Since(t0) / baseRuns
					args := append([]string{"history", "--db", path}, tc.args...)
					b.ResetTimer()
					for range b.N {
						if code := run(ctx, args, io.Discard, io.Discard); code != 0 {
							b.Fatalf("wallctl %v exited %d", args, code)
						}
					}
					b.StopTimer()
					per := b.Elapsed() / time.Duration(b.N)
					b.ReportMetric(float64(per.Microseconds())/1000, "ms/command")
					b.ReportMetric(float64(base.Microseconds())/1000, "ms/query-baseline")
					b.ReportMetric(float64(per)/float64(max(base, 1)), "ratio")
					b.ReportMetric(0, "ns/op")
				})
			}
		})
	}
}
