// Package benchtable turns `go test -bench` output into the one table that
// `make bench` prints: each row a figure, the baseline measured in the same
// run, their ratio, and the target with whether it is met. The rows say
// which benchmark metric is which; the benchmarks only report metrics.
package benchtable

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// Results holds every value each benchmark reported for each unit, over
// all the runs (-count) in the output.
type Results map[string]map[string][]float64

// Parse reads `go test -bench` output. Lines that are not benchmark results
// are skipped; a result line that does not parse is an error naming its
// line, so a changed format cannot turn into a silently empty table.
func Parse(r io.Reader) (Results, error) {
	res := Results{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		f := strings.Fields(sc.Text())
		if len(f) < 2 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		if _, err := strconv.ParseInt(f[1], 10, 64); err != nil {
			continue // "BenchmarkX" alone or a log line naming one
		}
		name := trimProcs(f[0])
		if (len(f)-2)%2 != 0 {
			return nil, fmt.Errorf("benchtable: line %d: %q: values and units do not pair up", line, sc.Text())
		}
		for i := 2; i < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("benchtable: line %d: value %q of %s: %w", line, f[i], f[i+1], err)
			}
			if res[name] == nil {
				res[name] = map[string][]float64{}
			}
			res[name][f[i+1]] = append(res[name][f[i+1]], v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("benchtable: line %d: %w", line, err)
	}
	return res, nil
}

// trimProcs drops the -GOMAXPROCS suffix go test appends ("-2").
func trimProcs(name string) string {
	i := strings.LastIndexByte(name, '-')
	if i < 0 {
		return name
	}
	if _, err := strconv.Atoi(name[i+1:]); err != nil {
		return name
	}
	return name[:i]
}

// Median is the median of a benchmark's values for unit, and how many runs
// it is over; ok is false when the benchmark did not report it.
func (r Results) Median(bench, unit string) (v float64, runs int, ok bool) {
	vs := r[bench][unit]
	if len(vs) == 0 {
		return 0, 0, false
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2], n, true
	}
	return (s[n/2-1] + s[n/2]) / 2, n, true
}
