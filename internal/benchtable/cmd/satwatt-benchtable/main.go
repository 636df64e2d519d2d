// Command satwatt-benchtable prints `make bench`'s table from the output of
// the benchmark runs: satwatt-benchtable FILE... (or standard input). It
// exits 1 when a row has no figure, so a benchmark that stopped reporting
// cannot go unnoticed; a missed target is shown, not fatal: benchmarks
// measure, they do not assert.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	bt "satwatt/internal/benchtable"
)

// rows are the table, in the order issue 8 lists the figures.
var rows = []bt.Row{
	{Figure: "CAN decode, full gateway path, real Model 3 log", Bench: "BenchmarkDecodeModel3Log", Unit: "frames/s",
		BaseUnit: "baseline-frames/s", Base: "einride bare descriptor decode",
		Target: bt.RatioAtLeast(0.5, "within 2x of the baseline")},
	{Figure: "CAN decode, CPU share at a full 500 kbit/s bus (4,000 frames/s)", Bench: "BenchmarkDecodeModel3Log", Unit: "%cpu@4000fps",
		Target: bt.AtMost(5, "under 5 % of one core")},
	{Figure: "time to energy: cable seen (state B) to contactor closed; SDP, offer, invoice, regtest payment", Bench: "BenchmarkSystemTimeToEnergy",
		Unit: "ms", BaseUnit: "lncli-ms", Base: "one lncli payinvoice, same channel",
		Target: bt.RatioAtMost(3, "within 3x of the baseline")},
	{Figure: "time to power allowed: cable seen to EVSE enabled (the product's own part of the above)", Bench: "BenchmarkSystemTimeToEnergy",
		Unit: "enable-ms", BaseUnit: "lncli-ms", Base: "one lncli payinvoice, same channel",
		Target: bt.RatioAtMost(3, "within 3x of the baseline")},
	{Figure: "TLS on the PLC link: a new session's offer fetch (handshake, pin, certificate check), loopback", Bench: "BenchmarkOfferOverTLS",
		Unit: "tls-ms", BaseUnit: "plain-ms", Base: "the same offer over plain HTTP",
		Target: bt.AtMost(50, "under 50 ms, small beside the time to energy")},
	{Figure: "payment loop, one increment end to end, p50 of 200", Bench: "BenchmarkSystemPaymentLoop", Unit: "p50-ms",
		BaseUnit: "lncli-p50-ms", Base: "lncli payinvoice p50, same channel", Target: bt.RatioAtMost(3, "within 3x of the baseline")},
	{Figure: "payment loop, one increment end to end, p99 of 200", Bench: "BenchmarkSystemPaymentLoop", Unit: "p99-ms",
		BaseUnit: "lncli-p99-ms", Base: "lncli payinvoice p99, same channel", Target: bt.AtMost(1000, "under 1 s")},
	{Figure: "wall capacity: cars served at once, p99 increment under 1 s, none suspended by mistake", Bench: "BenchmarkSystemWallCapacity",
		Unit: "cars", Target: bt.AtLeast(50, "50 or more")},
	{Figure: "wall capacity: p99 of one increment with 50 cars paying every 3 s", Bench: "BenchmarkSystemWallCapacity",
		Unit: "p99-ms@50", Target: bt.AtMost(1000, "under 1 s")},
	historyRow("10,000", "sessions=10000", "newest_50"),
	historyRow("100,000", "sessions=100000", "newest_50"),
	historyRow("1,000,000", "sessions=1000000", "newest_50"),
	historyRow("10,000", "sessions=10000", "all_csv"),
	historyRow("100,000", "sessions=100000", "all_csv"),
	historyRow("1,000,000", "sessions=1000000", "all_csv"),
	{Figure: "payments written per second, synchronous=FULL (the product's setting)", Bench: "BenchmarkSettleInvoice/synchronous=FULL",
		Unit: "settles/s", BaseUnit: "fsync/s", Base: "bare write+fsync, same disk",
		Target: bt.RatioAtLeast(0.5, "at least half the disk's fsync rate")},
	{Figure: "peak resident memory, vehiclegw during a session", Bench: "BenchmarkSystemTimeToEnergy", Unit: "vehiclegw-peak-MB",
		Target: bt.AtMost(64, "under 64 MB")},
	{Figure: "peak resident memory, wallctl during a session", Bench: "BenchmarkSystemTimeToEnergy", Unit: "wallctl-peak-MB",
		Target: bt.AtMost(64, "under 64 MB")},
	{Figure: "binary size, vehiclegw, stripped", Bench: "BenchmarkBinarySize", Unit: "vehiclegw-MB", Target: bt.Reference("reference")},
	{Figure: "binary size, wallctl, stripped", Bench: "BenchmarkBinarySize", Unit: "wallctl-MB", Target: bt.Reference("reference")},
	{Figure: "start-up, wallctl exec to ready (lnd connected, serving)", Bench: "BenchmarkSystemTimeToEnergy", Unit: "wallctl-start-ms",
		Target: bt.AtMost(2000, "under 2 s")},
	{Figure: "start-up, vehiclegw exec to ready (bus read, status shown)", Bench: "BenchmarkSystemTimeToEnergy", Unit: "vehiclegw-start-ms",
		Target: bt.AtMost(2000, "under 2 s")},
}

func historyRow(n, size, kind string) bt.Row {
	what := map[string]string{"newest_50": "wallctl history --limit 50", "all_csv": "wallctl history --csv, every session"}[kind]
	t := bt.AtMost(100, "under 100 ms")
	if kind == "all_csv" {
		t = bt.Reference("grows with the sessions printed")
	}
	return bt.Row{Figure: what + ", " + n + " sessions stored", Bench: "BenchmarkHistoryCommand/" + size + "/" + kind,
		Unit: "ms/command", BaseUnit: "ms/query-baseline", Base: "the store's query alone", Target: t}
}

func main() {
	res := bt.Results{}
	readers := []io.Reader{os.Stdin}
	if len(os.Args) > 1 {
		readers = nil
		for _, p := range os.Args[1:] {
			f, err := os.Open(p)
			if err != nil {
				fmt.Fprintf(os.Stderr, "satwatt-benchtable: %v\n", err)
				os.Exit(2)
			}
			defer f.Close()
			readers = append(readers, f)
		}
	}
	for _, r := range readers {
		part, err := bt.Parse(r)
		if err != nil {
			fmt.Fprintf(os.Stderr, "satwatt-benchtable: %v\n", err)
			os.Exit(2)
		}
		for b, units := range part {
			if res[b] == nil {
				res[b] = map[string][]float64{}
			}
			for u, vs := range units {
				res[b][u] = append(res[b][u], vs...)
			}
		}
	}
	header := fmt.Sprintf("satwatt benchmarks, %s\nmachine: %d cores (GOMAXPROCS %d), %s, %s/%s, %s\neach figure is the median of its runs; a ratio is figure / baseline",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.NumCPU(), runtime.GOMAXPROCS(0), cpuModel(), runtime.GOOS, runtime.GOARCH, runtime.Version())
	missed, missing, err := bt.Write(os.Stdout, header, bt.Evaluate(res, rows))
	if err != nil {
		fmt.Fprintf(os.Stderr, "satwatt-benchtable: %v\n", err)
		os.Exit(2)
	}
	fmt.Printf("\n%d of %d rows miss their target; %d have no figure\n", missed, len(rows), missing)
	if missing > 0 {
		os.Exit(1)
	}
}

// cpuModel is the first "model name" in /proc/cpuinfo.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "CPU model unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "CPU model unknown"
}
