package job_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tlsready/tlsready/cmd/internal/job"
	"github.com/tlsready/tlsready/scanner"
	"github.com/tlsready/tlsready/scanner/resolve"
	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/scanner/scantest"
	"github.com/tlsready/tlsready/scanner/scantest/worlds"
	"github.com/tlsready/tlsready/scanner/smtpprobe"
	"github.com/tlsready/tlsready/store"
	"github.com/tlsready/tlsready/store/pgtest"
)

// world is a generated simulated internet with its register on disk and
// every domain's expected verdict.
type world struct {
	net      *scantest.Internet
	register string
	expected map[string]result.Verdict
}

func newWorld(t *testing.T, domains, addresses int) world {
	t.Helper()
	w := world{expected: map[string]result.Verdict{}}
	var reg bytes.Buffer
	sc, err := worlds.Generate(nil, worlds.GenOptions{Domains: domains, Addresses: addresses, Seed: 11,
		Expected: func(d string, v result.Verdict) { w.expected[d] = v }}, &reg)
	if err != nil {
		t.Fatal(err)
	}
	w.net = scantest.StartT(t, sc)
	w.register = filepath.Join(t.TempDir(), "register.txt")
	if err := os.WriteFile(w.register, reg.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return w
}

// config is a scan of w into the SQLite file db: the scanner's defaults,
// with the world's resolver, CA and ports.
func (w world) config(db string) job.Config {
	trustAD := true
	return job.Config{
		Input:        w.register,
		DB:           db,
		Resolver:     resolve.Config{Servers: []string{w.net.DNSAddr}, TrustAD: &trustAD},
		ResolverName: w.net.DNSAddr,
		Scanner: scanner.Config{
			Probe:        smtpprobe.Config{Port: w.net.SMTPPort, HELO: "test.tlsready.invalid", Timeout: 10 * time.Second},
			RootCAs:      w.net.CA.Pool(),
			HTTPSPort:    w.net.HTTPSPort,
			Concurrency:  20,
			Rate:         1000,
			AllowPrivate: true,
			TempRetry:    []time.Duration{},
		},
		Version: "test",
	}
}

// storedVerdicts reads the verdicts of run's domains from db.
func storedVerdicts(t *testing.T, db string, run int64) map[string]result.Verdict {
	t.Helper()
	st, err := store.Open(context.Background(), db, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	got := map[string]result.Verdict{}
	err = st.RunDomains(context.Background(), run, func(d store.RunDomain) error {
		got[d.Domain] = d.Verdict
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// checkRun: the run's stored verdicts are the world's, and the summary
// counts them.
func checkRun(t *testing.T, w world, db string, sum job.Summary) {
	t.Helper()
	if sum.Run.FinishedAt.IsZero() {
		t.Fatalf("run %d not finished", sum.Run.ID)
	}
	got := storedVerdicts(t, db, sum.Run.ID)
	counts := map[result.Verdict]int64{}
	for d, v := range got {
		counts[v]++
		if want, ok := w.expected[d]; !ok {
			t.Errorf("%s: stored (%s), not in the world", d, v)
		} else if v != want {
			t.Errorf("%s: %s, want %s", d, v, want)
		}
	}
	var citizens int64
	for v, c := range sum.Verdicts {
		if c[0] != counts[v] {
			t.Errorf("summary: %d %s domains, %d stored", c[0], v, counts[v])
		}
		citizens += c[1]
	}
	for v, n := range counts {
		if sum.Verdicts[v][0] != n {
			t.Errorf("summary: %d %s domains, %d stored", sum.Verdicts[v][0], v, n)
		}
	}
	if citizens != sum.Run.Stats.Recipients || citizens == 0 {
		t.Errorf("summary: %d citizens, the run has %d recipients", citizens, sum.Run.Stats.Recipients)
	}
	if len(got) == 0 || int64(len(got)) != sum.Run.Stats.Domains {
		t.Errorf("%d domains stored, the run has %d", len(got), sum.Run.Stats.Domains)
	}
}

// TestRunScansWorld: job.Run scans a simulated world into a real SQLite
// store; the stored verdicts are the world's and the summary counts them.
// A second run reuses every fresh result and scans only the temporary
// verdicts again.
func TestRunScansWorld(t *testing.T) {
	w := newWorld(t, 60, 150)
	db := filepath.Join(t.TempDir(), "t.db")
	cfg := w.config(db)
	cfg.RescanAfter = time.Hour
	sum, err := job.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkRun(t, w, db, sum)
	if sum.Pending != int(sum.Run.Stats.Domains) || sum.Run.Stats.Scanned != sum.Run.Stats.Domains || sum.Run.Stats.Reused != 0 {
		t.Errorf("first run: %d pending, stats %+v", sum.Pending, sum.Run.Stats)
	}
	if sum.Run.Stats.ScannerVersion != "test" || sum.Run.Stats.Vantage != "test.tlsready.invalid" || sum.Run.Stats.Resolver != w.net.DNSAddr {
		t.Errorf("run stats: version %q, vantage %q, resolver %q", sum.Run.Stats.ScannerVersion, sum.Run.Stats.Vantage, sum.Run.Stats.Resolver)
	}

	var temporary int
	for _, v := range w.expected {
		if v == result.Unreachable || v == result.DNSError {
			temporary++
		}
	}
	again, err := job.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkRun(t, w, db, again)
	if again.Run.ID == sum.Run.ID {
		t.Errorf("the second run is run %d again", again.Run.ID)
	}
	if again.Pending > temporary || again.Run.Stats.Reused != again.Run.Stats.Domains-int64(again.Pending) {
		t.Errorf("second run: %d pending (%d temporary verdicts), %d reused of %d", again.Pending, temporary, again.Run.Stats.Reused, again.Run.Stats.Domains)
	}
}

// cancelAfter is a Progress that cancels the run after n results.
type cancelAfter struct {
	mu       sync.Mutex
	n        int
	cancel   context.CancelFunc
	started  int
	finished int
	done     bool
}

func (c *cancelAfter) Started(string) { c.mu.Lock(); c.started++; c.mu.Unlock() }
func (c *cancelAfter) Finished(string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.finished++
	if c.finished == c.n {
		c.cancel()
	}
}
func (c *cancelAfter) Done() { c.mu.Lock(); c.done = true; c.mu.Unlock() }

// TestRunInterruptedResumes: a run whose context is cancelled mid-scan
// returns ErrInterrupted with what finished saved; the same Config resumes
// that run, scanning only what is left, and finishes it.
func TestRunInterruptedResumes(t *testing.T) {
	w := newWorld(t, 80, 160)
	db := filepath.Join(t.TempDir(), "t.db")
	cfg := w.config(db)
	cfg.Scanner.Concurrency = 4
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	prog := &cancelAfter{n: 20, cancel: cancel}
	var plan job.Plan
	cfg.Progress = func(p job.Plan) job.Progress { plan = p; return prog }
	first, err := job.Run(ctx, cfg)
	if !errors.Is(err, job.ErrInterrupted) {
		t.Fatalf("interrupted run: %v, want ErrInterrupted", err)
	}
	if !prog.done || prog.finished < 20 || plan.Total == 0 || plan.Pending != plan.Total || plan.Probing == nil {
		t.Fatalf("progress: plan %+v, %d finished, done %v", plan, prog.finished, prog.done)
	}
	if first.Run.ID == 0 || !first.Run.FinishedAt.IsZero() || first.Verdicts != nil {
		t.Fatalf("interrupted run's summary: %+v", first)
	}
	saved := storedResults(t, db, first.Run.ID)
	if saved < 20 || int64(saved) >= plan.Total {
		t.Fatalf("%d results saved of %d after the interruption, want at least 20 and not all", saved, plan.Total)
	}

	var log bytes.Buffer
	cfg.Progress = nil
	cfg.Log = slog.New(slog.NewTextHandler(&log, nil))
	second, err := job.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if second.Run.ID != first.Run.ID || !bytes.Contains(log.Bytes(), []byte("resuming interrupted run")) {
		t.Fatalf("run %d after interrupted run %d; log:\n%s", second.Run.ID, first.Run.ID, log.String())
	}
	if int64(second.Pending) != plan.Total-int64(saved) {
		t.Errorf("resumed run scanned %d domains, %d were left", second.Pending, plan.Total-int64(saved))
	}
	checkRun(t, w, db, second)
}

// storedResults counts the results run has saved so far.
func storedResults(t *testing.T, db string, run int64) int {
	t.Helper()
	st, err := store.Open(context.Background(), db, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	n := 0
	err = st.Results(context.Background(), run, func(result.Result) error { n++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRunErrors: a run that cannot start says why with the sentinel the
// command maps to its exit code, and leaves no database behind when the
// register or the resolver is the problem.
func TestRunErrors(t *testing.T) {
	w := newWorld(t, 5, 10)
	dir := t.TempDir()

	cfg := w.config(filepath.Join(dir, "missing-register.db"))
	cfg.Input = filepath.Join(dir, "nope.txt")
	if _, err := job.Run(context.Background(), cfg); !errors.Is(err, job.ErrNoRegister) {
		t.Errorf("missing register: %v, want ErrNoRegister", err)
	}

	// A resolver that is not there: the UDP port is closed.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := pc.LocalAddr().String()
	pc.Close()
	cfg = w.config(filepath.Join(dir, "dead-resolver.db"))
	cfg.Resolver.Servers = []string{dead}
	if _, err := job.Run(context.Background(), cfg); !errors.Is(err, job.ErrNetworkDown) || errors.Is(err, job.ErrInterrupted) {
		t.Errorf("dead resolver: %v, want ErrNetworkDown", err)
	}
	for _, db := range []string{"missing-register.db", "dead-resolver.db"} {
		if _, err := os.Stat(filepath.Join(dir, db)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: a run that could not start left its database behind (%v)", db, err)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := job.Run(ctx, w.config(filepath.Join(dir, "cancelled.db"))); !errors.Is(err, job.ErrInterrupted) {
		t.Errorf("cancelled before the start: %v, want ErrInterrupted", err)
	}

	db := filepath.Join(dir, "locked.db")
	st, err := store.Open(context.Background(), db, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	unlock, err := st.LockScan()
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if _, err := job.Run(context.Background(), w.config(db)); !errors.Is(err, job.ErrScanLocked) {
		t.Errorf("second scan of a locked database: %v, want ErrScanLocked", err)
	}
}

// TestRunSharedWorkers: two Runs of one Config on a PostgreSQL store share
// one run: both finish it, every domain scanned once between them, with
// the world's verdicts.
func TestRunSharedWorkers(t *testing.T) {
	w := newWorld(t, 60, 120)
	db := pgtest.Start(t).NewDatabase(t)
	cfg := w.config(db)
	cfg.Lease = 3 * time.Second
	cfg.Scanner.Concurrency = 5
	var wg sync.WaitGroup
	sums := make([]job.Summary, 2)
	errs := make([]error, 2)
	for i := range sums {
		wg.Go(func() { sums[i], errs[i] = job.Run(context.Background(), cfg) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("worker %d: %v", i, err)
		}
	}
	if sums[0].Run.ID != sums[1].Run.ID {
		t.Fatalf("the workers ran runs %d and %d, not one", sums[0].Run.ID, sums[1].Run.ID)
	}
	checkRun(t, w, db, sums[0])
	if s := sums[0].Run.Stats; s.Scanned != s.Domains || s.Reused != 0 {
		t.Errorf("shared run: %d scanned and %d reused of %d domains, want each scanned once", s.Scanned, s.Reused, s.Domains)
	}
}
