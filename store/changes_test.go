package store

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
)

// since reads resultsRawSince into a map of domain to decoded result, and
// checks that AnswersSince at the same version gives the read model of the
// same results.
func since(t *testing.T, s *Store, v int64) (map[string]result.Result, []string, int64) {
	t.Helper()
	got := map[string]result.Result{}
	want := map[string]Answer{}
	var order []string
	version, err := s.resultsRawSince(context.Background(), v, func(domain string, raw []byte) error {
		want[domain] = answerOfJSON(domain, raw)
		var r result.Result
		if err := json.Unmarshal(raw, &r); err != nil {
			return err
		}
		if r.Domain != domain {
			return fmt.Errorf("row %s holds the result of %s", domain, r.Domain)
		}
		if _, dup := got[domain]; dup {
			return fmt.Errorf("%s twice", domain)
		}
		got[domain] = r
		order = append(order, domain)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Unless a writer changed results in between (a new version).
	if as, _, av := answers(t, s, v); av == version && !maps.EqualFunc(as, want, sameCurrent) {
		t.Fatalf("AnswersSince(%d): %d answers at version %d, want %d at %d", v, len(as), av, len(want), version)
	}
	return got, order, version
}

func TestResultsRawSince(t *testing.T) {
	eachStore(t, func(t *testing.T, ctx context.Context, be backend, s *Store) {
		ro := mustOpen(t, s.Path(), Options{ReadOnly: true})

		all, _, v0 := since(t, ro, 0)
		if len(all) != 0 || v0 != 0 {
			t.Fatalf("empty database: %d rows, version %d", len(all), v0)
		}
		mustSave(t, s, res("a.example", result.DANE, t0, 0), res("b.example", result.Verified, t0, 0))
		mustSave(t, s, res("c.example", result.Plaintext, t0, 0))
		_, _, v1 := since(t, ro, 0)
		// Changes after v1: b replaced, d new, c's temporary failure kept (not
		// a change), a FinishRun (a new version, no result changes).
		mustSave(t, s, res("b.example", result.Broken, t0.Add(time.Hour), 0), res("d.example", result.NoMail, t0, 0))
		mustSave(t, s, res("c.example", result.Unreachable, t0.Add(time.Hour), 0))
		run := mustBegin(t, s, "in")
		if err := s.FinishRun(ctx, run.ID, RunStats{}, t0); err != nil {
			t.Fatal(err)
		}
		mustSave(t, s, res("d.example", result.Encrypted, t0.Add(2*time.Hour), 0))

		all, _, v2 := since(t, ro, 0)
		if want := []string{"a.example", "b.example", "c.example", "d.example"}; !slices.Equal(slices.Sorted(maps.Keys(all)), want) {
			t.Errorf("all: %v", slices.Sorted(maps.Keys(all)))
		}
		if dv, _ := ro.DataVersion(ctx); v2 != dv || v2 <= v1 {
			t.Errorf("version %d, DataVersion %d, earlier %d", v2, dv, v1)
		}
		for d, r := range all {
			if want := mustLookup(t, ro, d); !r.ScannedAt.Equal(want.ScannedAt) || r.Verdict != want.Verdict {
				t.Errorf("%s: %+v, Lookup %+v", d, r, want)
			}
		}
		changed, order, v := since(t, ro, v1)
		if v != v2 || !slices.Equal(order, []string{"b.example", "d.example"}) {
			t.Errorf("since %d: %v at version %d, want b, d at %d", v1, order, v, v2)
		}
		if changed["b.example"].Verdict != result.Broken || changed["d.example"].Verdict != result.Encrypted {
			t.Errorf("changed: %+v", changed)
		}
		if changed, _, v := since(t, ro, v2); len(changed) != 0 || v != v2 {
			t.Errorf("since the latest version: %d rows, version %d", len(changed), v)
		}

		if !be.pg {
			// The query finds the changed rows through the index (SQLite's plan).
			var plan strings.Builder
			rows, err := ro.r.QueryContext(ctx, `EXPLAIN QUERY PLAN SELECT domain, result FROM domains WHERE changed_version > ? ORDER BY changed_version`, 1)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var id, parent, notUsed int
				var detail string
				if err := rows.Scan(&id, &parent, &notUsed, &detail); err != nil {
					t.Fatal(err)
				}
				plan.WriteString(detail + ";")
			}
			rows.Close()
			if !strings.Contains(plan.String(), "INDEX domains_changed") {
				t.Errorf("query plan %q does not use domains_changed", plan.String())
			}
		}

		stop := fmt.Errorf("stop")
		if _, err := ro.resultsRawSince(ctx, 0, func(string, []byte) error { return stop }); err != stop {
			t.Errorf("fn error: %v", err)
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := ro.resultsRawSince(cctx, 0, func(string, []byte) error { return nil }); err == nil {
			t.Error("cancelled context: no error")
		}
	})
}

// TestResultsRawSinceFollowsWriter: a reader that starts from a full read
// and then applies the changes since its version, while a writer commits
// batches, ends with exactly the stored results.
func TestResultsRawSinceFollowsWriter(t *testing.T) {
	eachStore(t, func(t *testing.T, ctx context.Context, _ backend, s *Store) {
		ro := mustOpen(t, s.Path(), Options{ReadOnly: true})
		const batches, perBatch, domains = 40, 50, 300
		mine := map[string]time.Time{}
		apply := func(v int64) int64 {
			got, _, nv := since(t, ro, v)
			if nv < v {
				t.Fatalf("version went back from %d to %d", v, nv)
			}
			for d, r := range got {
				mine[d] = r.ScannedAt
			}
			return nv
		}
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				rs := make([]result.Result, 0, perBatch)
				for i := range perBatch {
					d := fmt.Sprintf("d%d.example", (b*perBatch+i*7)%domains)
					rs = append(rs, res(d, result.Verified, t0.Add(time.Duration(b)*time.Minute), 0))
				}
				if err := s.SaveResults(ctx, rs); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		v := apply(0)
		for range 200 {
			v = apply(v)
		}
		wg.Wait()
		v = apply(v)
		if dv, _ := ro.DataVersion(ctx); v != dv {
			t.Errorf("caught up to version %d, DataVersion %d", v, dv)
		}
		all, _, _ := since(t, ro, 0)
		if len(all) != len(mine) {
			t.Errorf("%d domains followed, %d stored", len(mine), len(all))
		}
		for d, r := range all {
			if !mine[d].Equal(r.ScannedAt) {
				t.Errorf("%s: followed %v, stored %v", d, mine[d], r.ScannedAt)
			}
		}
	})
}

// TestMigrateFromV2: rows saved before the change version existed have
// version 0: a full read returns them, a read since any version does not
// until they are saved again.
func TestMigrateFromV2(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v2.db")
	old, err := json.Marshal(res("old.example", result.Verified, t0, 0))
	if err != nil {
		t.Fatal(err)
	}
	writeOldDB(t, path, migrations[0], migrations[1], `PRAGMA user_version = 2`,
		`UPDATE meta SET value = 7 WHERE key = 'data_version'`,
		`INSERT INTO domains(domain, verdict, scanned_at, result) VALUES ('old.example', 'verified', 1, '`+string(old)+`'),
			('old2.example', 'verified', 1, '`+strings.ReplaceAll(string(old), "old.example", "old2.example")+`')`,
	)
	s := mustOpen(t, path, Options{})
	all, _, v := since(t, s, 0)
	if len(all) != 2 || v != 7 {
		t.Errorf("full read after migration: %d rows at version %d", len(all), v)
	}
	mustSave(t, s, res("old2.example", result.DANE, t0.Add(time.Hour), 0))
	changed, order, v2 := since(t, s, v)
	if v2 != 8 || !slices.Equal(order, []string{"old2.example"}) || changed["old2.example"].Verdict != result.DANE {
		t.Errorf("since %d: %v at %d", v, order, v2)
	}
	if err := s.IntegrityCheck(ctx); err != nil {
		t.Error(err)
	}
}
