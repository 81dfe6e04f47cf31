package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tlsready/tlsready/store"
	"github.com/tlsready/tlsready/store/pgtest"
)

// secretPW is the password the tests put in --db URLs; it must never be
// printed.
const secretPW = "s3cretPW"

// runMain runs the command line as a separate process through main's own
// error printing, and returns its exit code, stdout and stderr.
func runMain(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return runMainFor(t, 0, args...)
}

// runMainFor is runMain for a command that may keep running (serve): after
// d (when not zero) it is sent SIGTERM, and its exit code is what it
// returned then.
func runMainFor(t *testing.T, d time.Duration, args ...string) (int, string, string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	j, _ := json.Marshal(args)
	ctx := t.Context()
	if d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, exe, "-test.run=^$")
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.Env = append(os.Environ(), "TLSREADY_AS_MAIN="+string(j))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil, d > 0 && errors.Is(err, context.DeadlineExceeded):
		// Exited by itself, or stopped by SIGTERM and exited cleanly.
		return 0, out.String(), errb.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String(), errb.String()
	}
	t.Fatalf("%v: %v", args, err)
	return 0, "", ""
}

// withPassword returns db (a postgres:// URL) with password pw in its user
// information, or, with query set, as a password parameter.
func withPassword(t *testing.T, db, pw string, query bool) string {
	t.Helper()
	u, err := url.Parse(db)
	if err != nil {
		t.Fatal(err)
	}
	if query {
		q := u.Query()
		q.Set("password", pw)
		u.RawQuery = q.Encode()
	} else {
		u.User = url.UserPassword(u.User.Username(), pw)
	}
	return u.String()
}

// checkNoPassword fails when the password shows in a command's output; with
// named set the output must name the database, redacted.
func checkNoPassword(t *testing.T, args []string, code int, stdout, stderr string, named bool) {
	t.Helper()
	if strings.Contains(stdout, secretPW) || strings.Contains(stderr, secretPW) {
		t.Errorf("%v (exit %d) printed the password:\nstdout: %s\nstderr: %s", args, code, stdout, stderr)
	}
	if named && !strings.Contains(stdout+stderr, ":xxxxx@") && !strings.Contains(stdout+stderr, "password=xxxxx") {
		t.Errorf("%v (exit %d) does not name the database (redacted):\nstdout: %s\nstderr: %s", args, code, stdout, stderr)
	}
}

// TestPasswordNeverPrintedUnreachable: every command taking a --db, given a
// postgres:// URL with a password of a server that is not there, fails
// without printing the password (in the URL's user information or as a
// password parameter).
func TestPasswordNeverPrintedUnreachable(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now: connection refused
	dir := t.TempDir()
	reg := filepath.Join(dir, "register.txt")
	if err := os.WriteFile(reg, []byte("1,a@example.org\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, query := range []bool{false, true} {
		db := withPassword(t, "postgres://tlsready@"+addr+"/tlsready?sslmode=disable&connect_timeout=5", secretPW, query)
		for _, args := range [][]string{
			{"lookup", "-v", "--db", db, "example.org"},
			{"report", "--db", db, "--format", "json"},
			{"export", "recipients", "--db", db, "--verdict", "plaintext"},
			{"status", "--db", db},
			{"status", "--db", db, "--json"},
			{"migrate", "--from", db, "--to", filepath.Join(dir, "copy.db")},
			{"scan", reg, "--db", db, "--helo", "test.tlsready.invalid", "--resolver", addr},
		} {
			code, stdout, stderr := runMain(t, args...)
			if code == 0 {
				t.Errorf("%v: exit 0 without a database server", args)
			}
			checkNoPassword(t, args, code, stdout, stderr, false)
		}
		// serve starts without its database (it answers from the cache
		// file and keeps trying): it runs until stopped, and its warnings
		// name the database redacted.
		args := []string{"serve", "-v", "--db", db, "--cache-file", "none", "--http", "127.0.0.1:0", "--socketmap", "127.0.0.1:0"}
		code, stdout, stderr := runMainFor(t, 3*time.Second, args...)
		checkNoPassword(t, args, code, stdout, stderr, true)
	}
}

// TestPostgresPasswordNeverPrinted: against a real PostgreSQL (trust
// authentication: any password is accepted), the messages that name the
// database — an empty one, a scan already running, a --run that does not
// exist, a --to that is not empty — and status's report name it with the
// password replaced by xxxxx.
func TestPostgresPasswordNeverPrinted(t *testing.T) {
	cluster := pgtest.Start(t)
	world, input, _ := demoWorld(t)
	sqlite := filepath.Join(t.TempDir(), "t.db") // a tlsready database, for migrate into a full one
	if st, err := store.Open(t.Context(), sqlite, store.Options{}); err != nil {
		t.Fatal(err)
	} else {
		st.Close()
	}
	for _, query := range []bool{false, true} {
		empty := withPassword(t, cluster.NewDatabase(t), secretPW, query)
		for _, args := range [][]string{
			{"lookup", "--db", empty, "example.org"},
			{"report", "--db", empty},
			{"export", "recipients", "--db", empty, "--verdict", "plaintext"},
			{"status", "--db", empty},
			{"serve", "--db", empty, "--http", "127.0.0.1:0", "--socketmap", "127.0.0.1:0"},
		} {
			code, stdout, stderr := runMain(t, args...)
			if code != exitUsage {
				t.Errorf("%v on an empty database: exit %d, want %d: %s", args, code, exitUsage, stderr)
			}
			checkNoPassword(t, args, code, stdout, stderr, true)
		}

		db := withPassword(t, cluster.NewDatabase(t), secretPW, query)
		args := scanArgs(world, input, db)
		code, stdout, stderr := runMain(t, args...)
		if code != 0 {
			t.Fatalf("scan: exit %d: %s", code, stderr)
		}
		checkNoPassword(t, args, code, stdout, stderr, false)

		for _, args := range [][]string{
			{"status", "--db", db},
			{"status", "--db", db, "--json"},
		} {
			code, stdout, stderr := runMain(t, args...)
			if code != 0 {
				t.Errorf("%v: exit %d: %s", args, code, stderr)
			}
			checkNoPassword(t, args, code, stdout, stderr, true)
		}
		for _, args := range [][]string{
			{"report", "--db", db, "--run", "99"},
			{"export", "recipients", "--db", db, "--verdict", "plaintext", "--run", "99"},
			{"migrate", "--from", empty, "--to", filepath.Join(t.TempDir(), "copy.db")},
			{"migrate", "--from", sqlite, "--to", db},
		} {
			code, stdout, stderr := runMain(t, args...)
			if code == 0 {
				t.Errorf("%v: exit 0", args)
			}
			checkNoPassword(t, args, code, stdout, stderr, true)
		}

		// A scan while another holds the lock.
		st, unlock := lockedStore(t, db)
		args = scanArgs(world, input, db)
		code, stdout, stderr = runMain(t, args...)
		if code == 0 || !strings.Contains(stderr, "another tlsready scan is running") {
			t.Errorf("scan while another runs: exit %d: %s", code, stderr)
		}
		checkNoPassword(t, args, code, stdout, stderr, true)
		unlock()
		st.Close()
	}
}
