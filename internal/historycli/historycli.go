// Package historycli is what `wallctl history` and `vehiclegw history` (and
// their `session show`) share: the flags, the date parsing, exact printing
// of milli-units, and the three formats of a listing with totals: an
// aligned table for people, CSV and JSON for programs. Each command says
// which columns it has; this package prints them, so both commands read
// the same way.
package historycli

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"text/tabwriter"
	"time"

	"satwatt/internal/subcmd"
)

// Options are the flags of a history command.
type Options struct {
	DB           string
	Since, Until time.Time // [Since, Until); zero: no bound
	Limit        int       // 0: all
	Format       Format
}

// Format is how a listing is printed.
type Format int

const (
	Table Format = iota
	CSV
	JSON
)

// ParseHistoryFlags parses the flags of "PROG history". dbDefault and
// dbUsage describe the --db flag: "wall.db", "the wall's SQLite database".
func ParseHistoryFlags(prog, dbDefault, dbUsage string, args []string, stderr io.Writer) (Options, error) {
	fs := subcmd.NewFlagSet(prog, "history", stderr)
	db := fs.String("db", dbDefault, dbUsage)
	since := fs.String("since", "", "first day (2026-11-01) or time (RFC 3339), inclusive")
	until := fs.String("until", "", "last day, inclusive, or a time (exclusive)")
	asCSV := fs.Bool("csv", false, "print CSV")
	asJSON := fs.Bool("json", false, "print JSON")
	limit := fs.Int("limit", 0, "list at most this many sessions (totals still cover the whole range)")
	if err := subcmd.Parse(fs, args, 0); err != nil {
		return Options{}, err
	}
	o := Options{DB: *db, Limit: *limit}
	switch {
	case *asCSV && *asJSON:
		return Options{}, fmt.Errorf("%w: choose --csv or --json, not both", subcmd.ErrUsage)
	case *asCSV:
		o.Format = CSV
	case *asJSON:
		o.Format = JSON
	}
	var err error
	if o.Since, err = ParseDate("since", *since, false); err != nil {
		return Options{}, err
	}
	if o.Until, err = ParseDate("until", *until, true); err != nil {
		return Options{}, err
	}
	return o, nil
}

// ShowOptions are the flags of "PROG session show ID".
type ShowOptions struct {
	DB   string
	JSON bool
	ID   string
}

// ParseShowFlags parses the flags of "PROG session show ID"; the id may
// come before or after the flags.
func ParseShowFlags(prog, dbDefault, dbUsage string, args []string, stderr io.Writer) (ShowOptions, error) {
	fs := subcmd.NewFlagSet(prog, "session show", stderr)
	db := fs.String("db", dbDefault, dbUsage)
	asJSON := fs.Bool("json", false, "print JSON")
	var id string
	maxArgs := 1
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		id, args, maxArgs = args[0], args[1:], 0
	}
	if err := subcmd.Parse(fs, args, maxArgs); err != nil {
		return ShowOptions{}, err
	}
	if id == "" && fs.NArg() == 1 {
		id = fs.Arg(0)
	}
	if id == "" {
		return ShowOptions{}, fmt.Errorf("%w: which session? %s session show ID (ids are in %s history)", subcmd.ErrUsage, prog, prog)
	}
	return ShowOptions{DB: *db, JSON: *asJSON, ID: id}, nil
}

// ParseDate reads --since or --until: a local date, or an RFC 3339 time.
// A date as the end of a range means the end of that day, so that
// --until 2026-11-30 includes the 30th.
func ParseDate(flagName, s string, endOfDay bool) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.ParseInLocation(time.DateOnly, s, time.Local); err == nil {
		if endOfDay {
			t = t.AddDate(0, 0, 1)
		}
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: --%s %q: use a date (2026-11-25) or an RFC 3339 time", subcmd.ErrUsage, flagName, s)
	}
	return t, nil
}

// Time prints a time as local time to the second; the zero time is "".
func Time(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

// Milli prints integer mWh as Wh, or msat as sat, exactly, with three
// decimals: never through floating point.
func Milli(v int64) string {
	sign := ""
	if v < 0 {
		sign, v = "-", -v
	}
	return fmt.Sprintf("%s%d.%03d", sign, v/1000, v%1000)
}

// OrDash is s, or "-" when s is empty.
func OrDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// WriteJSON prints v as indented JSON, as every --json does.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// Column is one column of a listing of rows R. A column may appear in some
// formats only: the table shows energy and money in Wh and sat, CSV in raw
// integers, JSON both.
type Column[R any] struct {
	Head  string // the table's header; "" leaves the column out of the table
	Key   string // the JSON key; "" leaves the column out of JSON and CSV
	CSV   bool   // also in the CSV, with Key as its header
	Total bool   // the totals show this column's Value of the totals row
	// Value is a string, an int64, or nil (printed empty, JSON null).
	Value func(R) any
}

// Write prints rows in format f, with the totals: total is a row holding
// the sums, and sessions is how many sessions the totals cover, which may
// be more than the rows listed.
func Write[R any](w io.Writer, f Format, cols []Column[R], rows []R, sessions int64, total R) error {
	switch f {
	case JSON:
		return writeJSON(w, cols, rows, sessions, total)
	case CSV:
		return writeCSV(w, cols, rows, sessions, total)
	}
	return writeTable(w, cols, rows, sessions, total)
}

// text is a cell of the table or the CSV.
func text(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case int64:
		return strconv.FormatInt(v, 10)
	}
	return fmt.Sprint(v)
}

func writeTable[R any](w io.Writer, cols []Column[R], rows []R, sessions int64, total R) error {
	var in []Column[R]
	for _, c := range cols {
		if c.Head != "" {
			in = append(in, c)
		}
	}
	// tabwriter writes cell by cell: buffer them, rather than make a
	// system call of each when printing to a terminal or a pipe.
	bw := bufio.NewWriterSize(w, 64<<10)
	tw := tabwriter.NewWriter(&trimWriter{w: bw}, 0, 0, 2, ' ', tabwriter.AlignRight)
	var line []byte
	cell := func(s string) { line = append(append(line, s...), '\t') }
	end := func() {
		line = append(line, '\n')
		tw.Write(line) // a failed write is reported by Flush below
		line = line[:0]
	}
	for _, c := range in {
		cell(c.Head)
	}
	end()
	for _, r := range rows {
		for _, c := range in {
			cell(text(c.Value(r)))
		}
		end()
	}
	for i, c := range in {
		switch {
		case i == 0:
			cell(fmt.Sprintf("total: %d sessions", sessions))
		case c.Total:
			cell(text(c.Value(total)))
		default:
			cell("")
		}
	}
	end()
	if err := tw.Flush(); err != nil {
		return err
	}
	return bw.Flush()
}

// trimWriter drops the spaces at the end of each line, which a table
// whose last columns are empty in a row would otherwise end with.
type trimWriter struct {
	w      io.Writer
	spaces int // held back: written only if more text follows on the line
	buf    []byte
}

func (t *trimWriter) Write(p []byte) (int, error) {
	t.buf = t.buf[:0]
	for _, c := range p {
		switch c {
		case ' ':
			t.spaces++
			continue
		case '\n':
			t.spaces = 0
		}
		for ; t.spaces > 0; t.spaces-- {
			t.buf = append(t.buf, ' ')
		}
		t.buf = append(t.buf, c)
	}
	if _, err := t.w.Write(t.buf); err != nil {
		return 0, err
	}
	return len(p), nil
}

func writeCSV[R any](w io.Writer, cols []Column[R], rows []R, sessions int64, total R) error {
	var in []Column[R]
	for _, c := range cols {
		if c.CSV && c.Key != "" {
			in = append(in, c)
		}
	}
	cw := csv.NewWriter(w)
	rec := make([]string, len(in))
	for i, c := range in {
		rec[i] = c.Key
	}
	cw.Write(rec) // a failed write is reported by cw.Error below
	for _, r := range rows {
		for i, c := range in {
			rec[i] = text(c.Value(r))
		}
		cw.Write(rec)
	}
	for i, c := range in {
		switch {
		case i == 0:
			rec[i] = fmt.Sprintf("TOTAL %d sessions", sessions)
		case c.Total:
			rec[i] = text(c.Value(total))
		default:
			rec[i] = ""
		}
	}
	cw.Write(rec)
	cw.Flush()
	return cw.Error()
}

// writeJSON prints what WriteJSON would print of
//
//	{"sessions": [{key: value, ...}, ...], "totals": {key: value, ...}}
//
// with each session's keys in the columns' order, as a struct would have
// them, and the totals' keys sorted, as a map would. It writes the text
// itself because reflection over 100,000 sessions took most of the
// command's time; strings still go through encoding/json, so that their
// escaping is the standard library's.
func writeJSON[R any](w io.Writer, cols []Column[R], rows []R, sessions int64, total R) error {
	var in []Column[R]
	for _, c := range cols {
		if c.Key != "" {
			in = append(in, c)
		}
	}
	keys := make([][]byte, len(in)) // `"key": `, once
	for i, c := range in {
		k, err := json.Marshal(c.Key)
		if err != nil {
			return err
		}
		keys[i] = append(k, ": "...)
	}
	totals := map[string]any{"sessions": sessions}
	for _, c := range in {
		if c.Total {
			if _, dup := totals[c.Key]; dup {
				return fmt.Errorf("historycli: JSON totals: key %q twice", c.Key)
			}
			totals[c.Key] = c.Value(total)
		}
	}

	bw := bufio.NewWriterSize(w, 64<<10)
	var b []byte
	var err error
	b = append(b, "{\n  \"sessions\": ["...)
	for n, r := range rows {
		if n > 0 {
			b = append(b, ',')
		}
		b = append(b, "\n    {"...)
		for i, c := range in {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, "\n      "...)
			b = append(b, keys[i]...)
			if b, err = appendValue(b, c.Value(r)); err != nil {
				return fmt.Errorf("historycli: JSON %s: %w", c.Key, err)
			}
		}
		b = append(b, "\n    }"...)
		if len(b) > 32<<10 {
			bw.Write(b) // a failed write is reported by Flush below
			b = b[:0]
		}
	}
	if len(rows) > 0 {
		b = append(b, "\n  "...)
	}
	b = append(b, "],\n  \"totals\": {"...)
	names := make([]string, 0, len(totals))
	for k := range totals {
		names = append(names, k)
	}
	sort.Strings(names)
	for i, k := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, "\n    "...)
		if b, err = appendValue(b, k); err != nil {
			return err
		}
		b = append(b, ": "...)
		if b, err = appendValue(b, totals[k]); err != nil {
			return fmt.Errorf("historycli: JSON totals %s: %w", k, err)
		}
	}
	b = append(b, "\n  }\n}\n"...)
	bw.Write(b)
	return bw.Flush()
}

// appendValue appends v as compact JSON: a Value is a string, an int64 or
// nil, and anything else is for encoding/json.
func appendValue(b []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case int64:
		return strconv.AppendInt(b, v, 10), nil
	}
	j, err := json.Marshal(v)
	if err != nil {
		return b, err
	}
	return append(b, j...), nil
}
