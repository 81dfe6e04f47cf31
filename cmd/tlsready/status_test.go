package main

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tlsready/tlsready/cmd/internal/job"
	"github.com/tlsready/tlsready/store"
)

// statusJSON runs status --json and decodes it.
func statusJSON(t *testing.T, db string, extra ...string) (int, statusReport, string) {
	t.Helper()
	code, out, stderr := runCLI(t, append([]string{"status", "--db", db, "--json"}, extra...)...)
	var rep statusReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("status --json: %v\n%s\n%s", err, out, stderr)
	}
	return code, rep, stderr
}

// TestStatusAndSummaryJSON: a real scan writes --summary-json (0600) with
// the totals the summary prints; status then reports the run fresh (0),
// overdue beyond --overdue-after (1), a scan in progress, an interrupted run to
// resume and an aborted one to fix, each with its next action.
func TestStatusAndSummaryJSON(t *testing.T) {
	world, input, expected := demoWorld(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "t.db")
	sumFile := filepath.Join(dir, "summary.json")

	code, _, stderr := runCLI(t, "status", "--db", db)
	if code != statusNoRun || !strings.Contains(stderr, "no such database") {
		t.Errorf("status without a database: exit %d, %q", code, stderr)
	}

	code, out, stderr := runCLI(t, scanArgs(world, input, db, "--summary-json", sumFile)...)
	if code != exitOK {
		t.Fatalf("scan: exit %d: %s", code, stderr)
	}
	fi, err := os.Stat(sumFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("--summary-json file: %v, mode %v", err, fi.Mode())
	}
	b, _ := os.ReadFile(sumFile)
	var sum runSummaryJSON
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Status != "finished" || sum.ExitCode != 0 || sum.Run != 1 || sum.Domains != int64(len(expected)) ||
		sum.Stats == nil || sum.Citizens != sum.Stats.Recipients || sum.FinishedAt.IsZero() {
		t.Errorf("summary JSON: %s", b)
	}
	if want := "run 1: " + strconv.FormatInt(sum.Citizens, 10) + " citizens at " + strconv.FormatInt(sum.Domains, 10) + " domains"; !strings.Contains(out, want) {
		t.Errorf("summary JSON says %d citizens at %d domains; the printed summary:\n%s", sum.Citizens, sum.Domains, out)
	}
	var byVerdict int64
	for _, c := range sum.Verdicts {
		byVerdict += c.Citizens
	}
	if byVerdict != sum.Citizens {
		t.Errorf("verdict citizens %d, total %d", byVerdict, sum.Citizens)
	}

	// Fresh.
	code, rep, _ := statusJSON(t, db)
	if code != statusFresh || rep.State != "fresh" || rep.LastFinished == nil || rep.LastFinished.ID != 1 ||
		rep.LastFinished.Citizens != sum.Citizens || !equalCounts(rep.LastFinished.Verdicts, sum.Verdicts) ||
		len(rep.Running) != 0 || !strings.HasPrefix(rep.Next, "nothing to do") {
		t.Errorf("status after the scan: exit %d, %+v", code, rep)
	}
	code, out, _ = runCLI(t, "status", "--db", db)
	for _, want := range []string{"state:     fresh", "last run:  1, finished", "plaintext", "next:      nothing to do"} {
		if code != statusFresh || !strings.Contains(out, want) {
			t.Errorf("status (text): exit %d, lacks %q:\n%s", code, want, out)
		}
	}
	// Overdue.
	time.Sleep(20 * time.Millisecond)
	code, rep, stderr = statusJSON(t, db, "--overdue-after", "10ms")
	if code != statusOverdue || rep.State != "overdue" || !strings.HasPrefix(rep.Next, "scan: the last finished run (1)") || !strings.Contains(stderr, "overdue") {
		t.Errorf("--overdue-after 10ms: exit %d, %+v, %q", code, rep, stderr)
	}

	// A scan in progress (it holds the lock) on another register.
	ctx := context.Background()
	st, unlock := lockedStore(t, db)
	defer st.Close()
	other := filepath.Join(dir, "other.txt")
	writeFile(t, other, "a@bigmail.test\n")
	otherID, err := job.InputIdentity(other)
	if err != nil {
		t.Fatal(err)
	}
	r2, _, err := st.BeginRun(ctx, otherID, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	code, rep, _ = statusJSON(t, db)
	if code != statusFresh || len(rep.Running) != 1 || rep.Running[0].ID != r2.ID || rep.Running[0].InProgress == nil ||
		!*rep.Running[0].InProgress || !strings.HasPrefix(rep.Next, "wait: a scan is running") {
		t.Errorf("in progress: exit %d, %+v", code, rep)
	}
	// Interrupted: nobody holds the lock.
	unlock()
	code, rep, _ = statusJSON(t, db)
	if len(rep.Running) != 1 || rep.Running[0].Status != "interrupted" || !strings.HasPrefix(rep.Next, "resume: run 2") ||
		!strings.Contains(rep.Next, other) {
		t.Errorf("interrupted: exit %d, %+v", code, rep)
	}
	// Abandoned by a run of the demo register, which is aborted in its turn.
	r3, _, err := st.BeginRun(ctx, "demo", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.AbandonRuns(ctx, r3.ID, "run 3 started with another input"); err != nil {
		t.Fatal(err)
	}
	if err := st.AbortRun(ctx, r3.ID, "scanner: the resolver does not answer"); err != nil {
		t.Fatal(err)
	}
	code, rep, _ = statusJSON(t, db)
	statuses := []string{}
	for _, r := range rep.Aborted {
		statuses = append(statuses, r.Status)
	}
	if code != statusFresh || len(rep.Running) != 0 || !slices.Equal(statuses, []string{"abandoned", "aborted"}) ||
		!strings.Contains(rep.Next, "run 3 was aborted (scanner: the resolver does not answer)") {
		t.Errorf("aborted: exit %d, %+v", code, rep)
	}
	code, out, _ = runCLI(t, "status", "--db", db)
	if !strings.Contains(out, "abandoned: run 2") || !strings.Contains(out, "aborted:   run 3, started") {
		t.Errorf("status (text) of abandoned and aborted runs:\n%s", out)
	}
}

// TestStatusNoRun: a database with only an interrupted run is exit 2, and
// says to resume it.
func TestStatusNoRun(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "t.db")
	ctx := context.Background()
	st, err := store.Open(ctx, db, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.BeginRun(ctx, "-", time.Now()); err != nil {
		t.Fatal(err)
	}
	st.Close()
	code, rep, stderr := statusJSON(t, db)
	if code != statusNoRun || rep.State != "no-run" || rep.LastFinished != nil || len(rep.Running) != 1 ||
		!strings.HasPrefix(rep.Next, "resume: run 1") || !strings.Contains(stderr, "no finished run") {
		t.Errorf("exit %d, %+v, %q", code, rep, stderr)
	}
}

// TestSummaryJSONOnFailure: a scan that fails still replaces the summary
// file, saying how it ended; a summary file in a missing directory is
// refused before the scan.
func TestSummaryJSONOnFailure(t *testing.T) {
	t.Parallel()
	world, input, _ := demoWorld(t)
	dir := t.TempDir()
	sumFile := filepath.Join(dir, "summary.json")
	writeFile(t, sumFile, `{"status":"finished"}`)
	dead, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.LocalAddr().String()
	dead.Close()
	args := scanArgs(world, input, filepath.Join(dir, "t.db"), "--summary-json", sumFile)
	args[slices.Index(args, "--resolver")+1] = deadAddr
	if code, _, _ := runCLI(t, args...); code != exitEnvironment {
		t.Fatalf("scan with a dead resolver: exit %d", code)
	}
	b, _ := os.ReadFile(sumFile)
	var sum runSummaryJSON
	if err := json.Unmarshal(b, &sum); err != nil || sum.Status != "failed" || sum.ExitCode != exitEnvironment || !strings.Contains(sum.Error, "does not answer") {
		t.Errorf("summary after a failed scan: %s (%v)", b, err)
	}
	code, _, stderr := runCLI(t, scanArgs(world, input, filepath.Join(dir, "u.db"), "--summary-json", filepath.Join(dir, "missing", "s.json"))...)
	if code != exitUsage || !strings.Contains(stderr, "--summary-json") {
		t.Errorf("summary in a missing directory: exit %d, %q", code, stderr)
	}
}

func equalCounts(a, b map[string]verdictCount) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
