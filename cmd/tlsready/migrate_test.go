package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/tlsready/tlsready/store/pgtest"
)

// TestMigrateRoundTrip: SQLite -> PostgreSQL -> SQLite gives the same
// report --format json (and so does the PostgreSQL copy itself); a second
// migrate into a database that is not empty is a usage error.
func TestMigrateRoundTrip(t *testing.T) {
	t.Parallel()
	cluster := pgtest.Start(t)
	src := fixtureDB(t)
	pg := cluster.NewDatabase(t)
	back := filepath.Join(t.TempDir(), "back.db")

	out, errOut, code := runCmd(t, "migrate", "--from", src, "--to", pg)
	if code != exitOK {
		t.Fatalf("migrate to PostgreSQL: exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "verified") || !strings.Contains(errOut, "copied domains") {
		t.Errorf("migrate output:\n%s\n%s", out, errOut)
	}
	if _, errOut, code := runCmd(t, "migrate", "--from", pg, "--to", back); code != exitOK {
		t.Fatalf("migrate back to SQLite: exit %d: %s", code, errOut)
	}

	report := func(db string) string {
		t.Helper()
		out, errOut, code := runCmd(t, "report", "--db", db, "--format", "json")
		if code != exitOK {
			t.Fatalf("report --db %s: exit %d: %s", db, code, errOut)
		}
		return out
	}
	want := report(src)
	if got := report(back); got != want {
		t.Errorf("report after the round trip differs:\n%s\nwant\n%s", got, want)
	}
	if got := report(pg); got != want {
		t.Errorf("report from PostgreSQL differs:\n%s\nwant\n%s", got, want)
	}
	if _, errOut, code := runCmd(t, "migrate", "--from", src, "--to", pg); code != exitUsage || !strings.Contains(errOut, "not empty") {
		t.Errorf("migrate into a non-empty database: exit %d: %s", code, errOut)
	}
	if _, errOut, code := runCmd(t, "migrate", "--from", src); code != exitUsage {
		t.Errorf("migrate without --to: exit %d: %s", code, errOut)
	}
}
