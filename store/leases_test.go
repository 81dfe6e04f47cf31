package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
)

// TestSharedRunLeases: the lease queries of a shared run on PostgreSQL.
// Workers claiming at once get disjoint domains (SKIP LOCKED) that cover
// the queue; a domain saved in the run is never claimed again; a dead
// worker's expired domains and MX IPs are taken over; probe requests reach
// the IP's holder and its outcome the asker; the run is finished once, only
// when no domain is left and every live worker reported, with the reported
// counters; SQLite refuses shared runs.
func TestSharedRunLeases(t *testing.T) {
	eachStore(t, func(t *testing.T, ctx context.Context, be backend, s *Store) {
		run := mustBegin(t, s, "register")
		if !be.pg {
			if _, err := s.ClaimDomains(ctx, run.ID, "w", 10, time.Minute); !errors.Is(err, ErrSharedRunsNeedPostgres) {
				t.Errorf("ClaimDomains on SQLite: %v", err)
			}
			if _, err := s.LockRunSetup(ctx); !errors.Is(err, ErrSharedRunsNeedPostgres) {
				t.Errorf("LockRunSetup on SQLite: %v", err)
			}
			return
		}
		var domains []string
		for i := range 200 {
			domains = append(domains, fmt.Sprintf("d%03d.test", i))
		}
		if _, ok, err := s.RunQueued(ctx, run.ID); err != nil || ok {
			t.Fatalf("RunQueued before QueueRun: %v, %v", ok, err)
		}
		if err := s.QueueRun(ctx, run.ID, domains, RunQueue{Total: 200, Stats: RunStats{Lines: 7}}); err != nil {
			t.Fatal(err)
		}
		q, ok, err := s.RunQueued(ctx, run.ID)
		if err != nil || !ok || q.Total != 200 || q.Stats.Lines != 7 {
			t.Fatalf("RunQueued: %+v, %v, %v", q, ok, err)
		}
		const lease = time.Minute
		for _, w := range []string{"a", "b", "c", "dead"} {
			if err := s.JoinRun(ctx, run.ID, w, lease); err != nil {
				t.Fatal(err)
			}
		}
		// The dead worker claims the first 10 and one MX IP, with a lease
		// that is over at once.
		first, err := s.ClaimDomains(ctx, run.ID, "dead", 10, time.Millisecond)
		if err != nil || !slices.Equal(first, domains[:10]) {
			t.Fatalf("first claim: %v, %v", first, err)
		}
		if ok, err := s.HoldIP(ctx, run.ID, "dead", "192.0.2.1", time.Millisecond); err != nil || !ok {
			t.Fatalf("HoldIP: %v, %v", ok, err)
		}
		if _, err := s.w.ExecContext(ctx, `UPDATE scan_workers SET expires = now() - interval '1 second' WHERE worker = 'dead'`); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
		// One of them was saved in the run before the worker died.
		if err := s.SaveResults(ctx, []result.Result{res(domains[3], result.Verified, t0, run.ID)}); err != nil {
			t.Fatal(err)
		}

		// Three workers claim at once, in small batches, until nothing is left.
		var mu sync.Mutex
		got := map[string]string{}
		var wg sync.WaitGroup
		errs := make(chan error, 3)
		for _, w := range []string{"a", "b", "c"} {
			wg.Go(func() {
				for {
					ds, err := s.ClaimDomains(ctx, run.ID, w, 7, lease)
					if err != nil {
						errs <- err
						return
					}
					if len(ds) == 0 {
						return
					}
					mu.Lock()
					for _, d := range ds {
						if prev, dup := got[d]; dup {
							errs <- fmt.Errorf("%s claimed by %s and %s", d, prev, w)
						}
						got[d] = w
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if len(got) != 199 {
			t.Errorf("%d domains claimed, want 199 (all but the one saved)", len(got))
		}
		if _, ok := got[domains[3]]; ok {
			t.Errorf("a domain saved in the run was claimed again")
		}
		byWorker := map[string]int{}
		for _, w := range got {
			byWorker[w]++
		}
		t.Logf("claims per worker: %v", byWorker)

		// The dead worker's MX IP is taken over; then it is a's.
		if ok, err := s.HoldIP(ctx, run.ID, "a", "192.0.2.1", lease); err != nil || !ok {
			t.Fatalf("take over the IP: %v, %v", ok, err)
		}
		if ok, err := s.HoldIP(ctx, run.ID, "b", "192.0.2.1", lease); err != nil || ok {
			t.Fatalf("b takes a live lease: %v, %v", ok, err)
		}
		key := ProbeKey{IP: "192.0.2.1", Key: "p|0|0|mx.example"}
		if err := s.RequestProbe(ctx, run.ID, key); err != nil {
			t.Fatal(err)
		}
		if err := s.RequestProbe(ctx, run.ID, key); err != nil { // asked twice: one request
			t.Fatal(err)
		}
		if open, err := s.OpenProbeRequests(ctx, run.ID, "a"); err != nil || !slices.Equal(open, []ProbeKey{key}) {
			t.Fatalf("a's open requests: %v, %v", open, err)
		}
		if open, err := s.OpenProbeRequests(ctx, run.ID, "b"); err != nil || len(open) != 0 {
			t.Fatalf("b's open requests: %v, %v", open, err)
		}
		st, err := s.ProbeOutcomes(ctx, run.ID, []ProbeKey{key})
		if err != nil || st[key].Outcome != nil || !st[key].Held {
			t.Fatalf("before the answer: %+v, %v", st, err)
		}
		if err := s.PutProbeOutcome(ctx, run.ID, key, []byte(`{"probe":{}}`)); err != nil {
			t.Fatal(err)
		}
		st, err = s.ProbeOutcomes(ctx, run.ID, []ProbeKey{key})
		if err != nil || string(st[key].Outcome) != `{"probe":{}}` {
			t.Fatalf("after the answer: %+v, %v", st, err)
		}

		merge := func(r []RunStats) RunStats {
			out := RunStats{Lines: 7}
			for _, x := range r {
				out.Scanned += x.Scanned
			}
			return out
		}
		finish := func() bool {
			t.Helper()
			done, err := s.FinishSharedRun(ctx, run.ID, t0, merge)
			if err != nil {
				t.Fatal(err)
			}
			return done
		}
		if finish() {
			t.Fatal("finished with every domain left")
		}
		locked, err := s.ScanLocked(ctx)
		if err != nil || !locked {
			t.Errorf("ScanLocked with live workers: %v, %v", locked, err)
		}
		var all []result.Result
		for _, d := range domains {
			all = append(all, res(d, result.Verified, t0, run.ID))
		}
		if err := s.SaveResults(ctx, all); err != nil {
			t.Fatal(err)
		}
		if n, err := s.WorkLeft(ctx, run.ID); err != nil || n != 0 {
			t.Fatalf("WorkLeft after saving all: %d, %v", n, err)
		}
		if err := s.ReportWorker(ctx, run.ID, "a", RunStats{Scanned: 100}); err != nil {
			t.Fatal(err)
		}
		if finish() {
			t.Fatal("finished while b and c are live and have not reported")
		}
		if err := s.ReportWorker(ctx, run.ID, "b", RunStats{Scanned: 60}); err != nil {
			t.Fatal(err)
		}
		if err := s.LeaveRun(ctx, run.ID, "c"); err != nil { // c stopped without reporting
			t.Fatal(err)
		}
		if !finish() || !finish() {
			t.Fatal("not finished once every live worker reported")
		}
		r, err := s.GetRun(ctx, run.ID)
		if err != nil || r.Status != RunFinished || r.Stats.Scanned != 160 || r.Stats.Lines != 7 {
			t.Fatalf("finished run: %+v, %v", r, err)
		}
		if locked, err := s.ScanLocked(ctx); err != nil || locked {
			t.Errorf("ScanLocked after the run: %v, %v", locked, err)
		}
	})
}

// TestSharedRunTablesStep: schema step 7 creates the shared-run tables on
// PostgreSQL, also on a database whose scans had created them on first use
// (before the step existed), and keeps their rows; on SQLite it creates
// nothing.
func TestSharedRunTablesStep(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		db := be.newDB(t)
		s, err := Open(ctx, db, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if !be.pg {
			var n int
			if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE name LIKE 'scan\_%' ESCAPE '\'`).Scan(&n); err != nil || n != 0 {
				t.Errorf("SQLite has %d shared-run tables (%v)", n, err)
			}
			s.Close()
			return
		}
		// A database of schema 6 whose first shared run made the tables.
		if _, err := s.w.ExecContext(ctx, `INSERT INTO scan_workers(run_id, worker, expires) VALUES (1, 'w1', now())`); err != nil {
			t.Fatal(err)
		}
		setSchemaVersion(t, s, 6)
		s.Close()
		s, err = Open(ctx, db, Options{})
		if err != nil {
			t.Fatalf("migrating a schema-6 database with the tables: %v", err)
		}
		defer s.Close()
		if v := storedSchemaVersion(t, s); v != len(pgMigrations) {
			t.Errorf("schema version %d, want %d", v, len(pgMigrations))
		}
		var n int
		if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM scan_workers`).Scan(&n); err != nil || n != 1 {
			t.Errorf("scan_workers: %d rows (%v), want the one written before", n, err)
		}
	})
}
