// Package schema is the wall's SQLite schema: numbered migrations (tables,
// indexes, views) and the named queries the store and the history commands
// run, embedded into the binary. The files are plain SQL so that people can
// read them and run them from the sqlite3 shell; the folder is sql/, the
// package is schema so that it does not shadow database/sql.
package schema

import (
	"bufio"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// ApplicationID is written to the database header (PRAGMA application_id)
// so that the store can tell its own file from another program's SQLite
// database and refuse to migrate the latter. It spells "SatW".
const ApplicationID = 0x53617457

//go:embed migrations/*.sql
var migrationFiles embed.FS

//go:embed queries/*.sql
var queryFiles embed.FS

// Migration is one numbered step of the schema, applied in one transaction.
type Migration struct {
	Version int    // from the file name: 0001_init.sql is version 1
	Name    string // the file name without the extension, e.g. "0001_init"
	SQL     string
}

// Migrations returns every migration in version order. Versions start at 1
// and have no gaps, so a database's version says exactly what it holds.
func Migrations() ([]Migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("schema: read migrations: %w", err)
	}
	var ms []Migration
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || path.Ext(name) != ".sql" {
			continue
		}
		digits, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(digits)
		if !ok || err != nil || v <= 0 || len(digits) != 4 {
			return nil, fmt.Errorf("schema: migration file %q: want NNNN_name.sql with NNNN from 0001", name)
		}
		b, err := migrationFiles.ReadFile("migrations/" + name)
		if err != nil {
			return nil, fmt.Errorf("schema: read migration %s: %w", name, err)
		}
		if strings.TrimSpace(string(b)) == "" {
			return nil, fmt.Errorf("schema: migration %s is empty", name)
		}
		ms = append(ms, Migration{Version: v, Name: strings.TrimSuffix(name, ".sql"), SQL: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i, m := range ms {
		if m.Version != i+1 {
			return nil, fmt.Errorf("schema: migration %s: want version %d (versions start at 1 without gaps or repeats)", m.Name, i+1)
		}
	}
	return ms, nil
}

// Latest is the newest schema version this program knows.
func Latest() (int, error) {
	ms, err := Migrations()
	if err != nil {
		return 0, err
	}
	return len(ms), nil
}

// queryMarker starts a named query in a queries/*.sql file:
//
//	-- name: session_get
//
// Everything up to the next marker is that query. Parameters are named
// (:id, :since), so a query also runs in the sqlite3 shell after
// `.param set :id 'abc'`.
const queryMarker = "-- name:"

var (
	queriesOnce sync.Once
	queries     map[string]string
	queriesErr  error
)

// Queries returns every named query, by name.
func Queries() (map[string]string, error) {
	queriesOnce.Do(func() { queries, queriesErr = loadQueries() })
	if queriesErr != nil {
		return nil, queriesErr
	}
	out := make(map[string]string, len(queries))
	for k, v := range queries {
		out[k] = v
	}
	return out, nil
}

// Query returns one named query.
func Query(name string) (string, error) {
	queriesOnce.Do(func() { queries, queriesErr = loadQueries() })
	if queriesErr != nil {
		return "", queriesErr
	}
	q, ok := queries[name]
	if !ok {
		return "", fmt.Errorf("schema: no query named %q", name)
	}
	return q, nil
}

func loadQueries() (map[string]string, error) {
	entries, err := fs.ReadDir(queryFiles, "queries")
	if err != nil {
		return nil, fmt.Errorf("schema: read queries: %w", err)
	}
	out := map[string]string{}
	for _, e := range entries {
		if e.IsDir() || path.Ext(e.Name()) != ".sql" {
			continue
		}
		file := "queries/" + e.Name()
		b, err := queryFiles.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("schema: read %s: %w", file, err)
		}
		if err := parseQueries(file, string(b), out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// parseQueries adds the named queries of one file to out.
func parseQueries(file, text string, out map[string]string) error {
	var (
		name, body string
		line       int
		nameLine   int
	)
	flush := func() error {
		if name == "" {
			// Text before the first marker is the file's commentary.
			return nil
		}
		q := strings.TrimSpace(body)
		if q == "" {
			return fmt.Errorf("schema: %s:%d: query %q is empty", file, nameLine, name)
		}
		if _, dup := out[name]; dup {
			return fmt.Errorf("schema: %s:%d: query %q is defined twice", file, nameLine, name)
		}
		out[name] = q
		return nil
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line++
		l := sc.Text()
		if rest, ok := strings.CutPrefix(strings.TrimSpace(l), queryMarker); ok {
			if err := flush(); err != nil {
				return err
			}
			name, body, nameLine = strings.TrimSpace(rest), "", line
			if name == "" || strings.ContainsAny(name, " \t") {
				return fmt.Errorf("schema: %s:%d: want %q followed by one word", file, line, queryMarker)
			}
			continue
		}
		body += l + "\n"
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("schema: read %s: %w", file, err)
	}
	return flush()
}
