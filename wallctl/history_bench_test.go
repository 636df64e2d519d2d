package main

import (
	"context"
	"database/sql"
	"io"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"satwatt/internal/wallstore"
	"satwatt/internal/wallstore/wallstoretest"
)

// BenchmarkHistoryCommand runs wallctl history, as a person or a script
// would, over 100,000 stored sessions (about two years at one session
// every 10 minutes). Baseline in the same run: the store's history query
// alone, so the ratio is what opening, formatting and printing add.
func BenchmarkHistoryCommand(b *testing.B) {
	const sessions = 100_000
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "wall.db")
	st, err := wallstore.Open(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	st.Close()
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		b.Fatal(err)
	}
	end := time.Now().Truncate(time.Minute)
	if err := wallstoretest.Seed(ctx, db, sessions, end); err != nil {
		b.Fatal(err)
	}
	db.Close()

	ro, err := wallstore.OpenReadOnly(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	defer ro.Close()
	month := end.AddDate(0, 0, -30)
	cases := []struct {
		name string
		args []string
		q    wallstore.HistoryQuery
	}{
		{"all_table", nil, wallstore.HistoryQuery{}},
		{"all_csv", []string{"--csv"}, wallstore.HistoryQuery{}},
		{"all_json", []string{"--json"}, wallstore.HistoryQuery{}},
		{"last_30_days", []string{"--since", month.Format(time.DateOnly)}, wallstore.HistoryQuery{Since: month}},
		{"newest_50", []string{"--limit", "50"}, wallstore.HistoryQuery{Limit: 50}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			// Baseline: the query alone, over the same file.
			t0 := time.Now()
			const baseRuns = 3
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
}
