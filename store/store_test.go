package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tlsready/tlsready/scanner/mtasts"
	"github.com/tlsready/tlsready/scanner/result"
)

var t0 = time.Date(2025, 3, 4, 5, 6, 7, 890, time.UTC)

func openTest(t testing.TB) *Store {
	t.Helper()
	return mustOpen(t, filepath.Join(t.TempDir(), "tlsready.db"), Options{})
}

func res(domain string, v result.Verdict, at time.Time, runID int64, flags ...string) result.Result {
	return result.Result{
		Domain:    domain,
		Verdict:   v,
		Flags:     flags,
		ScannedAt: at,
		RunID:     runID,
		Reason:    "because " + string(v),
		MX:        []result.Host{{Name: "mx." + domain, Preference: 10}},
	}
}

func mustBegin(t testing.TB, s *Store, input string) Run {
	t.Helper()
	run, _, err := s.BeginRun(context.Background(), input, t0)
	if err != nil {
		t.Fatal(err)
	}
	return run
}

func mustSave(t testing.TB, s *Store, rs ...result.Result) {
	t.Helper()
	if err := s.SaveResults(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
}

func mustAdd(t testing.TB, s *Store, runID int64, rs ...Recipient) {
	t.Helper()
	if err := s.AddRecipients(context.Background(), runID, rs); err != nil {
		t.Fatal(err)
	}
}

func mustLookup(t testing.TB, s *Store, domain string) result.Result {
	t.Helper()
	r, err := s.Lookup(context.Background(), domain)
	if err != nil {
		t.Fatalf("Lookup(%s): %v", domain, err)
	}
	return r
}

func pending(t testing.TB, s *Store, runID int64, fresh time.Time) []string {
	t.Helper()
	d, err := s.PendingDomains(context.Background(), runID, fresh)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestFileModes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTest(t)
	run := mustBegin(t, s, "in")
	mustSave(t, s, res("example.org", result.Verified, t0, run.ID))
	unlock, err := s.LockScan()
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	// A reader keeps the -wal and -shm files in place.
	if _, err := s.Lookup(ctx, "example.org"); err != nil {
		t.Fatal(err)
	}
	for _, suffix := range []string{"", "-wal", "-shm", ".lock"} {
		fi, err := os.Stat(s.Path() + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("%s: mode %v, want 0600", filepath.Base(s.Path()+suffix), got)
		}
	}
}

func TestOpenExistingKeepsMode(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "x.db")
	if err := os.WriteFile(path, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	mustOpen(t, path, Options{})
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode of an existing file changed to %v", fi.Mode().Perm())
	}
}

func TestMigrationsAndReopen(t *testing.T) {
	eachStore(t, func(t *testing.T, ctx context.Context, _ backend, s *Store) {
		if v := storedSchemaVersion(t, s); v != len(migrations) || v == 0 {
			t.Fatalf("user_version %d, want %d", v, len(migrations))
		}
		run := mustBegin(t, s, "in")
		mustSave(t, s, res("example.org", result.DANE, t0, run.ID))
		s.Close()

		s2, err := Open(ctx, s.Path(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if got := mustLookup(t, s2, "example.org").Verdict; got != result.DANE {
			t.Errorf("after reopen: %s", got)
		}
		if err := s2.IntegrityCheck(ctx); err != nil {
			t.Error(err)
		}
		// A database from a newer program is refused.
		setSchemaVersion(t, s2, len(migrations)+1)
		s2.Close()
		if s3, err := Open(ctx, s.Path(), Options{}); err == nil {
			s3.Close()
			t.Fatal("opened a database with a newer schema")
		}
		if s3, err := Open(ctx, s.Path(), Options{ReadOnly: true}); err == nil {
			s3.Close()
			t.Fatal("opened a database with a newer schema read-only")
		}
	})
}

func TestReadOnly(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		if !be.pg {
			dir := t.TempDir()
			if _, err := Open(ctx, filepath.Join(dir, "missing.db"), Options{ReadOnly: true}); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("read-only open of a missing file: %v", err)
			}
			if _, err := os.Stat(filepath.Join(dir, "missing.db")); !errors.Is(err, fs.ErrNotExist) {
				t.Fatal("read-only open created the file")
			}
		} else if _, err := Open(ctx, be.newDB(t), Options{ReadOnly: true}); !errors.Is(err, ErrEmpty) {
			t.Fatalf("read-only open of an empty database: %v, want ErrEmpty", err)
		}

		w := be.open(t)
		run := mustBegin(t, w, "in")
		mustAdd(t, w, run.ID, Recipient{ID: "1", Domain: "example.org"})
		mustSave(t, w, res("example.org", result.Verified, t0, run.ID))

		ro := mustOpen(t, w.Path(), Options{ReadOnly: true})
		if !ro.ReadOnly() || w.ReadOnly() {
			t.Error("ReadOnly() wrong")
		}
		if got := mustLookup(t, ro, "example.org").Verdict; got != result.Verified {
			t.Errorf("read-only lookup: %s", got)
		}
		writes := map[string]error{}
		_, _, writes["BeginRun"] = ro.BeginRun(ctx, "x", t0)
		writes["FinishRun"] = ro.FinishRun(ctx, run.ID, RunStats{}, t0)
		writes["AbortRun"] = ro.AbortRun(ctx, run.ID, "x")
		writes["AddRecipients"] = ro.AddRecipients(ctx, run.ID, []Recipient{{ID: "2", Domain: "example.net"}})
		writes["SaveResults"] = ro.SaveResults(ctx, []result.Result{res("example.net", result.DANE, t0, run.ID)})
		writes["PutSTSPolicy"] = ro.PutSTSPolicy(ctx, mtasts.CachedPolicy{Domain: "example.net"})
		_, writes["LockScan"] = ro.LockScan()
		wr := ro.NewWriter(1, time.Hour)
		wr.Add(res("example.net", result.DANE, t0, run.ID))
		writes["Writer"] = wr.Close()
		for name, err := range writes {
			if !errors.Is(err, ErrReadOnly) {
				t.Errorf("%s on a read-only store: %v, want ErrReadOnly", name, err)
			}
		}
		if _, err := w.Lookup(ctx, "example.net"); !errors.Is(err, ErrNotFound) {
			t.Errorf("a read-only write went through: %v", err)
		}
		// Writes at the SQL level are refused too (mode=ro).
		if _, err := ro.r.ExecContext(ctx, `DELETE FROM domains`); err == nil {
			t.Error("mode=ro connection deleted rows")
		}
	})
}

func TestLockScan(t *testing.T) {
	eachStore(t, func(t *testing.T, _ context.Context, _ backend, s *Store) {
		unlock, err := s.LockScan()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.LockScan(); !errors.Is(err, ErrLocked) {
			t.Fatalf("second LockScan: %v, want ErrLocked", err)
		}
		// Another handle on the same database contends too.
		s2 := mustOpen(t, s.Path(), Options{})
		if _, err := s2.LockScan(); !errors.Is(err, ErrLocked) {
			t.Fatalf("LockScan from a second handle: %v, want ErrLocked", err)
		}
		if err := unlock(); err != nil {
			t.Fatal(err)
		}
		if err := unlock(); err != nil { // idempotent
			t.Fatal(err)
		}
		unlock2, err := s2.LockScan()
		if err != nil {
			t.Fatalf("LockScan after unlock: %v", err)
		}
		if err := unlock2(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestBeginRunResume(t *testing.T) {
	eachStore(t, func(t *testing.T, ctx context.Context, _ backend, s *Store) {
		r1, resumed, err := s.BeginRun(ctx, "a.csv|10|1", t0)
		if err != nil || resumed {
			t.Fatalf("first BeginRun: resumed=%v err=%v", resumed, err)
		}
		if r1.Status != RunRunning || !r1.StartedAt.Equal(t0) || r1.Input != "a.csv|10|1" {
			t.Errorf("new run: %+v", r1)
		}
		r2, resumed, err := s.BeginRun(ctx, "a.csv|10|1", t0.Add(time.Hour))
		if err != nil || !resumed || r2.ID != r1.ID || !r2.StartedAt.Equal(t0) {
			t.Fatalf("same input: run %+v resumed=%v err=%v, want run %d resumed", r2, resumed, err, r1.ID)
		}
		r3, resumed, err := s.BeginRun(ctx, "b.csv|10|1", t0)
		if err != nil || resumed || r3.ID == r1.ID {
			t.Fatalf("different input: run %d resumed=%v err=%v, want a new run", r3.ID, resumed, err)
		}
		// A finished run is not resumed.
		if err := s.FinishRun(ctx, r1.ID, RunStats{}, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		r4, resumed, err := s.BeginRun(ctx, "a.csv|10|1", t0)
		if err != nil || resumed || r4.ID == r1.ID {
			t.Fatalf("after finish: run %d resumed=%v err=%v, want a new run", r4.ID, resumed, err)
		}
		// Neither is an aborted one.
		if err := s.AbortRun(ctx, r4.ID, "port 25 blocked"); err != nil {
			t.Fatal(err)
		}
		r5, resumed, err := s.BeginRun(ctx, "a.csv|10|1", t0)
		if err != nil || resumed || r5.ID == r4.ID {
			t.Fatalf("after abort: run %d resumed=%v err=%v, want a new run", r5.ID, resumed, err)
		}
	})
}

func TestRuns(t *testing.T) {
	eachStore(t, func(t *testing.T, ctx context.Context, _ backend, s *Store) {
		if _, err := s.LatestFinishedRun(ctx); !errors.Is(err, ErrNotFound) {
			t.Fatalf("LatestFinishedRun on an empty db: %v", err)
		}
		if _, err := s.GetRun(ctx, 42); !errors.Is(err, ErrNotFound) {
			t.Fatalf("GetRun(42): %v", err)
		}
		if err := s.FinishRun(ctx, 42, RunStats{}, t0); !errors.Is(err, ErrNotFound) {
			t.Fatalf("FinishRun(42): %v", err)
		}
		if err := s.AbortRun(ctx, 42, "x"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("AbortRun(42): %v", err)
		}
		a := mustBegin(t, s, "a")
		b := mustBegin(t, s, "b")
		c := mustBegin(t, s, "c")
		stats := RunStats{Lines: 10, Recipients: 9, BadLines: 1, BadByReason: map[string]int64{"invalid-domain": 1},
			Domains: 3, Scanned: 2, Reused: 1, MXIPs: 4, Connections: 5, DNSQueries: 6,
			Resolver: "127.0.0.1:53", TrustAD: true, ScannerVersion: "v1", Vantage: "scan.example"}
		if err := s.FinishRun(ctx, b.ID, stats, t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := s.FinishRun(ctx, a.ID, RunStats{Lines: 1}, t0.Add(2*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := s.AbortRun(ctx, c.ID, "port 25 blocked"); err != nil {
			t.Fatal(err)
		}
		if err := s.FinishRun(ctx, c.ID, RunStats{}, t0); err == nil {
			t.Error("finished an aborted run")
		}
		got, err := s.GetRun(ctx, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := Run{ID: b.ID, Input: "b", Status: RunFinished, StartedAt: t0, FinishedAt: t0.Add(time.Minute), Stats: stats}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("GetRun:\n got %+v\nwant %+v", got, want)
		}
		latest, err := s.LatestFinishedRun(ctx)
		if err != nil || latest.ID != b.ID {
			t.Errorf("LatestFinishedRun: %d %v, want %d (highest finished ID)", latest.ID, err, b.ID)
		}
		runs, err := s.Runs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for _, r := range runs {
			ids = append(ids, r.ID)
		}
		if !slices.Equal(ids, []int64{a.ID, b.ID, c.ID}) || !slices.IsSorted(ids) {
			t.Errorf("Runs: %v", ids)
		}
		if runs[2].Status != RunAborted || runs[2].Reason != "port 25 blocked" {
			t.Errorf("aborted run: %+v", runs[2])
		}
	})
}

func TestAddRecipientsAndPending(t *testing.T) {
	eachStore(t, func(t *testing.T, ctx context.Context, _ backend, s *Store) {
		run := mustBegin(t, s, "in")
		rs := []Recipient{
			{ID: "3", Domain: "c.example"},
			{ID: "1", Domain: "a.example", Address: "x@a.example"},
			{ID: "2", Domain: "b.example"},
			{ID: "4", Domain: "a.example"},
		}
		orig := slices.Clone(rs)
		mustAdd(t, s, run.ID, rs...)
		if !slices.Equal(rs, orig) {
			t.Error("AddRecipients reordered the caller's slice")
		}
		mustAdd(t, s, run.ID, rs...) // idempotent
		if err := s.AddRecipients(ctx, run.ID, nil); err != nil {
			t.Fatal(err)
		}
		for _, bad := range []Recipient{{ID: "", Domain: "a.example"}, {ID: "9"}} {
			if err := s.AddRecipients(ctx, run.ID, []Recipient{bad}); err == nil {
				t.Errorf("AddRecipients(%+v) accepted", bad)
			}
		}
		n, err := s.CountRunDomains(ctx, run.ID)
		if err != nil || n != 3 {
			t.Fatalf("CountRunDomains: %d %v", n, err)
		}
		if got := pending(t, s, run.ID, time.Time{}); !slices.Equal(got, []string{"a.example", "b.example", "c.example"}) {
			t.Fatalf("pending: %v", got)
		}

		// A result saved in this run removes the domain, whatever its age or verdict.
		mustSave(t, s, res("a.example", result.Unreachable, t0.Add(-30*24*time.Hour), run.ID))
		// A fresh result of an earlier run removes it when freshSince allows.
		mustSave(t, s, res("b.example", result.Verified, t0.Add(-time.Hour), run.ID-1+1000))
		// A fresh temporary result never does.
		mustSave(t, s, res("c.example", result.DNSError, t0.Add(-time.Minute), 999))
		if got := pending(t, s, run.ID, time.Time{}); !slices.Equal(got, []string{"b.example", "c.example"}) {
			t.Errorf("pending, no freshness: %v", got)
		}
		if got := pending(t, s, run.ID, t0.Add(-2*time.Hour)); !slices.Equal(got, []string{"c.example"}) {
			t.Errorf("pending, fresh since -2h: %v", got)
		}
		if got := pending(t, s, run.ID, t0.Add(-30*time.Minute)); !slices.Equal(got, []string{"b.example", "c.example"}) {
			t.Errorf("pending, fresh since -30m: %v", got)
		}

		// A new run over part of the register sees only its own recipients.
		run2 := mustBegin(t, s, "in2")
		mustAdd(t, s, run2.ID, Recipient{ID: "2", Domain: "b.example"}, Recipient{ID: "5", Domain: "d.example"})
		if got := pending(t, s, run2.ID, time.Time{}); !slices.Equal(got, []string{"b.example", "d.example"}) {
			t.Errorf("pending run 2: %v", got)
		}
		if n, _ := s.CountRunDomains(ctx, run2.ID); n != 2 {
			t.Errorf("CountRunDomains run 2: %d", n)
		}
		if got := pending(t, s, 12345, time.Time{}); len(got) != 0 {
			t.Errorf("pending of an unknown run: %v", got)
		}
	})
}

// TestAddRecipientsLarge crosses the multi-row statement size and checks the
// upsert moves recipients between domains and runs.
func TestAddRecipientsLarge(t *testing.T) {
	eachStore(t, func(t *testing.T, ctx context.Context, _ backend, s *Store) {
		run := mustBegin(t, s, "in")
		n := 3*recipientsPerStmt + 7
		var rs []Recipient
		for i := range n {
			rs = append(rs, Recipient{ID: fmt.Sprint(i), Domain: fmt.Sprintf("d%d.example", i%10)})
		}
		mustAdd(t, s, run.ID, rs...)
		var count int
		if err := s.r.QueryRowContext(ctx, s.q(`SELECT count(*) FROM recipients WHERE last_run = ?`), run.ID).Scan(&count); err != nil {
			t.Fatal(err)
		}
		if count != n {
			t.Fatalf("%d recipients stored, want %d", count, n)
		}
		run2 := mustBegin(t, s, "in2")
		for i := range rs {
			rs[i].Domain = "moved.example"
		}
		mustAdd(t, s, run2.ID, rs[:10]...)
		if err := s.FinishRun(ctx, run2.ID, RunStats{}, t0); err != nil {
			t.Fatal(err)
		}
		var got []RunDomain
		if err := s.RunDomains(ctx, run2.ID, func(d RunDomain) error { got = append(got, d); return nil }); err != nil {
			t.Fatal(err)
		}
		want := []RunDomain{{Domain: "moved.example", Citizens: 10, Verdict: result.Unknown}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("run 2 domains: %+v", got)
		}
	})
}

func TestSaveResultsTemporaryRule(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be backend) {
		day := 24 * time.Hour
		tests := []struct {
			name       string
			stored     *result.Result
			next       result.Result
			wantV      result.Verdict
			wantReason string // LastAttempt reason
		}{
			{"new domain, temporary", nil, res("x.example", result.Unreachable, t0, 2), result.Unreachable, "because unreachable"},
			{"new domain, final", nil, res("x.example", result.Plaintext, t0, 2), result.Plaintext, ""},
			{"temporary keeps a young final result", ptr(res("x.example", result.Verified, t0.Add(-6*day), 1)),
				res("x.example", result.Unreachable, t0, 2), result.Verified, "because unreachable"},
			{"dns-error keeps a young final result", ptr(res("x.example", result.DANE, t0.Add(-time.Hour), 1)),
				res("x.example", result.DNSError, t0, 2), result.DANE, "because dns-error"},
			{"temporary replaces a stale final result", ptr(res("x.example", result.Verified, t0.Add(-8*day), 1)),
				res("x.example", result.Unreachable, t0, 2), result.Unreachable, "because unreachable"},
			{"temporary replaces a temporary result", ptr(res("x.example", result.DNSError, t0.Add(-time.Hour), 1)),
				res("x.example", result.Unreachable, t0, 2), result.Unreachable, "because unreachable"},
			{"final replaces a final result", ptr(res("x.example", result.Verified, t0.Add(-time.Hour), 1)),
				res("x.example", result.Plaintext, t0, 2), result.Plaintext, ""},
			{"final replaces a temporary result", ptr(res("x.example", result.Unreachable, t0.Add(-time.Hour), 1)),
				res("x.example", result.NoMail, t0, 2), result.NoMail, ""},
		}
		// Each case through SaveResults, and through a Writer committing
		// every result alone (its statements, prepared once, in two
		// transactions).
		for _, tc := range tests {
			for _, viaWriter := range []bool{false, true} {
				name := tc.name
				if viaWriter {
					name += " (writer)"
				}
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					ctx := context.Background()
					s := be.open(t)
					run1 := mustBegin(t, s, "1")
					run2 := mustBegin(t, s, "2")
					var w *Writer
					flushed := make(chan error, 1)
					save := func(r result.Result) {
						if !viaWriter {
							mustSave(t, s, r)
							return
						}
						w.Add(r)
						if err := <-flushed; err != nil {
							t.Fatal(err)
						}
					}
					if viaWriter {
						w = s.newWriter(1, time.Hour, func(_ int, err error) { flushed <- err })
						defer func() {
							if err := w.Close(); err != nil {
								t.Error(err)
							}
						}()
					}
					if tc.stored != nil {
						tc.stored.RunID = run1.ID
						save(*tc.stored)
					}
					tc.next.RunID = run2.ID
					mustAdd(t, s, run2.ID, Recipient{ID: "1", Domain: "x.example"})
					v0, _ := s.DataVersion(ctx)
					save(tc.next)
					v1, _ := s.DataVersion(ctx)
					got := mustLookup(t, s, "x.example")
					if got.Verdict != tc.wantV {
						t.Errorf("verdict %s, want %s", got.Verdict, tc.wantV)
					}
					kept := tc.wantV != tc.next.Verdict
					if kept {
						if !got.ScannedAt.Equal(tc.stored.ScannedAt) || got.RunID != run1.ID {
							t.Errorf("kept result changed: scanned %v run %d", got.ScannedAt, got.RunID)
						}
						if v1 != v0 {
							t.Error("DataVersion changed although no result changed")
						}
					} else if v1 == v0 {
						t.Error("DataVersion did not change")
					}
					at, reason, err := s.LastAttempt(ctx, "x.example")
					if err != nil || !at.Equal(t0) || reason != tc.wantReason {
						t.Errorf("LastAttempt: %v %q %v, want %v %q", at, reason, err, t0, tc.wantReason)
					}
					// Whether kept or replaced, the domain is done for run 2.
					if p := pending(t, s, run2.ID, time.Time{}); len(p) != 0 {
						t.Errorf("still pending in run 2: %v", p)
					}
				})
			}
		}
	})
}

func ptr[T any](v T) *T { return &v }

func TestKeepLastKnownOption(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be backend) {
		s := be.open(t, Options{KeepLastKnown: time.Hour})
		mustSave(t, s, res("x.example", result.Verified, t0.Add(-2*time.Hour), 0))
		mustSave(t, s, res("x.example", result.Unreachable, t0, 0))
		if got := mustLookup(t, s, "x.example").Verdict; got != result.Unreachable {
			t.Errorf("a result older than KeepLastKnown was kept: %s", got)
		}
	})
}

func TestSaveResultsValidation(t *testing.T) {
	eachStore(t, func(t *testing.T, ctx context.Context, _ backend, s *Store) {
		for _, bad := range []result.Result{
			{Verdict: result.DANE, ScannedAt: t0},
			{Domain: "x.example", Verdict: "great", ScannedAt: t0},
			{Domain: "x.example", Verdict: result.Unknown, ScannedAt: t0},
			{Domain: "x.example", Verdict: result.DANE},
		} {
			if err := s.SaveResults(ctx, []result.Result{res("ok.example", result.DANE, t0, 0), bad}); err == nil {
				t.Errorf("SaveResults accepted %+v", bad)
			}
		}
		if _, err := s.Lookup(ctx, "ok.example"); !errors.Is(err, ErrNotFound) {
			t.Error("a rejected batch was partly saved")
		}
		if err := s.SaveResults(ctx, nil); err != nil {
			t.Error(err)
		}
	})
}

func TestLookupRoundTrip(t *testing.T) {
	eachStore(t, func(t *testing.T, ctx context.Context, _ backend, s *Store) {
		if _, err := s.Lookup(ctx, "nothing.example"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Lookup of an unknown domain: %v", err)
		}
		if _, _, err := s.LastAttempt(ctx, "nothing.example"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("LastAttempt of an unknown domain: %v", err)
		}
		dm := true
		r := res("xn--bcher-kva.example", result.DANE, t0.In(time.FixedZone("X", 3600)), 7, "no-tlsrpt", "tls-1.0")
		r.Unicode = "bücher.example"
		r.MXSecure = true
		r.MX[0].TLSA = &result.TLSA{Name: "_25._tcp.mx.xn--bcher-kva.example", Secure: true, Status: "ok",
			Records: []result.TLSARecord{{Usage: 3, Selector: 1, MatchingType: 1, Data: "abcd"}}}
		r.MX[0].Addrs = []result.Addr{{DANEMatch: &dm, Probe: &result.Probe{Status: result.ProbeOK, Reachable: true,
			StartedAt: t0, TLS: &result.TLSInfo{Version: "TLS 1.3", Certs: []result.CertInfo{{Subject: "CN=mx", NotAfter: t0}}}}}}
		r.MTASTS = &result.STSPolicy{Mode: "enforce", MX: []string{"*.example"}, FetchedAt: t0}
		r.Duration = 1500 * time.Millisecond
		mustSave(t, s, r)
		got := mustLookup(t, s, "XN--BCHER-KVA.example.")
		if !got.ScannedAt.Equal(t0) || got.ScannedAt.Location() != time.UTC {
			t.Errorf("ScannedAt %v, want %v in UTC", got.ScannedAt, t0)
		}
		got.ScannedAt = r.ScannedAt
		got.MX[0].Addrs[0].Probe.StartedAt = t0
		got.MX[0].Addrs[0].Probe.TLS.Certs[0].NotAfter = t0
		got.MTASTS.FetchedAt = t0
		if !reflect.DeepEqual(got, r) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, r)
		}
		if err := s.IntegrityCheck(ctx); err != nil {
			t.Error(err)
		}
	})
}

// scenario: two runs over a small register with results in between.
func scenario(t *testing.T, s *Store) (run1, run2 Run) {
	t.Helper()
	run1 = scenarioRun1(t, s)
	// Run 2: plain.example improves; only part of the register is re-added.
	run2 = mustBegin(t, s, "r2")
	mustAdd(t, s, run2.ID,
		Recipient{ID: "4", Domain: "plain.example"},
		Recipient{ID: "6", Domain: "alpha.example"},
	)
	mustSave(t, s, res("plain.example", result.Encrypted, t0.Add(2*time.Hour), run2.ID))
	return run1, run2
}

// scenarioRun1 is the first, finished run of scenario.
func scenarioRun1(t *testing.T, s *Store) (run1 Run) {
	t.Helper()
	ctx := context.Background()
	run1 = mustBegin(t, s, "r1")
	mustAdd(t, s, run1.ID,
		Recipient{ID: "1", Domain: "big.example", Address: "a@big.example"},
		Recipient{ID: "2", Domain: "big.example"},
		Recipient{ID: "3", Domain: "big.example"},
		Recipient{ID: "4", Domain: "plain.example"},
		Recipient{ID: "5", Domain: "plain.example"},
		Recipient{ID: "6", Domain: "alpha.example"},
		Recipient{ID: "7", Domain: "unscanned.example"},
	)
	mustSave(t, s,
		res("big.example", result.Verified, t0, run1.ID, "no-tlsrpt"),
		res("plain.example", result.Plaintext, t0, run1.ID, "starttls-not-offered"),
		res("alpha.example", result.DANE, t0, run1.ID),
		res("other.example", result.MTASTS, t0, 0),
	)
	if err := s.FinishRun(ctx, run1.ID, RunStats{Recipients: 7}, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	return run1
}

// checkRunIterator checks what each iterator over a run's rows (RunDomains,
// Results, ...) promises: an unknown run is ErrNotFound, without a call,
// and an error of the callback ends the iteration at that call and is
// returned. run must have rows.
func checkRunIterator[A any](t *testing.T, name string, run int64, iter func(context.Context, int64, func(A) error) error) {
	t.Helper()
	ctx := context.Background()
	calls := 0
	if err := iter(ctx, 999, func(A) error { calls++; return nil }); !errors.Is(err, ErrNotFound) || calls != 0 {
		t.Errorf("%s of an unknown run: %v after %d calls, want ErrNotFound", name, err, calls)
	}
	stop := errors.New("stop")
	calls = 0
	if err := iter(ctx, run, func(A) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Errorf("%s, callback error: %v after %d calls", name, err, calls)
	}
}

// checkRunIterator2 is checkRunIterator of an iterator whose callback takes
// two values.
func checkRunIterator2[A, B any](t *testing.T, name string, run int64, iter func(context.Context, int64, func(A, B) error) error) {
	t.Helper()
	checkRunIterator(t, name, run, func(ctx context.Context, id int64, fn func(struct{}) error) error {
		return iter(ctx, id, func(A, B) error { return fn(struct{}{}) })
	})
}

func TestFinishRunSnapshotAndRunDomains(t *testing.T) {
	eachStore(t, func(t *testing.T, ctx context.Context, _ backend, s *Store) {
		run1, run2 := scenario(t, s)
		collect := func(id int64) []RunDomain {
			var out []RunDomain
			if err := s.RunDomains(ctx, id, func(d RunDomain) error { out = append(out, d); return nil }); err != nil {
				t.Fatal(err)
			}
			return out
		}
		want1 := []RunDomain{
			{Domain: "big.example", Citizens: 3, Verdict: result.Verified, Flags: []string{"no-tlsrpt"}},
			{Domain: "plain.example", Citizens: 2, Verdict: result.Plaintext, Flags: []string{"starttls-not-offered"}},
			{Domain: "alpha.example", Citizens: 1, Verdict: result.DANE},
			{Domain: "unscanned.example", Citizens: 1, Verdict: result.Unknown},
		}
		if got := collect(run1.ID); !reflect.DeepEqual(got, want1) {
			t.Errorf("run 1:\n got %+v\nwant %+v", got, want1)
		}
		// Run 2 is not finished: no history yet.
		if got := collect(run2.ID); len(got) != 0 {
			t.Errorf("unfinished run 2 has history: %+v", got)
		}
		if err := s.FinishRun(ctx, run2.ID, RunStats{}, t0.Add(3*time.Hour)); err != nil {
			t.Fatal(err)
		}
		want2 := []RunDomain{
			{Domain: "alpha.example", Citizens: 1, Verdict: result.DANE},
			{Domain: "plain.example", Citizens: 1, Verdict: result.Encrypted},
		}
		if got := collect(run2.ID); !reflect.DeepEqual(got, want2) {
			t.Errorf("run 2:\n got %+v\nwant %+v", got, want2)
		}
		// Run 1's snapshot is history: it still says plaintext.
		if got := collect(run1.ID); !reflect.DeepEqual(got, want1) {
			t.Errorf("run 1 after run 2:\n got %+v\nwant %+v", got, want1)
		}
		checkRunIterator(t, "RunDomains", run1.ID, s.RunDomains)
	})
}

func TestResults(t *testing.T) {
	eachStore(t, func(t *testing.T, ctx context.Context, _ backend, s *Store) {
		run1, run2 := scenario(t, s)
		collect := func(id int64) (domains []string, verdicts []result.Verdict) {
			err := s.Results(ctx, id, func(r result.Result) error {
				domains = append(domains, r.Domain)
				verdicts = append(verdicts, r.Verdict)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			return domains, verdicts
		}
		d, v := collect(0)
		if !slices.Equal(d, []string{"alpha.example", "big.example", "other.example", "plain.example"}) {
			t.Errorf("all results: %v", d)
		}
		if v[3] != result.Encrypted {
			t.Errorf("latest plain.example: %s", v[3])
		}
		// Finished run 1: its history's domains, with their latest results.
		d, v = collect(run1.ID)
		if !slices.Equal(d, []string{"alpha.example", "big.example", "plain.example"}) || v[2] != result.Encrypted {
			t.Errorf("run 1 results: %v %v", d, v)
		}
		// Running run 2: the domains of its recipients.
		d, _ = collect(run2.ID)
		if !slices.Equal(d, []string{"alpha.example", "plain.example"}) {
			t.Errorf("run 2 results: %v", d)
		}
		checkRunIterator(t, "Results", run1.ID, s.Results)
	})
}

func TestRecipientsByVerdict(t *testing.T) {
	eachStore(t, func(t *testing.T, ctx context.Context, _ backend, s *Store) {
		run1 := scenarioRun1(t, s)
		type hit struct {
			Recipient
			V result.Verdict
		}
		collect := func(id int64, vs ...result.Verdict) []hit {
			var out []hit
			err := s.RecipientsByVerdict(ctx, id, vs, func(r Recipient, v result.Verdict) error {
				out = append(out, hit{r, v})
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
		got := collect(run1.ID, result.Plaintext, result.Verified, result.Unknown)
		want := []hit{
			{Recipient{ID: "1", Domain: "big.example", Address: "a@big.example"}, result.Verified},
			{Recipient{ID: "2", Domain: "big.example"}, result.Verified},
			{Recipient{ID: "3", Domain: "big.example"}, result.Verified},
			{Recipient{ID: "4", Domain: "plain.example"}, result.Plaintext},
			{Recipient{ID: "5", Domain: "plain.example"}, result.Plaintext},
			{Recipient{ID: "7", Domain: "unscanned.example"}, result.Unknown},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("run 1:\n got %+v\nwant %+v", got, want)
		}
		if got := collect(run1.ID, result.Plaintext); len(got) != 2 || got[0].ID != "4" || got[1].ID != "5" {
			t.Errorf("run 1 plaintext: %+v", got)
		}
		if got := collect(run1.ID); len(got) != 7 {
			t.Errorf("run 1, all verdicts: %d recipients", len(got))
		}
		// A later run that has not added recipients (yet) leaves run 1's list.
		run2 := mustBegin(t, s, "r2")
		if got := collect(run1.ID); len(got) != 7 {
			t.Errorf("run 1 after run 2 began: %d recipients", len(got))
		}
		// Once run 2 adds recipients (4 and 6 move on to run 2), run 1's list
		// is no longer complete: an error, not a partial list.
		mustAdd(t, s, run2.ID,
			Recipient{ID: "4", Domain: "plain.example"},
			Recipient{ID: "6", Domain: "alpha.example"},
		)
		mustSave(t, s, res("plain.example", result.Encrypted, t0.Add(2*time.Hour), run2.ID))
		calls := 0
		err := s.RecipientsByVerdict(ctx, run1.ID, nil, func(Recipient, result.Verdict) error { calls++; return nil })
		if !errors.Is(err, ErrRecipientsReplaced) || calls != 0 {
			t.Errorf("run 1 after run 2 added recipients: %v after %d calls", err, calls)
		}
		if err := s.FinishRun(ctx, run2.ID, RunStats{}, t0.Add(3*time.Hour)); err != nil {
			t.Fatal(err)
		}
		want2 := []hit{{Recipient{ID: "4", Domain: "plain.example"}, result.Encrypted}}
		if got := collect(run2.ID, result.Encrypted, result.Plaintext); !reflect.DeepEqual(got, want2) {
			t.Errorf("run 2: %+v", got)
		}
		checkRunIterator2(t, "RecipientsByVerdict", run2.ID, func(ctx context.Context, id int64, fn func(Recipient, result.Verdict) error) error {
			return s.RecipientsByVerdict(ctx, id, nil, fn)
		})
	})
}

func TestDataVersion(t *testing.T) {
	eachStore(t, func(t *testing.T, ctx context.Context, _ backend, s *Store) {
		ro := mustOpen(t, s.Path(), Options{ReadOnly: true})
		version := func() int64 {
			v, err := ro.DataVersion(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		v0 := version()
		run := mustBegin(t, s, "in")
		mustAdd(t, s, run.ID, Recipient{ID: "1", Domain: "x.example"})
		if version() != v0 {
			t.Error("DataVersion changed without a result change")
		}
		mustSave(t, s, res("x.example", result.DANE, t0, run.ID))
		v1 := version()
		if v1 == v0 {
			t.Error("DataVersion unchanged after SaveResults (seen from another connection)")
		}
		if err := s.FinishRun(ctx, run.ID, RunStats{}, t0); err != nil {
			t.Fatal(err)
		}
		if version() == v1 {
			t.Error("DataVersion unchanged after FinishRun")
		}
	})
}

func TestSTSCache(t *testing.T) {
	eachStore(t, func(t *testing.T, ctx context.Context, _ backend, s *Store) {
		if _, err := s.GetSTSPolicy(ctx, "example.org"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("GetSTSPolicy of an unknown domain: %v", err)
		}
		p := mtasts.CachedPolicy{Domain: "example.org", RecordID: "20250101", Policy: "version: STSv1\nmode: enforce\nmx: *.example.org\nmax_age: 86400\n",
			FetchedAt: t0, MaxAge: 86400 * time.Second}
		if err := s.PutSTSPolicy(ctx, p); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetSTSPolicy(ctx, "Example.ORG.")
		if err != nil || !reflect.DeepEqual(got, p) {
			t.Fatalf("round trip: %+v %v", got, err)
		}
		p.RecordID, p.Policy, p.FetchedAt = "20250202", "version: STSv1\nmode: testing\n", t0.Add(time.Hour)
		if err := s.PutSTSPolicy(ctx, p); err != nil {
			t.Fatal(err)
		}
		if got, err := s.GetSTSPolicy(ctx, "example.org"); err != nil || !reflect.DeepEqual(got, p) {
			t.Fatalf("replaced: %+v %v", got, err)
		}
		if err := s.PutSTSPolicy(ctx, mtasts.CachedPolicy{}); err == nil {
			t.Error("stored a policy without a domain")
		}
	})
}

func TestWriterFlushOnClose(t *testing.T) {
	eachStore(t, func(t *testing.T, ctx context.Context, _ backend, s *Store) {
		var mu sync.Mutex
		var batches []int
		w := s.newWriter(10, time.Hour, func(n int, err error) {
			mu.Lock()
			batches = append(batches, n)
			mu.Unlock()
		})
		var wg sync.WaitGroup
		for g := range 5 {
			wg.Go(func() {
				for i := range 5 {
					w.Add(res(fmt.Sprintf("d%d-%d.example", g, i), result.Verified, t0, 0))
				}
			})
		}
		wg.Wait()
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		n := 0
		if err := s.Results(ctx, 0, func(result.Result) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		if n != 25 {
			t.Errorf("%d results after Close, want 25", n)
		}
		mu.Lock()
		defer mu.Unlock()
		// 25 results in batches of at most 10: at least 3 commits, none larger.
		total := 0
		for _, b := range batches {
			total += b
			if b > 10 {
				t.Errorf("batch of %d", b)
			}
		}
		if total != 25 || len(batches) < 3 {
			t.Errorf("batches %v", batches)
		}
	})
}

func TestWriterFlushOnInterval(t *testing.T) {
	eachStore(t, func(t *testing.T, _ context.Context, _ backend, s *Store) {
		flushed := make(chan int, 10)
		w := s.newWriter(1000, 5*time.Millisecond, func(n int, err error) { flushed <- n })
		defer w.Close()
		w.Add(res("tick.example", result.Verified, t0, 0))
		select {
		case n := <-flushed:
			if n != 1 {
				t.Errorf("flushed %d results, want 1", n)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no flush on interval")
		}
		// Visible before Close.
		if got := mustLookup(t, s, "tick.example").Verdict; got != result.Verified {
			t.Errorf("verdict %s", got)
		}
		if err := w.Err(); err != nil {
			t.Error(err)
		}
	})
}

func TestWriterError(t *testing.T) {
	eachStore(t, func(t *testing.T, _ context.Context, _ backend, s *Store) {
		flushed := make(chan error, 10)
		w := s.newWriter(2, time.Hour, func(n int, err error) { flushed <- err })
		w.Add(result.Result{Domain: "bad.example", Verdict: "bogus", ScannedAt: t0})
		w.Add(res("neighbour.example", result.DANE, t0, 0))
		if err := <-flushed; err == nil {
			t.Fatal("bad result saved")
		}
		mustLookup(t, s, "neighbour.example") // not dropped with the bad one
		if w.Err() == nil {
			t.Error("Err() is nil after a failed batch")
		}
		w.Add(res("good.example", result.DANE, t0, 0))
		w.Add(res("good2.example", result.DANE, t0, 0))
		if err := w.Close(); err == nil {
			t.Error("Close forgot the first error")
		}
		mustLookup(t, s, "good.example") // later batches still written
	})
}

// TestConcurrentReaders reads through a read-only handle while a Writer
// commits: every committed batch is visible, reads never fail.
func TestConcurrentReaders(t *testing.T) {
	eachStore(t, func(t *testing.T, ctx context.Context, _ backend, s *Store) {
		run := mustBegin(t, s, "in")
		ro := mustOpen(t, s.Path(), Options{ReadOnly: true})

		flushed := make(chan int, 100)
		w := s.newWriter(20, time.Hour, func(n int, err error) {
			if err == nil {
				flushed <- n
			}
		})
		done := make(chan struct{})
		readErr := make(chan error, 2)
		for range 2 {
			go func() {
				var last int64
				for {
					select {
					case <-done:
						readErr <- nil
						return
					default:
					}
					v, err := ro.DataVersion(ctx)
					if err != nil {
						readErr <- err
						return
					}
					if v < last {
						readErr <- fmt.Errorf("DataVersion went back from %d to %d", last, v)
						return
					}
					last = v
					if err := ro.Results(ctx, 0, func(result.Result) error { return nil }); err != nil {
						readErr <- err
						return
					}
				}
			}()
		}
		const total = 200
		go func() {
			for i := range total {
				w.Add(res(fmt.Sprintf("d%03d.example", i), result.Verified, t0, run.ID))
			}
		}()
		seen := 0
		for seen < total {
			seen += <-flushed
			// Everything flushed so far is visible to the other handle.
			n := 0
			if err := ro.Results(ctx, 0, func(result.Result) error { n++; return nil }); err != nil {
				t.Fatal(err)
			}
			if n < seen {
				t.Fatalf("reader sees %d results after %d were committed", n, seen)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		close(done)
		for range 2 {
			if err := <-readErr; err != nil {
				t.Error(err)
			}
		}
	})
}

func TestAddRecipientsDuplicateIDs(t *testing.T) {
	eachStore(t, func(t *testing.T, ctx context.Context, _ backend, s *Store) {
		run := mustBegin(t, s, "in")
		// Unsorted, with a duplicate ID: the later line wins.
		mustAdd(t, s, run.ID,
			Recipient{ID: "9", Domain: "z.example"},
			Recipient{ID: "5", Domain: "first.example"},
			Recipient{ID: "1", Domain: "a.example"},
			Recipient{ID: "5", Domain: "second.example", Address: "p@second.example"},
		)
		if err := s.FinishRun(ctx, run.ID, RunStats{}, t0); err != nil {
			t.Fatal(err)
		}
		var got []Recipient
		err := s.RecipientsByVerdict(ctx, run.ID, nil, func(r Recipient, _ result.Verdict) error {
			got = append(got, r)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		want := []Recipient{{ID: "1", Domain: "a.example"}, {ID: "5", Domain: "second.example", Address: "p@second.example"}, {ID: "9", Domain: "z.example"}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %+v\nwant %+v", got, want)
		}
		// Re-adding without the address clears it (the register is the truth).
		mustAdd(t, s, run.ID, Recipient{ID: "5", Domain: "second.example"})
		var addr *string
		if err := s.r.QueryRowContext(ctx, `SELECT address FROM recipients WHERE id = '5'`).Scan(&addr); err != nil || addr != nil {
			t.Errorf("address after re-add without one: %v %v", addr, err)
		}
	})
}
