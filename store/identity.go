package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	sqlite3 "github.com/mattn/go-sqlite3"
)

// ApplicationID marks a tlsready database: SQLite's PRAGMA application_id
// (the 32-bit big-endian integer at offset 68 of the file header), the ASCII
// bytes "TLSR". `file` shows it, and tools such as sqlite3's ".dbinfo"
// print it. It is set when tlsready creates a database, and on the first
// read-write open of a database made by a version of tlsready that did not
// set it (recognised by its tables).
const ApplicationID int32 = 0x544C5352 // "TLSR"

// Errors of a --db file that is not a tlsready database.
var (
	// ErrNotDatabase: the file is not an SQLite database at all.
	ErrNotDatabase = errors.New("store: not an SQLite database")
	// ErrForeign: an SQLite database of another application, which
	// tlsready never adds its tables to.
	ErrForeign = errors.New("store: another application's SQLite database")
	// ErrEmpty: an empty database opened read-only (no scan wrote to it).
	ErrEmpty = errors.New("store: empty database")
)

// firstTables are the tables every tlsready database has had since schema
// version 1; a database without application_id that has them all and a
// user_version of at least 1 was made by an earlier tlsready.
var firstTables = []string{"domains", "meta", "recipients", "run_domains", "run_recipient_domains", "runs", "sts_policies"}

// identity is what the file header and the schema say about a database.
type identity struct {
	appID       int32
	userVersion int
	tables      []string // user tables, sorted
}

type querier interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}

func readIdentity(ctx context.Context, q querier) (identity, error) {
	var id identity
	if err := q.QueryRowContext(ctx, `PRAGMA application_id`).Scan(&id.appID); err != nil {
		return id, fmt.Errorf("store: read application_id: %w", err)
	}
	v, err := userVersion(ctx, q)
	if err != nil {
		return id, err
	}
	id.userVersion = v
	rows, err := q.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\' ORDER BY name`)
	if err != nil {
		return id, fmt.Errorf("store: list tables: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return id, fmt.Errorf("store: list tables: %w", err)
		}
		id.tables = append(id.tables, name)
	}
	if err := rows.Err(); err != nil {
		return id, fmt.Errorf("store: list tables: %w", err)
	}
	return id, nil
}

// empty reports a database nothing has been written to.
func (id identity) empty() bool {
	return id.appID == 0 && id.userVersion == 0 && len(id.tables) == 0
}

// check says whether the database at path is tlsready's: nil when it carries
// ApplicationID; stamp=true when it must be stamped first (a new, empty
// database, or one of an earlier tlsready); ErrForeign otherwise.
func (id identity) check(path string) (stamp bool, err error) {
	switch {
	case id.appID == ApplicationID:
		return false, nil
	case id.appID != 0:
		return false, fmt.Errorf("%w: %s has SQLite application_id %#08x, not tlsready's %#08x; use a new file for --db",
			ErrForeign, path, uint32(id.appID), uint32(ApplicationID))
	case id.empty():
		return true, nil
	case id.userVersion >= 1 && containsAll(id.tables, firstTables):
		return true, nil
	}
	return false, fmt.Errorf("%w: %s holds %s, not tlsready's; tlsready does not add its tables to another database: use a new file for --db",
		ErrForeign, path, describeTables(id.tables))
}

func containsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

func describeTables(tables []string) string {
	switch n := len(tables); {
	case n == 0:
		return "no tables but a user_version set by another program"
	case n <= 5:
		return "the tables " + strings.Join(tables, ", ")
	default:
		return fmt.Sprintf("the tables %s and %d more", strings.Join(tables[:5], ", "), n-5)
	}
}

// inspect reads the identity of the database at path over a query-only
// connection, before any connection that changes the file (journal_mode=WAL)
// touches it: a foreign database is refused unmodified.
func inspect(ctx context.Context, path string) error {
	db, err := openDB(path, false, true, 1<<10)
	if err != nil {
		return err
	}
	defer db.Close()
	id, err := readIdentity(ctx, db)
	if err != nil {
		return notDatabase(err, path)
	}
	_, err = id.check(path)
	return err
}

// claim checks, in one immediate transaction, that the database is tlsready's
// and stamps ApplicationID on a new one or one of an earlier tlsready, so two
// processes opening a new file at once agree.
func claim(ctx context.Context, db *sql.DB, path string) error {
	tx, err := db.BeginTx(ctx, nil) // the write pool begins IMMEDIATE
	if err != nil {
		return notDatabase(fmt.Errorf("store: open %s: %w", path, err), path)
	}
	defer tx.Rollback()
	id, err := readIdentity(ctx, tx)
	if err != nil {
		return notDatabase(err, path)
	}
	stamp, err := id.check(path)
	if err != nil || !stamp {
		return err
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA application_id = %d`, ApplicationID)); err != nil {
		return fmt.Errorf("store: set application_id: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: set application_id: %w", err)
	}
	return nil
}

// verifyReadOnly is claim for a read-only open: it refuses a foreign or an
// empty database and accepts one of an earlier tlsready unstamped.
func verifyReadOnly(ctx context.Context, db *sql.DB, path string) error {
	id, err := readIdentity(ctx, db)
	if err != nil {
		return notDatabase(err, path)
	}
	if id.empty() {
		return fmt.Errorf("%w: %s: no tlsready scan has written to it", ErrEmpty, path)
	}
	_, err = id.check(path)
	return err
}

// notDatabase turns SQLite's "file is not a database" into ErrNotDatabase
// naming the file; other errors pass unchanged.
func notDatabase(err error, path string) error {
	var se sqlite3.Error
	if errors.As(err, &se) && se.Code == sqlite3.ErrNotADB {
		return fmt.Errorf("%w: %s is not a database file (tlsready's or any other): check --db", ErrNotDatabase, path)
	}
	return err
}
