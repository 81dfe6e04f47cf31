package store

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
)

// answers reads AnswersSince into a map by domain, checking each domain
// comes once.
func answers(t *testing.T, s *Store, since int64) (map[string]Answer, []string, int64) {
	t.Helper()
	got := map[string]Answer{}
	var order []string
	v, err := s.AnswersSince(context.Background(), since, func(a *Answer) error {
		if _, dup := got[a.Domain]; dup {
			return fmt.Errorf("%s twice", a.Domain)
		}
		got[a.Domain] = *a
		order = append(order, a.Domain)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got, order, v
}

// variedResult is the i-th of results with what the read model keeps:
// every verdict, flags (an empty one too), MX names (empty ones and names
// with a comma, left out), MTA-STS policies of each mode.
func variedResult(i int, at time.Time) result.Result {
	d := fmt.Sprintf("d%04d.example", i)
	r := res(d, result.Verdicts[i%len(result.Verdicts)], at.Add(time.Duration(i)*time.Second), 0)
	r.Flags = [][]string{nil, {result.FlagNoTLSRPT}, {"b", "a", ""}, {"odd \"flag\""}}[i%4]
	r.MX = [][]result.Host{nil, {{Name: "mx1." + d}, {Name: "mx2.provider.example"}}, {{Name: ""}, {Name: "a,b.example"}, {Name: "mx.provider.example"}}}[i%3]
	switch i % 5 {
	case 1:
		r.MTASTS = &result.STSPolicy{Mode: "enforce", MX: []string{"*.provider.example", "MX1." + d + "."}}
	case 2:
		r.MTASTS = &result.STSPolicy{Mode: "testing", MX: []string{"mx.example"}}
	case 3:
		r.MTASTS = &result.STSPolicy{Mode: "none"}
	}
	return r
}

// TestAnswersWritten: SaveResults writes the read model of each result it
// saves, and keeps it when it keeps a stored result (a temporary failure).
func TestAnswersWritten(t *testing.T) {
	eachStore(t, func(t *testing.T, ctx context.Context, _ backend, s *Store) {
		r := variedResult(2, t0)
		r.MTASTS = &result.STSPolicy{Mode: "enforce", MX: []string{"*.provider.example", "mx.x.example"}}
		mustSave(t, s, r)
		want := Answer{Domain: r.Domain, Verdict: r.Verdict, Flags: []string{"b", "a", ""}, ScannedAt: r.ScannedAt.UnixNano(),
			MX: "mx.provider.example", STSMode: "enforce", STSMX: "*.provider.example\nmx.x.example"}
		got, err := s.LookupAnswer(ctx, "D0002.Example.")
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("LookupAnswer = %+v, %v; want %+v", got, err, want)
		}
		mustSave(t, s, res(r.Domain, result.Unreachable, t0.Add(time.Hour), 0))
		if got, err := s.LookupAnswer(ctx, r.Domain); err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("after a kept temporary failure: %+v, %v; want %+v", got, err, want)
		}
		if _, err := s.LookupAnswer(ctx, "none.example"); err != ErrNotFound {
			t.Fatalf("unknown domain: %v", err)
		}
	})
}

// TestAnswersBackfill: the schema step that adds the read model fills it
// from the stored results (in batches) with what SaveResults would have
// written, a result that does not decode getting an empty verdict; before
// the step, a read-only store gives the same answers from the JSON.
func TestAnswersBackfill(t *testing.T) {
	eachStore(t, func(t *testing.T, ctx context.Context, _ backend, s *Store) {
		var rs []result.Result
		for i := range 2*backfillBatch + 7 {
			rs = append(rs, variedResult(i, t0))
		}
		mustSave(t, s, rs...)
		want, _, v := answers(t, s, 0)
		if len(want) != len(rs) {
			t.Fatalf("%d answers for %d results", len(want), len(rs))
		}
		for _, r := range rs {
			if a := want[r.Domain]; a.Verdict != r.Verdict || a.ScannedAt != r.ScannedAt.UnixNano() {
				t.Fatalf("%s: %+v", r.Domain, a)
			}
		}
		// What an older program left: no read model, and a result that
		// does not decode.
		if _, err := s.w.ExecContext(ctx, s.q(`UPDATE domains SET result = '{"verdict": 5}' WHERE domain = ?`), rs[3].Domain); err != nil {
			t.Fatal(err)
		}
		want[rs[3].Domain] = Answer{Domain: rs[3].Domain}
		for _, table := range []string{"domain_answers", "pins", "pin_audit"} { // and no later step's tables
			if _, err := s.w.ExecContext(ctx, `DROP TABLE `+table); err != nil {
				t.Fatal(err)
			}
		}
		setSchemaVersion(t, s, answersVersion-1)
		path := s.Path()
		s.Close()

		ro := mustOpen(t, path, Options{ReadOnly: true})
		if got, _, gv := answers(t, ro, 0); !maps.EqualFunc(got, want, sameAnswer) || gv != v {
			t.Errorf("read-only, before the step: %d answers at version %d, want %d at %d", len(got), gv, len(want), v)
		}
		if got, err := ro.LookupAnswer(ctx, rs[1].Domain); err != nil || !reflect.DeepEqual(got, want[rs[1].Domain]) {
			t.Errorf("read-only LookupAnswer = %+v, %v", got, err)
		}

		s = mustOpen(t, path, Options{})
		if n := storedSchemaVersion(t, s); n != schemaVersion() {
			t.Fatalf("schema version %d after migrating", n)
		}
		got, _, gv := answers(t, s, 0)
		if gv != v {
			t.Errorf("version %d, want %d", gv, v)
		}
		for _, d := range slices.Sorted(maps.Keys(want)) {
			if !reflect.DeepEqual(got[d], want[d]) {
				t.Fatalf("%s: backfilled %+v, want %+v", d, got[d], want[d])
			}
		}
		if len(got) != len(want) {
			t.Fatalf("%d answers backfilled, want %d", len(got), len(want))
		}
		mustSave(t, s, variedResult(1, t0.Add(time.Hour)))
		changed, order, v2 := answers(t, s, v)
		if v2 != v+1 || !slices.Equal(order, []string{rs[1].Domain}) || changed[rs[1].Domain].ScannedAt != t0.Add(time.Hour+time.Second).UnixNano() {
			t.Errorf("since %d: %v at %d", v, order, v2)
		}
	})
}

func sameAnswer(a, b Answer) bool { return reflect.DeepEqual(a, b) }

// sameCurrent is sameAnswer of the current observations: the result JSON
// does not hold the previous one.
func sameCurrent(a, b Answer) bool {
	a.PrevVerdict, a.PrevSTSMode, a.PrevSTSMX = "", "", ""
	b.PrevVerdict, b.PrevSTSMode, b.PrevSTSMX = "", "", ""
	return reflect.DeepEqual(a, b)
}
