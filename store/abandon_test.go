package store

import (
	"context"
	"testing"
	"time"
)

// TestAbandonRuns: every running run but the kept one is marked aborted as
// abandoned; finished and aborted runs are left alone.
func TestAbandonRuns(t *testing.T) {
	eachStore(t, func(t *testing.T, ctx context.Context, _ backend, st *Store) {
		now := time.Now()
		begin := func(input string) int64 {
			t.Helper()
			r, _, err := st.BeginRun(ctx, input, now)
			if err != nil {
				t.Fatal(err)
			}
			return r.ID
		}
		finished := begin("a")
		if err := st.FinishRun(ctx, finished, RunStats{}, now); err != nil {
			t.Fatal(err)
		}
		aborted := begin("b")
		if err := st.AbortRun(ctx, aborted, "port 25 blocked"); err != nil {
			t.Fatal(err)
		}
		old1, old2, keep := begin("c"), begin("d"), begin("e")

		got, err := st.AbandonRuns(ctx, keep, "run 5 started with another input")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].ID != old1 || got[1].ID != old2 || got[0].Status != RunRunning {
			t.Fatalf("AbandonRuns returned %+v, want runs %d and %d as they were", got, old1, old2)
		}
		runs, err := st.Runs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := map[int64]struct {
			status    string
			abandoned bool
		}{
			finished: {RunFinished, false}, aborted: {RunAborted, false},
			old1: {RunAborted, true}, old2: {RunAborted, true}, keep: {RunRunning, false},
		}
		for _, r := range runs {
			if w := want[r.ID]; r.Status != w.status || r.Abandoned() != w.abandoned {
				t.Errorf("run %d: status %s, abandoned %v (reason %q); want %s, %v", r.ID, r.Status, r.Abandoned(), r.Reason, w.status, w.abandoned)
			}
		}
		if r, _ := st.GetRun(ctx, old1); r.Reason != "abandoned: run 5 started with another input" {
			t.Errorf("reason %q", r.Reason)
		}
		if got, err := st.AbandonRuns(ctx, keep, "again"); err != nil || len(got) != 0 {
			t.Errorf("second AbandonRuns: %v, %v", got, err)
		}
	})
}
