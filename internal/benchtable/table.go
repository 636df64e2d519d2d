package benchtable

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Row is one line of the table: a figure from a benchmark, and the
// baseline the same benchmark measured in the same run.
type Row struct {
	Figure string // what is measured, in words
	Bench  string // the benchmark's full name, without -GOMAXPROCS
	Unit   string // the figure's unit as the benchmark reports it
	// BaseUnit is the baseline's unit in the same benchmark ("" for a
	// figure with no baseline); Base says what the baseline is.
	BaseUnit, Base string
	Target         Target
}

// Target is a row's limit or aim.
type Target struct {
	Text string // as printed
	// Met reports whether the figure meets it (nil: a reference, no aim).
	Met func(figure, baseline float64) bool
}

// AtMost is met by a figure of at most v.
func AtMost(v float64, text string) Target {
	return Target{Text: text, Met: func(f, _ float64) bool { return f <= v }}
}

// AtLeast is met by a figure of at least v.
func AtLeast(v float64, text string) Target {
	return Target{Text: text, Met: func(f, _ float64) bool { return f >= v }}
}

// RatioAtMost is met when figure/baseline is at most r.
func RatioAtMost(r float64, text string) Target {
	return Target{Text: text, Met: func(f, b float64) bool { return b > 0 && f/b <= r }}
}

// RatioAtLeast is met when figure/baseline is at least r.
func RatioAtLeast(r float64, text string) Target {
	return Target{Text: text, Met: func(f, b float64) bool { return b > 0 && f/b >= r }}
}

// Reference is a figure printed for information, with no aim.
func Reference(text string) Target { return Target{Text: text} }

// Outcome is a row as measured.
type Outcome struct {
	Row
	Figure, Baseline float64
	Runs             int
	Missing          string // why the row has no figure
	Met              *bool  // nil: no aim, or missing
}

// Evaluate reads each row's medians from res.
func Evaluate(res Results, rows []Row) []Outcome {
	out := make([]Outcome, 0, len(rows))
	for _, r := range rows {
		o := Outcome{Row: r}
		f, n, ok := res.Median(r.Bench, r.Unit)
		if !ok {
			o.Missing = fmt.Sprintf("%s did not report %s", r.Bench, r.Unit)
			out = append(out, o)
			continue
		}
		o.Figure, o.Runs = f, n
		if r.BaseUnit != "" {
			b, _, ok := res.Median(r.Bench, r.BaseUnit)
			if !ok {
				o.Missing = fmt.Sprintf("%s did not report its baseline %s", r.Bench, r.BaseUnit)
				out = append(out, o)
				continue
			}
			o.Baseline = b
		}
		if r.Target.Met != nil {
			met := r.Target.Met(o.Figure, o.Baseline)
			o.Met = &met
		}
		out = append(out, o)
	}
	return out
}

// Write prints the table under header; it returns how many rows miss their
// target and how many have no figure.
func Write(w io.Writer, header string, outs []Outcome) (missed, missing int, err error) {
	var b strings.Builder
	b.WriteString(header)
	b.WriteString("\n\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tfigure\tvalue\tbaseline (same run)\tratio\ttarget\tmet\truns")
	for i, o := range outs {
		if o.Missing != "" {
			missing++
			fmt.Fprintf(tw, "%d\t%s\tMISSING: %s\t\t\t%s\t-\t0\n", i+1, o.Row.Figure, o.Missing, o.Target.Text)
			continue
		}
		base, ratio := "-", "-"
		if o.BaseUnit != "" {
			base = Number(o.Baseline) + " " + o.BaseUnit + " (" + o.Base + ")"
			if o.Baseline != 0 {
				ratio = Number(o.Figure/o.Baseline) + "x"
			}
		}
		met := "-"
		if o.Met != nil {
			met = "yes"
			if !*o.Met {
				met = "NO"
				missed++
			}
		}
		fmt.Fprintf(tw, "%d\t%s\t%s %s\t%s\t%s\t%s\t%s\t%d\n", i+1, o.Row.Figure, Number(o.Figure), o.Unit, base, ratio, o.Target.Text, met, o.Runs)
	}
	if err := tw.Flush(); err != nil {
		return 0, 0, err
	}
	_, err = io.WriteString(w, b.String())
	return missed, missing, err
}

// Number prints a figure readably: whole numbers with thousands
// separators from 100 up, three significant digits below.
func Number(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	a := math.Abs(v)
	if a >= 100 {
		s := strconv.FormatInt(int64(math.Round(a)), 10)
		var g []byte
		for i := range len(s) {
			if i > 0 && (len(s)-i)%3 == 0 {
				g = append(g, ',')
			}
			g = append(g, s[i])
		}
		if v < 0 {
			return "-" + string(g)
		}
		return string(g)
	}
	if a == 0 {
		return "0"
	}
	digits := max(0, 2-int(math.Floor(math.Log10(a))))
	return strconv.FormatFloat(v, 'f', digits, 64)
}
