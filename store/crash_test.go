package store

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
)

// crashChildEnv makes the test binary, re-executed by TestCrashSafety, write
// to the database it names until it is killed.
const crashChildEnv = "TLSREADY_STORE_CRASH_CHILD"

// crashChild commits a batch of recipients and a result per iteration and
// reports each commit on stdout. It never returns.
func crashChild(path string) {
	ctx := context.Background()
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		os.Exit(2)
	}
	s, err := Open(ctx, path, Options{})
	if err != nil {
		fail(err)
	}
	run, _, err := s.BeginRun(ctx, "crash", t0)
	if err != nil {
		fail(err)
	}
	deadline := time.Now().Add(time.Minute) // in case the parent is gone
	rs := make([]Recipient, 200)
	for i := 0; time.Now().Before(deadline); i++ {
		for j := range rs {
			rs[j] = Recipient{ID: fmt.Sprintf("%d-%d", i, j), Domain: fmt.Sprintf("d%d.example", i)}
		}
		if err := s.AddRecipients(ctx, run.ID, rs); err != nil {
			fail(err)
		}
		if err := s.SaveResults(ctx, []result.Result{res(fmt.Sprintf("d%d.example", i), result.Verified, t0, run.ID)}); err != nil {
			fail(err)
		}
		fmt.Printf("committed %d\n", i)
	}
	os.Exit(3)
}

// TestCrashSafety kills a writing process with SIGKILL and checks that the
// database is intact and holds everything the process reported committed.
func TestCrashSafety(t *testing.T) {
	if path := os.Getenv(crashChildEnv); path != "" {
		crashChild(path)
	}
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "crash.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashSafety$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	last := -1
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		n, err := strconv.Atoi(strings.TrimPrefix(sc.Text(), "committed "))
		if err != nil {
			t.Fatalf("child said %q", sc.Text())
		}
		last = n
		if last == 40 {
			// SIGKILL while the child is inside its next transactions.
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	cmd.Wait()
	if last < 40 {
		t.Fatalf("child stopped after %d commits: %s", last+1, stderr.String())
	}

	s := mustOpen(t, path, Options{})
	if err := s.IntegrityCheck(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i <= last; i++ {
		if _, err := s.Lookup(ctx, fmt.Sprintf("d%d.example", i)); err != nil {
			t.Fatalf("committed result %d lost: %v", i, err)
		}
	}
	n, err := s.CountRunDomains(ctx, 1)
	if err != nil || n < int64(last+1) {
		t.Fatalf("CountRunDomains %d %v, want >= %d", n, err, last+1)
	}
	var recips int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM recipients`).Scan(&recips); err != nil {
		t.Fatal(err)
	}
	if recips < (last+1)*200 || recips%200 != 0 {
		t.Fatalf("%d recipients after %d committed batches of 200", recips, last+1)
	}
	// The interrupted run resumes.
	if _, resumed, err := s.BeginRun(ctx, "crash", t0); err != nil || !resumed {
		t.Fatalf("resume after crash: resumed=%v err=%v", resumed, err)
	}
}
