package store

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/tlsready/tlsready/scanner/mtasts"
	"github.com/tlsready/tlsready/scanner/result"
)

// dump is everything the store API says about a database.
type dump struct {
	Runs       []Run
	Results    []result.Result
	History    map[int64][]RunDomain
	Recipients []Recipient
	STS        mtasts.CachedPolicy
	Attempt    [2]string
	Version    int64
	Exports    []Export
}

func dumpStore(t *testing.T, s *Store) dump {
	t.Helper()
	ctx := context.Background()
	var d dump
	var err error
	if d.Runs, err = s.Runs(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Results(ctx, 0, func(r result.Result) error { d.Results = append(d.Results, r); return nil }); err != nil {
		t.Fatal(err)
	}
	d.History = map[int64][]RunDomain{}
	for _, r := range d.Runs {
		if err := s.RunDomains(ctx, r.ID, func(rd RunDomain) error { d.History[r.ID] = append(d.History[r.ID], rd); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	last := d.Runs[len(d.Runs)-1]
	if last.Status == RunFinished {
		if err := s.RecipientsByVerdict(ctx, last.ID, nil, func(rc Recipient, _ result.Verdict) error {
			d.Recipients = append(d.Recipients, rc)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if d.STS, err = s.GetSTSPolicy(ctx, "sts.example"); err != nil {
		t.Fatal(err)
	}
	at, reason, err := s.LastAttempt(ctx, "big.example")
	if err != nil {
		t.Fatal(err)
	}
	d.Attempt = [2]string{at.String(), reason}
	if d.Version, err = s.DataVersion(ctx); err != nil {
		t.Fatal(err)
	}
	if d.Exports, _, err = s.Exports(ctx, time.Time{}, 0); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestCopyRoundTrip: SQLite -> PostgreSQL -> SQLite keeps everything the
// store API returns, verified by Copy's summary; a copy into a database that
// is not empty is refused; a copied PostgreSQL database goes on numbering runs.
func TestCopyRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sqlite, pg := backends[0], backends[1]
	src := sqlite.open(t)
	_, run2 := scenario(t, src)
	if err := src.FinishRun(ctx, run2.ID, RunStats{Recipients: 2}, t0.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	mustSave(t, src, res("big.example", result.Unreachable, t0.Add(4*time.Hour), run2.ID)) // kept; an attempt
	if err := src.PutSTSPolicy(ctx, mtasts.CachedPolicy{Domain: "sts.example", RecordID: "20250101", Policy: "version: STSv1\nmode: enforce\n",
		FetchedAt: t0, MaxAge: 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	mustAdd(t, src, run2.ID, Recipient{ID: "8", Domain: "big.example", Address: "b@big.example"})
	for i := range 2 {
		id, err := src.LogExport(ctx, Export{At: t0.Add(5 * time.Hour), Kind: "recipients", RunID: run2.ID,
			Verdicts: []string{"plaintext"}, OSUser: "officer", Host: "h", Output: "-"})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if err := src.FinishExport(ctx, id, 7); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := dumpStore(t, src)
	if len(want.Exports) != 2 {
		t.Fatalf("exports %+v", want.Exports)
	}

	mid := pg.open(t)
	sumMid, err := Copy(ctx, mid, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sumMid.Rows["runs"] != 2 || sumMid.Rows["domains"] != 4 || sumMid.Rows["recipients"] != 8 || sumMid.Rows["sts_policies"] != 1 || sumMid.Rows["exports"] != 2 {
		t.Errorf("copied %+v", sumMid)
	}
	if got := dumpStore(t, mid); !reflect.DeepEqual(got, want) {
		t.Errorf("PostgreSQL copy differs:\n got %+v\nwant %+v", got, want)
	}

	back := sqlite.open(t)
	sumBack, err := Copy(ctx, back, mid, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !sumBack.Equal(sumMid) {
		t.Errorf("summaries differ: %+v, %+v", sumBack, sumMid)
	}
	if got := dumpStore(t, back); !reflect.DeepEqual(got, want) {
		t.Errorf("round trip differs:\n got %+v\nwant %+v", got, want)
	}

	if _, err := Copy(ctx, back, src, nil); !errors.Is(err, ErrNotEmpty) {
		t.Errorf("copy into a non-empty database: %v, want ErrNotEmpty", err)
	}
	for _, s := range []*Store{mid, back} {
		if r := mustBegin(t, s, "r3"); r.ID != 3 {
			t.Errorf("%s: new run after the copy has id %d, want 3", s.Path(), r.ID)
		}
		if id, err := s.LogExport(ctx, Export{At: t0, Kind: "recipients", RunID: 2, OSUser: "u", Host: "h", Output: "-"}); err != nil || id != 3 {
			t.Errorf("%s: new export after the copy has id %d (%v), want 3", s.Path(), id, err)
		}
	}
}
