package historycli

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"satwatt/internal/subcmd"
)

func TestMilli(t *testing.T) {
	cases := []struct {
		in   int64
		want string
	}{
		{0, "0.000"}, {1, "0.001"}, {999, "0.999"}, {1000, "1.000"}, {30_001, "30.001"}, {-1, "-0.001"}, {-12_345, "-12.345"},
		// Past float64's exact integers: no rounding on the way.
		{1<<53 + 1, "9007199254740.993"},
		{9223372036854775807, "9223372036854775.807"},
	}
	for _, tc := range cases {
		if got := Milli(tc.in); got != tc.want {
			t.Errorf("Milli(%d) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseDate(t *testing.T) {
	old := time.Local
	time.Local = time.FixedZone("UTC+1", 3600)
	t.Cleanup(func() { time.Local = old })
	cases := []struct {
		in       string
		endOfDay bool
		want     time.Time
		wantErr  bool
	}{
		{"", false, time.Time{}, false},
		{"2026-11-25", false, time.Date(2026, 11, 24, 23, 0, 0, 0, time.UTC), false},
		{"2026-11-25", true, time.Date(2026, 11, 25, 23, 0, 0, 0, time.UTC), false}, // the whole day
		{"2026-11-25T10:00:00Z", true, time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC), false},
		{"2026-11-25T10:00:00+02:00", false, time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC), false},
		{"25.11.2026", false, time.Time{}, true},
		{"2026-02-30", false, time.Time{}, true},
	}
	for _, tc := range cases {
		got, err := ParseDate("since", tc.in, tc.endOfDay)
		if tc.wantErr {
			if !errors.Is(err, subcmd.ErrUsage) || !strings.Contains(err.Error(), `--since "`+tc.in+`"`) {
				t.Errorf("ParseDate(%q) = %v, want a usage error naming the flag and the value", tc.in, err)
			}
			continue
		}
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("ParseDate(%q, %v) = %v, %v; want %v", tc.in, tc.endOfDay, got, err, tc.want)
		}
	}
}

func TestParseFlags(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		want    Options
		wantErr string
	}{
		{"defaults", nil, Options{DB: "x.db"}, ""},
		{"everything", []string{"--db", "y.db", "--since", "2026-01-01T00:00:00Z", "--limit", "5", "--csv"},
			Options{DB: "y.db", Since: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Limit: 5, Format: CSV}, ""},
		{"json", []string{"--json"}, Options{DB: "x.db", Format: JSON}, ""},
		{"both formats", []string{"--csv", "--json"}, Options{}, "choose --csv or --json, not both"},
		{"a bad until", []string{"--until", "soon"}, Options{}, `--until "soon"`},
		{"an argument", []string{"extra"}, Options{}, "unexpected arguments: extra"},
		{"an unknown flag", []string{"--from", "2026-01-01"}, Options{}, "-from"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseHistoryFlags("prog", "x.db", "the database", tc.args, io.Discard)
			if tc.wantErr != "" {
				if !errors.Is(err, subcmd.ErrUsage) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want a usage error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}

	show := []struct {
		args    []string
		want    ShowOptions
		wantErr string
	}{
		{[]string{"s1"}, ShowOptions{DB: "x.db", ID: "s1"}, ""},
		{[]string{"s1", "--json", "--db", "y.db"}, ShowOptions{DB: "y.db", JSON: true, ID: "s1"}, ""},
		{[]string{"--json", "s1"}, ShowOptions{DB: "x.db", JSON: true, ID: "s1"}, ""},
		{[]string{"--json"}, ShowOptions{}, "which session? prog session show ID (ids are in prog history)"},
		{[]string{"s1", "s2"}, ShowOptions{}, "unexpected arguments: s2"},
	}
	for _, tc := range show {
		got, err := ParseShowFlags("prog", "x.db", "the database", tc.args, io.Discard)
		if tc.wantErr != "" {
			if !errors.Is(err, subcmd.ErrUsage) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseShowFlags(%q) = %v, want a usage error with %q", tc.args, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseShowFlags(%q) = %+v, %v; want %+v", tc.args, got, err, tc.want)
		}
	}
}

// row and cols are a listing as a command would declare it.
type row struct {
	id   string
	mwh  int64
	note any
}

var cols = []Column[row]{
	{Head: "id", Key: "id", CSV: true, Value: func(r row) any { return r.id }},
	{Head: "energy Wh", Key: "energy_wh", Total: true, Value: func(r row) any { return Milli(r.mwh) }},
	{Key: "mwh", CSV: true, Total: true, Value: func(r row) any { return r.mwh }},
	{Head: "note", Key: "note", CSV: true, Value: func(r row) any { return r.note }},
	{Head: "table only", Value: func(r row) any { return "t" }},
}

func TestWriteFormats(t *testing.T) {
	rows := []row{{"a", 1500, "x, \"quoted\""}, {"bb", 2, nil}}
	total := row{mwh: 1502}
	cases := []struct {
		name   string
		format Format
		rows   []row
		want   string
	}{
		{"table", Table, rows, "" +
			"                 id  energy Wh         note  table only\n" +
			"                  a      1.500  x, \"quoted\"           t\n" +
			"                 bb      0.002                        t\n" +
			"  total: 5 sessions      1.502\n"},
		{"csv", CSV, rows, "" +
			"id,mwh,note\n" +
			"a,1500,\"x, \"\"quoted\"\"\"\n" +
			"bb,2,\n" +
			"TOTAL 5 sessions,1502,\n"},
		{"json", JSON, rows, `{
  "sessions": [
    {
      "id": "a",
      "energy_wh": "1.500",
      "mwh": 1500,
      "note": "x, \"quoted\""
    },
    {
      "id": "bb",
      "energy_wh": "0.002",
      "mwh": 2,
      "note": null
    }
  ],
  "totals": {
    "energy_wh": "1.502",
    "mwh": 1502,
    "sessions": 5
  }
}
`},
		{"json without rows", JSON, nil, `{
  "sessions": [],
  "totals": {
    "energy_wh": "1.502",
    "mwh": 1502,
    "sessions": 5
  }
}
`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := Write(&b, tc.format, cols, tc.rows, 5, total); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.want {
				t.Errorf("got\n%s\nwant\n%s", b.String(), tc.want)
			}
		})
	}
}

// TestTrimWriter: trailing spaces go, whatever the chunks they come in.
func TestTrimWriter(t *testing.T) {
	for _, chunks := range [][]string{
		{"a  b   \n  c \n"},
		{"a ", " b ", "  ", "\n", "  c", " \n"},
	} {
		var b bytes.Buffer
		tw := &trimWriter{w: &b}
		for _, c := range chunks {
			if n, err := tw.Write([]byte(c)); err != nil || n != len(c) {
				t.Fatalf("Write(%q) = %d, %v", c, n, err)
			}
		}
		if got := b.String(); got != "a  b\n  c\n" {
			t.Errorf("chunks %q: got %q", chunks, got)
		}
	}
}

// TestJSONIsEncodingJSON: the listing's JSON is byte for byte what
// encoding/json prints of the same sessions as structs, tricky strings
// included.
func TestJSONIsEncodingJSON(t *testing.T) {
	notes := []any{"<a href=\"x\">&amp;</a>", "tab\tnew\nline\r\b\f\x00\x1f\x7f", "\u2028\u2029 é ☃ 𝄞", "bad \xff\xfe utf-8", nil, ""}
	var rows []row
	for i, n := range notes {
		rows = append(rows, row{id: strings.Repeat("i", i+1), mwh: int64(i) * -1001, note: n})
	}
	type ref struct {
		ID       string `json:"id"`
		EnergyWh string `json:"energy_wh"`
		MWh      int64  `json:"mwh"`
		Note     any    `json:"note"`
	}
	want := struct {
		Sessions []ref          `json:"sessions"`
		Totals   map[string]any `json:"totals"`
	}{Totals: map[string]any{"sessions": int64(6), "energy_wh": Milli(-7), "mwh": int64(-7)}}
	for _, r := range rows {
		want.Sessions = append(want.Sessions, ref{r.id, Milli(r.mwh), r.mwh, r.note})
	}
	var got, exp bytes.Buffer
	if err := Write(&got, JSON, cols, rows, 6, row{mwh: -7}); err != nil {
		t.Fatal(err)
	}
	if err := WriteJSON(&exp, want); err != nil {
		t.Fatal(err)
	}
	if got.String() != exp.String() {
		t.Errorf("got\n%s\nwant\n%s", got.String(), exp.String())
	}
}
