package benchtable

import (
	"strings"
	"testing"
)

const sample = `goos: linux
goarch: amd64
pkg: satwatt/vehiclegw
cpu: Intel(R) Xeon(R) CPU
BenchmarkDecodeModel3Log-2   	 8405716	       140.0 ns/op	   7150000 frames/s	     6400000 baseline-frames/s	       4 B/op	       0 allocs/op
BenchmarkDecodeModel3Log-2   	 8405716	       150.0 ns/op	   6660000 frames/s	     6500000 baseline-frames/s	       4 B/op	       0 allocs/op
BenchmarkDecodeModel3Log-2   	 8405716	       130.0 ns/op	   7690000 frames/s	     6300000 baseline-frames/s	       4 B/op	       0 allocs/op
    bench_test.go:99: BenchmarkDecodeModel3Log 12 said something
BenchmarkHistoryCommand/sessions=10000/newest_50-2         	      20	  1.5 ms/command	 0.9 ms/query-baseline
PASS
ok  	satwatt/vehiclegw	12.3s
`

func TestParseAndMedian(t *testing.T) {
	res, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		bench, unit string
		want        float64
		runs        int
		ok          bool
	}{
		{"BenchmarkDecodeModel3Log", "frames/s", 7150000, 3, true},
		{"BenchmarkDecodeModel3Log", "ns/op", 140, 3, true},
		{"BenchmarkDecodeModel3Log", "allocs/op", 0, 3, true},
		{"BenchmarkHistoryCommand/sessions=10000/newest_50", "ms/command", 1.5, 1, true},
		{"BenchmarkDecodeModel3Log", "ms/command", 0, 0, false},
		{"BenchmarkNope", "ns/op", 0, 0, false},
	} {
		got, runs, ok := res.Median(tc.bench, tc.unit)
		if got != tc.want || runs != tc.runs || ok != tc.ok {
			t.Errorf("Median(%s, %s) = %v, %d, %v; want %v, %d, %v", tc.bench, tc.unit, got, runs, ok, tc.want, tc.runs, tc.ok)
		}
	}
	even := Results{"B": {"u": {4, 1, 3, 2}}}
	if got, _, _ := even.Median("B", "u"); got != 2.5 {
		t.Errorf("median of 1..4 = %v, want 2.5", got)
	}
}

func TestParseRefusesABrokenResultLine(t *testing.T) {
	for _, in := range []string{
		"BenchmarkX-2  10  1.5 ns/op 3\n",
		"BenchmarkX-2  10  fast ns/op\n",
	} {
		if _, err := Parse(strings.NewReader(in)); err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("Parse(%q) = %v, want an error naming line 1", in, err)
		}
	}
}

func TestTable(t *testing.T) {
	res, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	rows := []Row{
		{Figure: "decode", Bench: "BenchmarkDecodeModel3Log", Unit: "frames/s", BaseUnit: "baseline-frames/s", Base: "bare decode",
			Target: RatioAtLeast(0.5, "within 2x")},
		{Figure: "too slow", Bench: "BenchmarkDecodeModel3Log", Unit: "ns/op", Target: AtMost(100, "<= 100 ns")},
		{Figure: "reference", Bench: "BenchmarkDecodeModel3Log", Unit: "allocs/op", Target: Reference("none")},
		{Figure: "absent", Bench: "BenchmarkSystemNope", Unit: "ms", Target: AtMost(1, "1 ms")},
		{Figure: "no baseline", Bench: "BenchmarkDecodeModel3Log", Unit: "frames/s", BaseUnit: "nope", Target: Reference("x")},
	}
	var b strings.Builder
	missed, missing, err := Write(&b, "header line", Evaluate(res, rows))
	if err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if missed != 1 || missing != 2 {
		t.Errorf("missed %d, missing %d; want 1 and 2:\n%s", missed, missing, out)
	}
	for _, want := range []string{"header line", "7,150,000 frames/s", "6,400,000 baseline-frames/s (bare decode)", "1.12x", "yes", "NO",
		"MISSING: BenchmarkSystemNope did not report ms", "did not report its baseline nope"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestNumber(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		want string
	}{
		{0, "0"}, {0.001234, "0.00123"}, {1.5, "1.50"}, {12.34, "12.3"}, {99.96, "100.0"}, {100, "100"},
		{1234.5, "1,235"}, {7150000, "7,150,000"}, {-2500, "-2,500"}, {-0.5, "-0.500"},
	} {
		if got := Number(tc.v); got != tc.want {
			t.Errorf("Number(%v) = %q, want %q", tc.v, got, tc.want)
		}
	}
}
