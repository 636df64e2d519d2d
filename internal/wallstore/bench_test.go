package wallstore

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"satwatt/internal/wallstore/wallstoretest"
)

// Benchmarks print figures; they assert nothing. Each write benchmark also
// measures, in the same run, how many fsyncs per second the disk under
// b.TempDir() does: with synchronous=FULL a commit costs about one, so
// that is the ceiling to compare with. synchronous=NORMAL (SQLite's WAL
// default) is run beside the product's FULL to show what durability costs.

var syncModes = []string{"FULL", "NORMAL"}

var namedArg = sql.Named

// fsyncsPerSecond appends a small record and fsyncs it, for about 300 ms.
func fsyncsPerSecond(b *testing.B) float64 {
	b.Helper()
	f, err := os.Create(filepath.Join(b.TempDir(), "fsync-baseline"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	rec := make([]byte, 128)
	n, start := 0, time.Now()
	for time.Since(start) < 300*time.Millisecond {
		if _, err := f.Write(rec); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		n++
	}
	return float64(n) / time.Since(start).Seconds()
}

func reportRate(b *testing.B, unit string, baseline float64) {
	rate := float64(b.N) / b.Elapsed().Seconds()
	b.ReportMetric(rate, unit)
	b.ReportMetric(baseline, "fsync/s")
	b.ReportMetric(rate/baseline, "x_fsync_rate")
	b.ReportMetric(0, "ns/op") // the rates say it; ns/op would only repeat them
}

func benchStore(b *testing.B, sync string) *Store {
	b.Helper()
	s, err := open(context.Background(), filepath.Join(b.TempDir(), "wall.db"), sync)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkRecordProgress: meter samples (a sample plus the session's
// state, one transaction each) per second.
func BenchmarkRecordProgress(b *testing.B) {
	for _, sync := range syncModes {
		b.Run("synchronous="+sync, func(b *testing.B) {
			ctx := context.Background()
			baseline := fsyncsPerSecond(b)
			s := benchStore(b, sync)
			mustOpenSession(b, s, "bench", t0)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := s.RecordProgress(ctx, "bench", t0.Add(time.Duration(i)*time.Second), StateEnergising, int64(i)*2055, 7400); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			reportRate(b, "samples/s", baseline)
		})
	}
}

// BenchmarkSettleInvoice: payments recorded per second, each checked
// against its hash and its invoice and written in one transaction.
func BenchmarkSettleInvoice(b *testing.B) {
	for _, sync := range syncModes {
		b.Run("synchronous="+sync, func(b *testing.B) {
			ctx := context.Background()
			baseline := fsyncsPerSecond(b)
			s := benchStore(b, sync)
			mustOpenSession(b, s, "bench", t0)
			pres := make([]string, b.N)
			hashes := make([]string, b.N)
			tx, err := s.w.BeginTx(ctx, nil)
			if err != nil {
				b.Fatal(err)
			}
			for i := range b.N {
				pres[i], hashes[i] = payment(fmt.Sprint("bench ", i))
				if _, err := tx.ExecContext(ctx, s.q["invoice_insert"], namedInvoice(hashes[i], "bench", 2500, ms(t0))...); err != nil {
					b.Fatal(err)
				}
			}
			if err := tx.Commit(); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				st, err := s.SettleInvoice(ctx, hashes[i], 2500, pres[i], t0.Add(time.Second))
				if err != nil || !st.New {
					b.Fatal(st, err)
				}
			}
			b.StopTimer()
			reportRate(b, "settles/s", baseline)
		})
	}
}

func namedInvoice(hash, session string, amount, created int64) []any {
	return []any{
		namedArg("hash", hash), namedArg("session_id", session), namedArg("amount_msat", amount),
		namedArg("bolt11", wallstoretest.Bolt11Like(hash)), namedArg("created", created), namedArg("expires", created+600_000),
	}
}

const historySessions = 100_000

// BenchmarkHistory reads a wall's history after years of use: 100,000
// sessions, one every 10 minutes up to t0 (about 700 days), each with two
// payments and an expired invoice. No meter samples: History does not read
// them, and they would only slow the seeding down.
func BenchmarkHistory(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	path := filepath.Join(dir, "wall.db")
	s, err := Open(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	seedStart := time.Now()
	if err := wallstoretest.Seed(ctx, s.w, historySessions, t0); err != nil {
		b.Fatal(err)
	}
	seedTime := time.Since(seedStart)
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}

	cases := []struct {
		name string
		q    HistoryQuery
		rows int
	}{
		{"everything", HistoryQuery{}, historySessions},
		{"last_30_days", HistoryQuery{Since: t0.Add(-30 * 24 * time.Hour)}, 30 * 24 * 6},
		{"newest_50", HistoryQuery{Limit: 50}, 50},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			var rows int
			for i := 0; i < b.N; i++ {
				got, tot, err := s.History(ctx, tc.q)
				if err != nil {
					b.Fatal(err)
				}
				if tot.Sessions < int64(len(got)) {
					b.Fatalf("totals %+v below %d rows", tot, len(got))
				}
				rows = len(got)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/call")
			b.ReportMetric(float64(rows), "sessions")
			b.ReportMetric(0, "ns/op")
		})
	}
	b.Run("daily_totals_everything", func(b *testing.B) {
		var n int
		for i := 0; i < b.N; i++ {
			ps, err := s.DailyTotals(ctx, time.Time{}, time.Time{})
			if err != nil {
				b.Fatal(err)
			}
			n = len(ps)
		}
		b.StopTimer()
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/call")
		b.ReportMetric(float64(n), "days")
		b.ReportMetric(0, "ns/op")
	})
	// Open checks the whole file (quick_check) before it writes: what a
	// restart costs with this much history.
	b.Run("open_and_check", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			s2, err := Open(ctx, path)
			if err != nil {
				b.Fatal(err)
			}
			s2.Close()
		}
		b.StopTimer()
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/call")
		b.ReportMetric(float64(fi.Size())/1e6, "MB_db")
		b.ReportMetric(seedTime.Seconds(), "s_to_seed")
		b.ReportMetric(0, "ns/op")
	})
}
