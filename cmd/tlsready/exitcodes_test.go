package main

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3" // a foreign database, written as another program would

	"github.com/tlsready/tlsready/scanner/scantest"
	"github.com/tlsready/tlsready/store"
)

// TestExitCodes is README's "Exit codes" table, command by command: the same
// situation gives the same code and a message that says what to do, from
// every command that meets it.
func TestExitCodes(t *testing.T) {
	world, input, _ := demoWorld(t)
	dir := t.TempDir()
	db := fixtureDB(t) // finished runs 1 and 2
	missing := filepath.Join(dir, "missing.db")
	notDB := filepath.Join(dir, "notes.db")
	if err := os.WriteFile(notDB, []byte(strings.Repeat("meeting notes, not a database\n", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	foreign := filepath.Join(dir, "other-app.db")
	fdb, err := sql.Open("sqlite3", "file:"+foreign)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fdb.Exec(`CREATE TABLE contacts (name TEXT); INSERT INTO contacts VALUES ('x')`); err != nil {
		t.Fatal(err)
	}
	fdb.Close()
	// A database whose only run was interrupted.
	interrupted := filepath.Join(dir, "interrupted.db")
	st, err := store.Open(context.Background(), interrupted, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.BeginRun(context.Background(), "register.txt|1|1", time.Now()); err != nil {
		t.Fatal(err)
	}
	st.Close()
	refusing := scantest.RefusingResolver(t)

	scan := func(extra ...string) []string {
		a := scanArgs(world, input, filepath.Join(t.TempDir(), "t.db"), extra...)
		i := slices.Index(a, "--input")
		return append(a[:i:i], a[i+2:]...) // the register is given by each case
	}
	withResolver := func(args []string, addr string) []string {
		args = slices.Clone(args)
		args[slices.Index(args, "--resolver")+1] = addr
		return args
	}
	check := []string{"check", "--resolver", world.DNSAddr, "--allow-private", "--smtp-port", "1", "--helo", "test.tlsready.invalid", "--quiet"}
	serve := func(db string) []string {
		return []string{"serve", "--db", db, "--http", "127.0.0.1:0", "--socketmap", ""}
	}

	for _, tc := range []struct {
		name string
		args []string
		code int
		says string // in stdout or stderr
	}{
		// 0
		{"scan, register as argument", append(scan(), input), exitOK, "citizens at"},
		{"scan, register as --input", append(scan(), "--input", input), exitOK, "citizens at"},
		{"scan, the same register both ways", append(scan(), input, "--input", input), exitOK, "citizens at"},
		{"lookup unknown domain", []string{"lookup", "--db", db, "nowhere.example"}, exitOK, "unknown"},
		{"export --verdict unknown", []string{"export", "recipients", "--db", db, "--verdict", "unknown,plaintext"}, exitOK, "id,domain,verdict"},
		{"status, fresh", []string{"status", "--db", db, "--overdue-after", "100000h"}, exitOK, "next:      nothing to do"},
		{"diff, two runs", []string{"diff", "--db", db}, exitOK, "run 1 -> run 2"},
		{"pin list, none", []string{"pin", "list", "--db", db}, exitOK, "0 pins (0 active)"},

		// 1
		{"report without a finished run", []string{"report", "--db", interrupted}, exitFailed, "no finished run in " + interrupted},
		{"export without a finished run", []string{"export", "recipients", "--db", interrupted}, exitFailed, "no finished run in " + interrupted},
		{"status, overdue", []string{"status", "--db", db}, exitFailed, "overdue: the last finished run is"},
		{"status, --max-age (the old name of --overdue-after)", []string{"status", "--db", db, "--max-age", "100000h"}, exitOK, "next:      nothing to do"},
		{"diff without two finished runs", []string{"diff", "--db", interrupted}, exitFailed, "diff needs two finished runs"},

		// 2: the command line
		{"unknown command", []string{"frobnicate"}, exitUsage, "unknown command"},
		{"unknown flag", []string{"lookup", "--frob"}, exitUsage, "unknown flag"},
		{"scan without register", scan(), exitUsage, "no register given"},
		{"scan without --db", []string{"scan", input}, exitUsage, "--db is required"},
		{"scan, two registers", append(scan(), input, "--input", "other.csv"), exitUsage, "two registers"},
		{"scan, register missing", append(scan(), filepath.Join(dir, "nope.csv")), exitUsage, "no such file"},
		{"scan, bare --helo", append(scan("--helo", "vm"), input), exitUsage, "--helo"},
		{"check, bare --helo", append(slices.Clone(check), "--helo", "vm", "bigmail.test"), exitUsage, "--helo"},
		{"check, not a domain", append(slices.Clone(check), "not a domain"), exitUsage, "not a valid domain name"},
		{"lookup, not a domain", []string{"lookup", "--db", db, "not a domain"}, exitUsage, "not a valid domain name"},
		{"export --verdict bogus", []string{"export", "recipients", "--db", db, "--verdict", "plaintext,bogus"}, exitUsage,
			`"bogus" is not a verdict; valid: dane, mta-sts, verified, encrypted, partial, plaintext, broken, no-mail, unreachable, dns-error, unknown`},
		{"report --format pdf", []string{"report", "--db", db, "--format", "pdf"}, exitUsage, "--format"},
		{"pin set, bogus policy", []string{"pin", "set", "example.org", "strict", "--db", db}, exitUsage, `"strict" is not a policy`},
		{"pin rm, no pin", []string{"pin", "rm", "example.org", "--db", db}, exitUsage, "example.org has no pin"},
		{"diff, one --run", []string{"diff", "--db", db, "--run", "1"}, exitUsage, "--run is given twice"},

		// 2: --db that is not there, not a database, not ours
		{"lookup, missing db", []string{"lookup", "--db", missing, "example.org"}, exitUsage, "no such database"},
		{"report, missing db", []string{"report", "--db", missing}, exitUsage, "no such database"},
		{"export, missing db", []string{"export", "recipients", "--db", missing}, exitUsage, "no such database"},
		{"serve, missing db", serve(missing), exitUsage, "no such database"},
		{"status, missing db", []string{"status", "--db", missing}, exitUsage, "no such database"},
		{"pin set, missing db", []string{"pin", "set", "example.org", "may", "--db", missing}, exitUsage, "no such database"},
		{"diff, missing db", []string{"diff", "--db", missing}, exitUsage, "no such database"},
		{"status, no finished run", []string{"status", "--db", interrupted}, exitUsage, "no finished run in " + interrupted},
		{"lookup, not a database", []string{"lookup", "--db", notDB, "example.org"}, exitUsage, "is not a database file"},
		{"report, not a database", []string{"report", "--db", notDB}, exitUsage, "is not a database file"},
		{"serve, not a database", serve(notDB), exitUsage, "is not a database file"},
		{"scan, not a database", append(scan(), input, "--db", notDB), exitUsage, "is not a database file"},
		{"lookup, foreign db", []string{"lookup", "--db", foreign, "example.org"}, exitUsage, "contacts"},
		{"report, foreign db", []string{"report", "--db", foreign}, exitUsage, "another application's"},
		{"export, foreign db", []string{"export", "recipients", "--db", foreign}, exitUsage, "another application's"},
		{"scan, foreign db", append(scan(), input, "--db", foreign), exitUsage, "another application's"},

		// 2: --run
		{"report --run 99", []string{"report", "--db", db, "--run", "99"}, exitUsage, "no run 99 in " + db + " (finished runs: 1-2)"},
		{"export --run 99", []string{"export", "recipients", "--db", db, "--run", "99"}, exitUsage, "no run 99 in " + db},
		{"diff --run 99", []string{"diff", "--db", db, "--run", "1", "--run", "99"}, exitUsage, "no run 99 in " + db},
		{"report --run interrupted", []string{"report", "--db", interrupted, "--run", "1"}, exitUsage, "run 1 in " + interrupted + " is running or interrupted, not finished"},

		// 4
		{"scan, dead resolver", withResolver(append(scan(), input), refusing), exitEnvironment, "does not answer"},
		{"check, dead resolver", append(withResolver(check, refusing), "bigmail.test"), exitEnvironment, "does not answer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, stderr := runCLI(t, tc.args...)
			if code != tc.code || !strings.Contains(out+stderr, tc.says) {
				t.Errorf("%v\nexit %d, want %d with %q\nstdout: %s\nstderr: %s", tc.args, code, tc.code, tc.says, out, stderr)
			}
		})
	}

	// Nothing above changed the foreign database or the other file, or
	// created a database where there was none.
	if _, err := os.Stat(missing); err == nil {
		t.Errorf("%s was created", missing)
	}
	for _, f := range []string{foreign + "-wal", notDB + "-wal", foreign + ".lock"} {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("%s was created", f)
		}
	}
}
