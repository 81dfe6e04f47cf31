package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
)

// rawExec runs statements on path over a plain SQLite connection, as another
// program (or an earlier tlsready) would.
func rawExec(t *testing.T, path string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func rawAppID(t *testing.T, path string) int32 {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var id int32
	if err := db.QueryRow(`PRAGMA application_id`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestApplicationID: a new database is stamped with ApplicationID, and the
// header says so where `file` and other tools look (offset 68).
func TestApplicationID(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "new.db")
	st, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 72 || string(b[68:72]) != "TLSR" {
		t.Fatalf("header bytes 68..72 = %q, want \"TLSR\"", b[68:min(len(b), 72)])
	}
	// An empty file (touch x.db) is a new database too.
	empty := filepath.Join(t.TempDir(), "empty.db")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, empty, Options{ReadOnly: true}); !errors.Is(err, ErrEmpty) {
		t.Errorf("read-only open of an empty file: %v, want ErrEmpty", err)
	}
	openStamps(t, "an empty file", empty, nil)
}

// openStamps opens the database at path (what names it) read-write, gives
// the store to check unless it is nil, closes it and checks that the open
// stamped the file with ApplicationID.
func openStamps(t *testing.T, what, path string, check func(*Store)) {
	t.Helper()
	st, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatalf("read-write open of %s: %v", what, err)
	}
	if check != nil {
		check(st)
	}
	st.Close()
	if id := rawAppID(t, path); id != ApplicationID {
		t.Errorf("%s: application_id %#x after a read-write open, want %#x", what, id, ApplicationID)
	}
}

// TestForeignDatabaseRefused: another application's database, with or
// without an application_id, is refused by both kinds of open and left
// exactly as it was; a file that is not a database gets a clear error.
func TestForeignDatabaseRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	noID := filepath.Join(dir, "other-app.db")
	rawExec(t, noID, `CREATE TABLE contacts (name TEXT, phone TEXT)`, `INSERT INTO contacts VALUES ('a', '1')`)
	withID := filepath.Join(dir, "fossil.db")
	rawExec(t, withID, `PRAGMA application_id = 252006674`) // Fossil's 0x0f055112, no tables
	userVer := filepath.Join(dir, "uv.db")
	rawExec(t, userVer, `PRAGMA user_version = 7`)
	notDB := filepath.Join(dir, "notes.db")
	if err := os.WriteFile(notDB, bytes.Repeat([]byte("not a database, just text\n"), 200), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want error
		says string
	}{
		{noID, ErrForeign, "contacts"},
		{withID, ErrForeign, "0x0f055112"},
		{userVer, ErrForeign, "user_version"},
		{notDB, ErrNotDatabase, "is not a database file"},
	} {
		before, err := os.ReadFile(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		for _, ro := range []bool{false, true} {
			st, err := Open(ctx, tc.path, Options{ReadOnly: ro})
			if err == nil {
				st.Close()
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) || !strings.Contains(err.Error(), tc.path) ||
				strings.Contains(err.Error(), "migrate") {
				t.Errorf("%s (read-only %v): %v; want %v naming the file and %q", filepath.Base(tc.path), ro, err, tc.want, tc.says)
			}
		}
		after, err := os.ReadFile(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(before, after) {
			t.Errorf("%s was changed by the refused opens", filepath.Base(tc.path))
		}
		for _, suffix := range []string{"-wal", "-shm", "-journal", ".lock"} {
			if _, err := os.Stat(tc.path + suffix); err == nil {
				t.Errorf("%s%s left behind", filepath.Base(tc.path), suffix)
			}
		}
	}
}

// TestEarlierDatabaseStamped: a database made by an earlier tlsready (no
// application_id, schema version 1 or current) is recognised by its tables:
// read-only opens accept it as it is, a read-write open stamps and migrates
// it, and its data survives.
func TestEarlierDatabaseStamped(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	// Current schema, written by the version before application_id.
	cur := filepath.Join(t.TempDir(), "current.db")
	st, err := Open(ctx, cur, Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	if err := st.SaveResults(ctx, []result.Result{{Domain: "kept.test", Verdict: result.Verified, ScannedAt: now, Flags: []string{}}}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	rawExec(t, cur, `PRAGMA application_id = 0`)
	if id := rawAppID(t, cur); id != 0 {
		t.Fatalf("could not clear application_id: %#x", id)
	}
	ro, err := Open(ctx, cur, Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only open of an unstamped tlsready database: %v", err)
	}
	if r, err := ro.Lookup(ctx, "kept.test"); err != nil || r.Verdict != result.Verified {
		t.Errorf("lookup: %v %v", r.Verdict, err)
	}
	ro.Close()
	if id := rawAppID(t, cur); id != 0 {
		t.Errorf("a read-only open stamped the file: %#x", id)
	}
	openStamps(t, "an unstamped tlsready database", cur, func(st *Store) {
		if r, err := st.Lookup(ctx, "kept.test"); err != nil || r.Verdict != result.Verified {
			t.Errorf("lookup after stamping: %v %v", r.Verdict, err)
		}
	})

	// Schema version 1, as the first release left it.
	old := filepath.Join(t.TempDir(), "v1.db")
	rawExec(t, old, migrations[0], `PRAGMA user_version = 1`)
	if _, err := Open(ctx, old, Options{ReadOnly: true}); err == nil || errors.Is(err, ErrForeign) {
		t.Errorf("read-only open of a v1 database: %v, want the schema version message", err)
	}
	openStamps(t, "a v1 database", old, nil)

	// A foreign database that happens to have one table of ours is not ours.
	mixed := filepath.Join(t.TempDir(), "mixed.db")
	rawExec(t, mixed, `CREATE TABLE runs (id INTEGER)`, `PRAGMA user_version = 1`)
	if _, err := Open(ctx, mixed, Options{}); !errors.Is(err, ErrForeign) {
		t.Errorf("database with only a runs table: %v, want ErrForeign", err)
	}
}
