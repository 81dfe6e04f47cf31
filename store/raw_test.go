package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
)

func TestResultsRaw(t *testing.T) {
	eachStore(t, func(t *testing.T, ctx context.Context, _ backend, s *Store) {
		run1, run2 := scenario(t, s)
		for _, id := range []int64{0, run1.ID, run2.ID} {
			var full []result.Result
			if err := s.Results(ctx, id, func(r result.Result) error { full = append(full, r); return nil }); err != nil {
				t.Fatal(err)
			}
			var raws [][]byte
			var domains []string
			err := s.ResultsRaw(ctx, id, func(domain string, raw []byte) error {
				domains = append(domains, domain)
				raws = append(raws, slices.Clone(raw))
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(raws) != len(full) || len(full) == 0 {
				t.Fatalf("run %d: %d raw results, %d results", id, len(raws), len(full))
			}
			for i, raw := range raws {
				var r result.Result
				if err := json.Unmarshal(raw, &r); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(r, full[i]) || domains[i] != r.Domain {
					t.Errorf("run %d row %d: raw %s (domain %s), result %+v", id, i, raw, domains[i], full[i])
				}
			}
		}
		checkRunIterator2(t, "ResultsRaw", run1.ID, s.ResultsRaw)
	})
}

func TestRunResultsRaw(t *testing.T) {
	eachStore(t, func(t *testing.T, ctx context.Context, _ backend, s *Store) {
		run1, run2 := scenario(t, s)
		type row struct {
			RunDomain
			Result *result.Result
		}
		collect := func(id int64) []row {
			var out []row
			err := s.RunResultsRaw(ctx, id, func(d RunDomain, raw []byte) error {
				rw := row{RunDomain: d}
				if raw != nil {
					rw.Result = new(result.Result)
					if err := json.Unmarshal(raw, rw.Result); err != nil {
						return err
					}
				}
				out = append(out, rw)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
		got := collect(run1.ID)
		// Domain order; the history row of run 1 with the latest result (plain
		// is encrypted since run 2); no result for the unscanned domain.
		wantDomains := []RunDomain{
			{Domain: "alpha.example", Citizens: 1, Verdict: result.DANE},
			{Domain: "big.example", Citizens: 3, Verdict: result.Verified, Flags: []string{"no-tlsrpt"}},
			{Domain: "plain.example", Citizens: 2, Verdict: result.Plaintext, Flags: []string{"starttls-not-offered"}},
			{Domain: "unscanned.example", Citizens: 1, Verdict: result.Unknown},
		}
		if len(got) != len(wantDomains) {
			t.Fatalf("run 1: %+v", got)
		}
		for i, w := range wantDomains {
			if !reflect.DeepEqual(got[i].RunDomain, w) {
				t.Errorf("row %d: %+v, want %+v", i, got[i].RunDomain, w)
			}
		}
		if got[2].Result == nil || got[2].Result.Verdict != result.Encrypted || got[1].Result.Domain != "big.example" || got[3].Result != nil {
			t.Errorf("results: %+v", got)
		}
		// A run that is not finished has no history rows.
		if got := collect(run2.ID); len(got) != 0 {
			t.Errorf("unfinished run: %+v", got)
		}
		checkRunIterator2(t, "RunResultsRaw", run1.ID, s.RunResultsRaw)
	})
}

func TestRunVerdictTotals(t *testing.T) {
	eachStore(t, func(t *testing.T, ctx context.Context, be backend, s *Store) {
		run1, run2 := scenario(t, s)
		got, err := s.RunVerdictTotals(ctx, run1.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := map[result.Verdict]VerdictTotal{
			result.Verified:  {Domains: 1, Citizens: 3},
			result.Plaintext: {Domains: 1, Citizens: 2},
			result.DANE:      {Domains: 1, Citizens: 1},
			result.Unknown:   {Domains: 1, Citizens: 1},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("run 1: %v, want %v", got, want)
		}
		// The totals agree with a pass over the history.
		sum := map[result.Verdict]VerdictTotal{}
		err = s.RunDomains(ctx, run1.ID, func(d RunDomain) error {
			v := sum[d.Verdict]
			v.Domains++
			v.Citizens += d.Citizens
			sum[d.Verdict] = v
			return nil
		})
		if err != nil || !reflect.DeepEqual(got, sum) {
			t.Errorf("history pass: %v %v", sum, err)
		}
		if got, err := s.RunVerdictTotals(ctx, run2.ID); err != nil || len(got) != 0 {
			t.Errorf("unfinished run: %v %v", got, err)
		}
		if err := s.FinishRun(ctx, run2.ID, RunStats{}, t0.Add(3*time.Hour)); err != nil {
			t.Fatal(err)
		}
		want2 := map[result.Verdict]VerdictTotal{result.Encrypted: {Domains: 1, Citizens: 1}, result.DANE: {Domains: 1, Citizens: 1}}
		if got, err := s.RunVerdictTotals(ctx, run2.ID); err != nil || !reflect.DeepEqual(got, want2) {
			t.Errorf("run 2: %v %v", got, err)
		}
		if _, err := s.RunVerdictTotals(ctx, 999); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown run: %v", err)
		}
		if !be.pg { // SQLite's plan
			// The query reads the covering index, not the history rows.
			var (
				plan               string
				id, parent, unused int
			)
			err = s.r.QueryRowContext(ctx, `EXPLAIN QUERY PLAN SELECT verdict, count(*), sum(citizens) FROM run_domains
		WHERE run_id = ? GROUP BY verdict`, run1.ID).Scan(&id, &parent, &unused, &plan)
			if err != nil {
				t.Fatal(err)
			}
			if want := "COVERING INDEX run_domains_run_verdict"; !strings.Contains(plan, want) {
				t.Errorf("query plan %q lacks %q", plan, want)
			}
		}
	})
}

// writeOldDB writes a new private SQLite database at path, as an earlier
// program left it: stmts run in order on one connection of the store's
// settings (openDB).
func writeOldDB(t *testing.T, path string, stmts ...string) {
	t.Helper()
	if err := createPrivate(path); err != nil {
		t.Fatal(err)
	}
	db, err := openDB(path, false, false, 1024)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, q := range stmts {
		if _, err := db.ExecContext(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
}

// TestMigrateFromV1: a database written at schema version 1 opens at the
// current version with its data, and the history gets the verdict index.
func TestMigrateFromV1(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v1.db")
	writeOldDB(t, path, migrations[0], `PRAGMA user_version = 1`,
		`INSERT INTO runs(input, status, started_at) VALUES ('old', 'finished', 1)`,
		`INSERT INTO run_domains(run_id, domain, citizens, verdict) VALUES (1, 'a.example', 5, 'plaintext'), (1, 'b.example', 2, 'plaintext')`,
	)
	// Read-only opens need a migrated database.
	if s, err := Open(ctx, path, Options{ReadOnly: true}); err == nil {
		s.Close()
		t.Fatal("read-only open of a version 1 database")
	}
	s := mustOpen(t, path, Options{})
	if v, err := userVersion(ctx, s.r); err != nil || v != schemaVersion() {
		t.Fatalf("version %d %v", v, err)
	}
	got, err := s.RunVerdictTotals(ctx, 1)
	if err != nil || !reflect.DeepEqual(got, map[result.Verdict]VerdictTotal{result.Plaintext: {Domains: 2, Citizens: 7}}) {
		t.Errorf("totals %v %v", got, err)
	}
	var name string
	err = s.r.QueryRowContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'run_domains_run_verdict'`).Scan(&name)
	if errors.Is(err, sql.ErrNoRows) || err != nil {
		t.Errorf("verdict index: %v", err)
	}
	if err := s.IntegrityCheck(ctx); err != nil {
		t.Error(err)
	}
}

func TestParseFlags(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   string
		want []string
	}{
		{`[]`, nil},
		{`["a"]`, []string{"a"}},
		{`["no-tlsrpt","starttls-not-offered"]`, []string{"no-tlsrpt", "starttls-not-offered"}},
		{`[""]`, []string{""}},
		{`["\u003cb\u003e"]`, []string{"<b>"}}, // escapes: the slow path
		{`[ "a" , "b" ]`, []string{"a", "b"}},
		{`["é"]`, []string{"é"}},
		{`null`, nil},
	} {
		got, err := parseFlags(c.in)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("parseFlags(%s) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{``, `[`, `["a",]`, `["a"`, `["a""b"]`, `["a"]x`, "[\"a\x01\"]", `[1]`} {
		if got, err := parseFlags(bad); err == nil {
			t.Errorf("parseFlags(%q) = %q, no error", bad, got)
		}
	}
	// Whatever flagsJSON writes comes back.
	for _, flags := range [][]string{{"x"}, {"cert-expired", "tls-1.0"}, {"<&>", "a\"b", "\\", "日本"}} {
		js, err := flagsJSON(flags)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := parseFlags(js); err != nil || !reflect.DeepEqual(got, flags) {
			t.Errorf("round trip %q: %q %v", flags, got, err)
		}
	}
}

// FuzzParseFlags: the fast path agrees with encoding/json on every input.
func FuzzParseFlags(f *testing.F) {
	for _, s := range []string{`[]`, `["a"]`, `["a","b"]`, `[""]`, `["a",]`, `["\u003c"]`, `[ "a" ]`, `null`, `["a""b"]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseFlags(s)
		var want []string
		werr := json.Unmarshal([]byte(s), &want)
		if len(want) == 0 {
			want = nil
		}
		if (err == nil) != (werr == nil) {
			t.Fatalf("parseFlags(%q): error %v, encoding/json: %v", s, err, werr)
		}
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("parseFlags(%q) = %q, encoding/json %q", s, got, want)
		}
	})
}
