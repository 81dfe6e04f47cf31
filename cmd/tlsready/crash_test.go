package main

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/scanner/scantest"
	"github.com/tlsready/tlsready/scanner/scantest/worlds"
	"github.com/tlsready/tlsready/store"
)

// TestMain lets the test binary act as the tlsready command, so tests can
// run it as a child process and kill it.
func TestMain(m *testing.M) {
	if os.Getenv("TLSREADY_SIMNET") == "1" {
		os.Exit(simnetChild())
	}
	if args := os.Getenv("TLSREADY_AS_MAIN"); args != "" {
		var argv []string
		if err := json.Unmarshal([]byte(args), &argv); err != nil {
			os.Exit(99)
		}
		os.Exit(run(argv))
	}
	os.Exit(m.Run())
}

// child starts the command line as a separate process.
func child(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	j, _ := json.Marshal(args)
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), "TLSREADY_AS_MAIN="+string(j))
	cmd.Stderr = &strings.Builder{}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

func verdicts(t *testing.T, db string, domains []string) map[string]result.Verdict {
	t.Helper()
	got := map[string]result.Verdict{}
	for _, r := range lookupJSON(t, db, domains) {
		got[r.Domain] = r.Verdict
	}
	return got
}

// TestCrashResume kills scans with SIGTERM and SIGKILL at random points,
// reruns the same command, and checks that the final verdicts equal an
// uninterrupted run's and that the database passes integrity_check.
func TestCrashResume(t *testing.T) {
	if testing.Short() {
		t.Skip("kills child processes; not in -short")
	}
	sc, reg, expected, err := worlds.Demo(nil)
	if err != nil {
		t.Fatal(err)
	}
	sc.RTT = 30 * time.Millisecond // slow enough that kills land mid-scan
	world := scantest.StartT(t, sc)
	input := filepath.Join(t.TempDir(), "register.txt")
	if err := os.WriteFile(input, []byte(strings.Join(reg, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var domains []string
	for d := range expected {
		domains = append(domains, d)
	}
	args := func(db string) []string {
		return scanArgs(world, input, db, "--concurrency", "3", "--rescan-after", "0")
	}

	dbA := filepath.Join(t.TempDir(), "a.db")
	if code, _, stderr := runCLI(t, args(dbA)...); code != 0 {
		t.Fatalf("reference scan: %d %s", code, stderr)
	}
	want := verdicts(t, dbA, domains)

	dbB := filepath.Join(t.TempDir(), "b.db")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	// First a polite stop: SIGTERM must exit 3 after saving what finished.
	// It lands once the child has probed a few IPs (so some domains are
	// done), however slowly a loaded machine starts the child.
	cmd := child(t, args(dbB)...)
	waitProbes(t, world, 5)
	time.Sleep(time.Duration(rng.IntN(500)) * time.Millisecond)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	err = cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ee.ExitCode() != exitInterrupted {
			t.Errorf("SIGTERM: exit %d, want %d; stderr: %s", ee.ExitCode(), exitInterrupted, cmd.Stderr)
		}
	} else if err != nil {
		t.Fatal(err)
	}
	// Then kill -9 at random points, several times.
	for i := range 4 {
		cmd := child(t, args(dbB)...)
		waitProbes(t, world, 1)
		time.Sleep(time.Duration(rng.IntN(2000)) * time.Millisecond)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Logf("kill %d done", i)
	}
	if code, _, stderr := runCLI(t, args(dbB)...); code != 0 {
		t.Fatalf("final scan: %d %s", code, stderr)
	}
	got := verdicts(t, dbB, domains)
	for d, v := range want {
		if got[d] != v {
			t.Errorf("%s: %s after crashes, %s uninterrupted", d, got[d], v)
		}
	}
	st, err := store.Open(context.Background(), dbB, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.IntegrityCheck(context.Background()); err != nil {
		t.Errorf("integrity_check: %v", err)
	}
	runs, err := st.Runs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// With --rescan-after 0 nothing is reused across runs: a run that reused
	// domains resumed an interrupted run without probing them again.
	resumed := false
	for _, r := range runs {
		if r.Status == "finished" && r.Stats.Reused > 0 {
			resumed = true
		}
	}
	if !resumed {
		t.Errorf("no run resumed finished work: %+v", runs)
	}
}

// waitProbes waits until the world has seen n more SMTP connections than
// when it was called, or 20 s have passed (a resumed run may have nothing
// left to probe).
func waitProbes(t *testing.T, world *scantest.Internet, n int64) {
	t.Helper()
	start := world.Counters().SMTPConnections
	deadline := time.Now().Add(20 * time.Second)
	for world.Counters().SMTPConnections < start+n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSecondScanFails: a second scan on a database that is being scanned
// fails at once with a clear message.
func TestSecondScanFails(t *testing.T) {
	world, input, _ := demoWorld(t)
	db := filepath.Join(t.TempDir(), "t.db")
	st, unlock := lockedStore(t, db)
	defer st.Close()
	defer unlock()
	start := time.Now()
	code, _, stderr := runCLI(t, scanArgs(world, input, db)...)
	if code != exitFailed || !strings.Contains(stderr, "another tlsready scan is running") {
		t.Errorf("second scan: exit %d, %q", code, stderr)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("second scan took %v to fail", el)
	}
}

// TestBadLinesAndUsage: bad register lines are counted and never fatal, and
// never echoed; usage errors exit 2; the database is 0600.
func TestBadLinesAndUsage(t *testing.T) {
	world, _, _ := demoWorld(t)
	input := filepath.Join(t.TempDir(), "reg.txt")
	lines := "good@bigmail.test\nsecret-no-at-sign\n@empty.test\nbad@-x-.test\n\xff\xfe@bigmail.test\nok@chuo-ward.test\n"
	if err := os.WriteFile(input, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(t.TempDir(), "t.db")
	code, out, stderr := runCLI(t, scanArgs(world, input, db)...)
	if code != 0 {
		t.Fatalf("scan: %d %s", code, stderr)
	}
	if !strings.Contains(out, "4 bad input lines") {
		t.Errorf("summary does not count 4 bad lines: %s", out)
	}
	if strings.Contains(out+stderr, "secret-no-at-sign") || strings.Contains(out+stderr, "good@") {
		t.Errorf("output echoes register content")
	}
	fi, err := os.Stat(db)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("database mode %v", fi.Mode().Perm())
	}
	if code, _, _ := runCLI(t, "scan", "--input", input); code != exitUsage {
		t.Errorf("scan without --db: exit %d, want 2", code)
	}
	if code, _, _ := runCLI(t, "scan", "--input", input, "--db", db, "--concurrency", "0"); code != exitUsage {
		t.Errorf("--concurrency 0: exit %d, want 2", code)
	}
	if code, _, _ := runCLI(t, "no-such-command"); code != exitUsage {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
}
