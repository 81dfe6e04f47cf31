package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/tlsready/tlsready/store"
)

// openExisting opens the database a reading command (lookup, report,
// export, serve) was given. The same problems give the same exit code from
// every command: a file that does not exist, is no SQLite database, is
// another application's or is empty is a usage error (exit 2) naming it.
// db may also be a postgres:// URL (store.Open).
func openExisting(ctx context.Context, db string, readOnly bool) (*store.Store, error) {
	if store.IsPostgresURL(db) {
		// No file to look at: a database without tlsready's tables is
		// ErrEmpty or ErrForeign, a usage error below.
	} else if _, err := os.Stat(db); errors.Is(err, os.ErrNotExist) {
		return nil, usageErr("--db %s: no such database (tlsready scan creates it)", db)
	}
	st, err := store.Open(ctx, db, store.Options{ReadOnly: readOnly})
	return st, storeUsage(err)
}

// storeUsage marks the store's errors about a --db file that is not a
// tlsready database as usage errors (exit 2).
func storeUsage(err error) error {
	if errors.Is(err, store.ErrNotDatabase) || errors.Is(err, store.ErrForeign) || errors.Is(err, store.ErrEmpty) {
		return &exitError{code: exitUsage, err: err}
	}
	return err
}

// checkReportRun says in the user's words what is wrong with --run before a
// report or an export: no such run, or a run that is not finished, is a usage
// error (exit 2); a database without a finished run yet fails (exit 1).
func checkReportRun(ctx context.Context, st *store.Store, db string, runID int64) error {
	db = store.RedactURL(db) // named in messages: never a password
	runs, err := st.Runs(ctx)
	if err != nil {
		return err
	}
	var finished []int64
	for _, r := range runs {
		if r.Status == store.RunFinished {
			finished = append(finished, r.ID)
		}
	}
	if runID == 0 {
		if len(finished) == 0 {
			return fmt.Errorf("no finished run in %s yet: a report needs a scan that ran to the end (tlsready scan)", db)
		}
		return nil
	}
	for _, r := range runs {
		if r.ID != runID {
			continue
		}
		if r.Status == store.RunFinished {
			return nil
		}
		why := r.Status
		if r.Abandoned() {
			why = "abandoned"
		} else if r.Status == store.RunRunning {
			why = "running or interrupted"
		}
		return usageErr("--run %d: run %d in %s is %s, not finished; only finished runs are reported (finished runs: %s)", runID, runID, db, why, idList(finished))
	}
	return usageErr("--run %d: no run %d in %s (finished runs: %s)", runID, runID, db, idList(finished))
}

// idList renders run ids as "1-3, 5, 7-9", or "none".
func idList(ids []int64) string {
	if len(ids) == 0 {
		return "none"
	}
	var parts []string
	for i := 0; i < len(ids); {
		j := i
		for j+1 < len(ids) && ids[j+1] == ids[j]+1 {
			j++
		}
		if j > i {
			parts = append(parts, fmt.Sprintf("%d-%d", ids[i], ids[j]))
		} else {
			parts = append(parts, fmt.Sprint(ids[i]))
		}
		i = j + 1
	}
	return strings.Join(parts, ", ")
}
