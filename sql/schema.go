// Package schema is satwatt's SQLite schemas: numbered migrations (tables,
// indexes, views) and the named queries the stores and the history commands
// run, embedded into the binary. There are two databases, the wall's
// (migrations/ and queries/) and the car's (car/migrations/ and
// car/queries/), read by the same code. The files are plain SQL so that
// people can read them and run them from the sqlite3 shell; the folder is
// sql/, the package is schema so that it does not shadow database/sql.
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

// ApplicationID is written to the wall database's header (PRAGMA
// application_id) so that the store can tell its own file from another
// program's SQLite database and refuse to migrate the latter. It spells
// "SatW".
const ApplicationID = 0x53617457

// CarApplicationID marks the car's database. It differs from the wall's so
// that neither program migrates the other's file. It spells "SatC".
const CarApplicationID = 0x53617443

//go:embed migrations/*.sql queries/*.sql
var wallFiles embed.FS

//go:embed car/migrations/*.sql car/queries/*.sql
var carFiles embed.FS

// set is one database's schema: where its migrations and queries are, and
// the queries once parsed.
type set struct {
	files         fs.FS
	migrationsDir string
	queriesDir    string

	once    sync.Once
	queries map[string]string
	err     error
}

var (
	wall = &set{files: wallFiles, migrationsDir: "migrations", queriesDir: "queries"}
	car  = &set{files: carFiles, migrationsDir: "car/migrations", queriesDir: "car/queries"}
)

// Migrations returns every migration of the wall's database in version order.
func Migrations() ([]Migration, error) { return wall.migrations() }

// Latest is the newest wall schema version this program knows.
func Latest() (int, error) { return wall.latest() }

// Queries returns every named query of the wall's database, by name.
func Queries() (map[string]string, error) { return wall.allQueries() }

// Query returns one named query of the wall's database.
func Query(name string) (string, error) { return wall.query(name) }

// CarMigrations returns every migration of the car's database in version order.
func CarMigrations() ([]Migration, error) { return car.migrations() }

// CarLatest is the newest car schema version this program knows.
func CarLatest() (int, error) { return car.latest() }

// CarQueries returns every named query of the car's database, by name.
func CarQueries() (map[string]string, error) { return car.allQueries() }

// CarQuery returns one named query of the car's database.
func CarQuery(name string) (string, error) { return car.query(name) }

// Migration is one numbered step of the schema, applied in one transaction.
type Migration struct {
	Version int    // from the file name: 0001_init.sql is version 1
	Name    string // the file name without the extension, e.g. "0001_init"
	SQL     string
}

// migrations reads the set's migrations in version order. Versions start at
// 1 and have no gaps, so a database's version says exactly what it holds.
func (s *set) migrations() ([]Migration, error) {
	entries, err := fs.ReadDir(s.files, s.migrationsDir)
	if err != nil {
		return nil, fmt.Errorf("schema: read %s: %w", s.migrationsDir, err)
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
			return nil, fmt.Errorf("schema: migration file %s/%s: want NNNN_name.sql with NNNN from 0001", s.migrationsDir, name)
		}
		b, err := fs.ReadFile(s.files, s.migrationsDir+"/"+name)
		if err != nil {
			return nil, fmt.Errorf("schema: read migration %s/%s: %w", s.migrationsDir, name, err)
		}
		if strings.TrimSpace(string(b)) == "" {
			return nil, fmt.Errorf("schema: migration %s/%s is empty", s.migrationsDir, name)
		}
		ms = append(ms, Migration{Version: v, Name: strings.TrimSuffix(name, ".sql"), SQL: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i, m := range ms {
		if m.Version != i+1 {
			return nil, fmt.Errorf("schema: migration %s/%s: want version %d (versions start at 1 without gaps or repeats)", s.migrationsDir, m.Name, i+1)
		}
	}
	return ms, nil
}

func (s *set) latest() (int, error) {
	ms, err := s.migrations()
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

// allQueries returns a copy, so that no caller can change another's queries.
func (s *set) allQueries() (map[string]string, error) {
	s.once.Do(func() { s.queries, s.err = s.loadQueries() })
	if s.err != nil {
		return nil, s.err
	}
	out := make(map[string]string, len(s.queries))
	for k, v := range s.queries {
		out[k] = v
	}
	return out, nil
}

func (s *set) query(name string) (string, error) {
	s.once.Do(func() { s.queries, s.err = s.loadQueries() })
	if s.err != nil {
		return "", s.err
	}
	q, ok := s.queries[name]
	if !ok {
		return "", fmt.Errorf("schema: no query named %q in %s", name, s.queriesDir)
	}
	return q, nil
}

func (s *set) loadQueries() (map[string]string, error) {
	entries, err := fs.ReadDir(s.files, s.queriesDir)
	if err != nil {
		return nil, fmt.Errorf("schema: read %s: %w", s.queriesDir, err)
	}
	out := map[string]string{}
	for _, e := range entries {
		if e.IsDir() || path.Ext(e.Name()) != ".sql" {
			continue
		}
		file := s.queriesDir + "/" + e.Name()
		b, err := fs.ReadFile(s.files, file)
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
