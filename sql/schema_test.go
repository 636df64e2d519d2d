package schema

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/mattn/go-sqlite3"
)

// database is one schema as the tests see it, through its exported API.
type database struct {
	name       string
	migrations func() ([]Migration, error)
	latest     func() (int, error)
	queries    func() (map[string]string, error)
	query      func(string) (string, error)
	tables     []string // tables it must have
}

var databases = []database{
	{"wall", Migrations, Latest, Queries, Query, []string{"settings", "sessions", "invoices", "meter_samples", "events"}},
	{"car", CarMigrations, CarLatest, CarQueries, CarQuery, []string{"sessions", "invoices", "refusals", "meter_samples", "events"}},
}

func TestMigrationsAreNumberedFromOne(t *testing.T) {
	for _, d := range databases {
		t.Run(d.name, func(t *testing.T) {
			ms, err := d.migrations()
			if err != nil {
				t.Fatal(err)
			}
			if len(ms) == 0 {
				t.Fatal("no migrations")
			}
			for i, m := range ms {
				if m.Version != i+1 || !strings.HasPrefix(m.Name, fmt.Sprintf("%04d_", i+1)) || m.SQL == "" {
					t.Errorf("migration %d is version %d, %q", i, m.Version, m.Name)
				}
			}
			if latest, err := d.latest(); err != nil || latest != len(ms) {
				t.Errorf("Latest = %d, %v; want %d", latest, err, len(ms))
			}
		})
	}
}

// TestSchemasAreApart: each database's files stay its own, and the two
// application ids differ, so that neither store migrates the other's file.
func TestSchemasAreApart(t *testing.T) {
	if ApplicationID == CarApplicationID {
		t.Fatal("the wall and the car share an application id")
	}
	wall, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	car, err := CarMigrations()
	if err != nil {
		t.Fatal(err)
	}
	for i := range min(len(wall), len(car)) {
		if wall[i].SQL == car[i].SQL {
			t.Errorf("migration %d is the same file for the wall and the car", i+1)
		}
	}
	wq, err := Queries()
	if err != nil {
		t.Fatal(err)
	}
	cq, err := CarQueries()
	if err != nil {
		t.Fatal(err)
	}
	if wq["session_insert"] == "" || cq["session_insert"] == "" || wq["session_insert"] == cq["session_insert"] {
		t.Error("the wall's and the car's session_insert should both exist and differ")
	}
	if _, ok := wq["refusal_insert"]; ok {
		t.Error("the wall's queries include the car's refusal_insert")
	}
	// Queries hands out copies: a caller cannot change another's queries.
	cq["session_insert"] = "DROP TABLE sessions"
	if q, _ := CarQuery("session_insert"); q == cq["session_insert"] {
		t.Error("changing the map from CarQueries changed the stored query")
	}
}

func TestParseQueries(t *testing.T) {
	cases := []struct {
		name    string
		text    string
		want    map[string]string
		wantErr string
	}{
		{
			name: "two queries after commentary",
			text: "-- About this file.\n\n-- name: a\nSELECT 1;\n\n-- name: b\n-- what b is for\nSELECT 2\nFROM t;\n",
			want: map[string]string{"a": "SELECT 1;", "b": "-- what b is for\nSELECT 2\nFROM t;"},
		},
		{name: "empty query", text: "-- name: a\n\n-- name: b\nSELECT 1;", wantErr: `query "a" is empty`},
		{name: "duplicate", text: "-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;", wantErr: `"a" is defined twice`},
		{name: "marker without a name", text: "-- name:\nSELECT 1;", wantErr: "followed by one word"},
		{name: "two words", text: "-- name: a b\nSELECT 1;", wantErr: "followed by one word"},
		{name: "no queries", text: "-- nothing here\n", want: map[string]string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := map[string]string{}
			err := parseQueries("x.sql", tc.text, got)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("query %s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

// migrated applies every migration of d to a fresh database file.
func migrated(t *testing.T, d database) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(t.TempDir(), "schema.db")+"?_foreign_keys=on")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ms, err := d.migrations()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if _, err := db.Exec(m.SQL); err != nil {
			t.Fatalf("migration %s: %v", m.Name, err)
		}
	}
	return db
}

func TestEveryQueryCompiles(t *testing.T) {
	for _, d := range databases {
		t.Run(d.name, func(t *testing.T) {
			db := migrated(t, d)
			qs, err := d.queries()
			if err != nil {
				t.Fatal(err)
			}
			if len(qs) == 0 {
				t.Fatal("no queries")
			}
			for name, q := range qs {
				st, err := db.PrepareContext(context.Background(), q)
				if err != nil {
					t.Errorf("query %s does not compile: %v", name, err)
					continue
				}
				st.Close()
			}
			if _, err := d.query("no_such_query"); err == nil {
				t.Error("Query of an unknown name succeeded")
			}
		})
	}
}

// TestNoFloatingPointColumns: money and energy are integers, and STRICT
// tables make SQLite enforce it.
func TestNoFloatingPointColumns(t *testing.T) {
	for _, d := range databases {
		t.Run(d.name, func(t *testing.T) { noFloatingPointColumns(t, d) })
	}
}

func noFloatingPointColumns(t *testing.T, d database) {
	db := migrated(t, d)
	rows, err := db.Query("SELECT name, strict FROM pragma_table_list WHERE schema = 'main' AND type = 'table' AND name NOT LIKE 'sqlite_%'")
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		var strict bool
		if err := rows.Scan(&name, &strict); err != nil {
			t.Fatal(err)
		}
		if !strict {
			t.Errorf("table %s is not STRICT", name)
		}
		tables = append(tables, name)
	}
	rows.Close()
	for _, want := range d.tables {
		if !contains(tables, want) {
			t.Errorf("no table %s in %v", want, tables)
		}
	}
	for _, table := range tables {
		cols, err := db.Query("SELECT name, type FROM pragma_table_info(?)", table)
		if err != nil {
			t.Fatal(err)
		}
		for cols.Next() {
			var name, typ string
			if err := cols.Scan(&name, &typ); err != nil {
				t.Fatal(err)
			}
			if typ != "INTEGER" && typ != "TEXT" {
				t.Errorf("%s.%s is %s, want INTEGER or TEXT", table, name, typ)
			}
			if (strings.HasSuffix(name, "_msat") || strings.HasSuffix(name, "_mwh") || strings.HasSuffix(name, "_wh") || strings.HasSuffix(name, "_permille")) && typ != "INTEGER" {
				t.Errorf("%s.%s is money or energy but %s", table, name, typ)
			}
		}
		cols.Close()
	}
	for _, view := range []string{"session_summary", "daily_totals", "monthly_totals"} {
		if _, err := db.Exec("SELECT * FROM " + view); err != nil {
			t.Errorf("view %s: %v", view, err)
		}
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// A wall that recorded sessions before 0003 gets them in the rollup when
// the migration runs, the same sums the views give.
func TestRollupBackfill(t *testing.T) {
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(t.TempDir(), "old.db")+"?_foreign_keys=on")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var rollup Migration
	for _, m := range ms {
		if strings.HasPrefix(m.Name, "0003_") {
			rollup = m
			break
		}
		exec(m.SQL)
	}
	if rollup.SQL == "" {
		t.Fatal("no 0003 migration")
	}
	const day = 86_400_000
	for i, started := range []int64{20_000 * day, 20_000*day + 5, 20_001*day - 1, 20_001 * day, 20_003*day + 7} {
		id := fmt.Sprintf("old%d", i)
		exec(`INSERT INTO sessions (id, started, ended, state, end_reason, price_msat_per_wh, increment_wh, first_multiple,
			grace_wh, max_power_w, payee, network, offer_valid_until, metadata, delivered_mwh, updated)
			VALUES (?, ?, ?, 'ended', 'unplugged', 100, 50, 2, 10, 7400, 'payee', 'regtest', ?, '[]', ?, ?)`,
			id, started, started+60_000, started+600_000, 1000*i+1, started)
		for k := range i + 1 {
			hash := fmt.Sprintf("%064x", i*10+k+1)
			exec(`INSERT INTO invoices (payment_hash, session_id, amount_asked_msat, amount_paid_msat, state, created, expires,
				settled, preimage, bolt11) VALUES (?, ?, 500, ?, 'settled', ?, ?, ?, ?, 'lnbcrt')`,
				hash, id, 500+k, started, started+60_000, started+1000, fmt.Sprintf("%064x", 999+i*10+k))
		}
		exec(`INSERT INTO invoices (payment_hash, session_id, amount_asked_msat, state, created, expires, closed, bolt11)
			VALUES (?, ?, 500, 'expired', ?, ?, ?, 'lnbcrt')`, fmt.Sprintf("%064x", 5000+i), id, started, started+60_000, started+60_000)
	}
	exec(rollup.SQL)
	rows, err := db.Query(`SELECT r.day, r.sessions, r.delivered_mwh, r.paid_msat, r.payments,
		(SELECT count(*) FROM session_summary WHERE started_ms / 86400000 = r.day),
		(SELECT sum(delivered_mwh) FROM session_summary WHERE started_ms / 86400000 = r.day),
		(SELECT sum(paid_msat) FROM session_summary WHERE started_ms / 86400000 = r.day),
		(SELECT sum(payments) FROM session_summary WHERE started_ms / 86400000 = r.day)
		FROM history_rollup AS r ORDER BY r.day`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var days []int64
	for rows.Next() {
		var d, s, e, p, n, ws, we, wp, wn int64
		if err := rows.Scan(&d, &s, &e, &p, &n, &ws, &we, &wp, &wn); err != nil {
			t.Fatal(err)
		}
		days = append(days, d)
		if s != ws || e != we || p != wp || n != wn {
			t.Errorf("day %d: rollup %d sessions %d mWh %d msat %d payments; the view %d, %d, %d, %d", d, s, e, p, n, ws, we, wp, wn)
		}
	}
	if fmt.Sprint(days) != "[20000 20001 20003]" {
		t.Errorf("rollup days %v, want [20000 20001 20003]", days)
	}
}
