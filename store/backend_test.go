package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/tlsready/tlsready/store/pgtest"
)

// backend is a kind of database the store's tests run against: every test
// of the store's semantics runs once per backend (eachBackend).
type backend struct {
	name string
	pg   bool
}

var backends = []backend{{name: "sqlite"}, {name: "postgres", pg: true}}

// The PostgreSQL cluster the package's tests share, started by the first
// test that needs it and stopped by TestMain; each test gets a database of
// its own.
var (
	pgOnce    sync.Once
	pgCluster *pgtest.Cluster
	pgErr     error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if pgCluster != nil {
		if err := pgCluster.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// newDB returns a new, empty database of the backend: a file path or a
// postgres:// URL. A missing PostgreSQL skips the test, unless CI is set.
func (b backend) newDB(t testing.TB) string {
	t.Helper()
	if !b.pg {
		return filepath.Join(t.TempDir(), "tlsready.db")
	}
	pgOnce.Do(func() { pgCluster, pgErr = pgtest.StartCluster() })
	if errors.Is(pgErr, pgtest.ErrNoPostgres) && os.Getenv("CI") == "" {
		t.Skip(pgErr)
	}
	if pgErr != nil {
		t.Fatal(pgErr)
	}
	return pgCluster.NewDatabase(t)
}

// open opens a new database of the backend, closed in t.Cleanup.
func (b backend) open(t testing.TB, opts ...Options) *Store {
	t.Helper()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	return mustOpen(t, b.newDB(t), o)
}

// mustOpen opens the database at path (a file or a postgres:// URL),
// closed in t.Cleanup.
func mustOpen(t testing.TB, path string, o Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), path, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// eachBackend runs fn as a subtest for each backend, in parallel.
func eachBackend(t *testing.T, fn func(t *testing.T, b backend)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			fn(t, b)
		})
	}
}

// eachStore is the frame of most tests of the store's semantics: fn runs
// in parallel with the other tests, once per backend (eachBackend), with a
// new store of the backend and a background context.
func eachStore(t *testing.T, fn func(t *testing.T, ctx context.Context, b backend, s *Store)) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		fn(t, context.Background(), b, b.open(t))
	})
}

// storedSchemaVersion is the schema version stored in s's database.
func storedSchemaVersion(t testing.TB, s *Store) int {
	t.Helper()
	var (
		v   int
		err error
	)
	if s.pg != nil {
		v, err = pgSchemaVersion(context.Background(), s.r, s.path)
	} else {
		v, err = userVersion(context.Background(), s.r)
	}
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// setSchemaVersion overwrites the stored schema version (a newer program's database).
func setSchemaVersion(t testing.TB, s *Store, v int) {
	t.Helper()
	stmt := fmt.Sprintf("PRAGMA user_version = %d", v)
	if s.pg != nil {
		stmt = fmt.Sprintf("UPDATE tlsready_schema SET version = %d", v)
	}
	if _, err := s.w.ExecContext(context.Background(), stmt); err != nil {
		t.Fatal(err)
	}
}

func TestRebind(t *testing.T) {
	for in, want := range map[string]string{
		`SELECT 1`:                          `SELECT 1`,
		`a = ? AND b = ?`:                   `a = $1 AND b = $2`,
		`x = ?1 AND y IS DISTINCT FROM ?1`:  `x = $1 AND y IS DISTINCT FROM $1`,
		`r = ?1 AND v IN (?, ?)`:            `r = $1 AND v IN ($2, $3)`,
		`a = ?2 AND b = ?`:                  `a = $2 AND b = $3`,
		`f LIKE '%?%' AND g = ?`:            `f LIKE '%?%' AND g = $1`,
		`INSERT INTO t VALUES (?, 'x?', ?)`: `INSERT INTO t VALUES ($1, 'x?', $2)`,
		`coalesce(r.address, '') = ?10, ?`:  `coalesce(r.address, '') = $10, $11`,
	} {
		if got := rebind(in); got != want {
			t.Errorf("rebind(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMigrationsPerDialect(t *testing.T) {
	if len(pgMigrations) != len(migrations) {
		t.Fatalf("%d PostgreSQL steps for %d SQLite steps: each schema version needs both", len(pgMigrations), len(migrations))
	}
}
