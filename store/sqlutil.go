package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// nsOrNil is a time as stored: unix nanoseconds (UTC), NULL for the zero time.
func nsOrNil(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

// fromNS is the inverse of nsOrNil.
func fromNS(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}

// storedTime is t as it reads back from the database.
func storedTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return time.Unix(0, t.UnixNano()).UTC()
}

type rowScanner interface{ Scan(dest ...any) error }

const runColumns = `id, input, status, started_at, finished_at, stats, reason`

// scanRun reads one runs row; sql.ErrNoRows becomes ErrNotFound.
func scanRun(row rowScanner) (Run, error) {
	var (
		r                 Run
		started, finished sql.NullInt64
		stats             string
	)
	if err := row.Scan(&r.ID, &r.Input, &r.Status, &started, &finished, &stats, &r.Reason); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Run{}, ErrNotFound
		}
		return Run{}, err
	}
	r.StartedAt, r.FinishedAt = fromNS(started), fromNS(finished)
	if err := json.Unmarshal([]byte(stats), &r.Stats); err != nil {
		return Run{}, fmt.Errorf("run %d stats: %w", r.ID, err)
	}
	return r, nil
}

// bumpDataVersion increments the stored data version inside tx.
func bumpDataVersion(ctx context.Context, tx *sql.Tx) error {
	if _, err := tx.ExecContext(ctx, `UPDATE meta SET value = value + 1 WHERE key = 'data_version'`); err != nil {
		return fmt.Errorf("store: data version: %w", err)
	}
	return nil
}

// flagsJSON encodes a flag list as stored (a JSON array, never null).
func flagsJSON(flags []string) (string, error) {
	if len(flags) == 0 {
		return "[]", nil
	}
	b, err := json.Marshal(flags)
	return string(b), err
}

// parseFlags decodes a stored flag list; empty lists come back nil.
func parseFlags(s string) ([]string, error) {
	var flags []string
	if err := json.Unmarshal([]byte(s), &flags); err != nil {
		return nil, err
	}
	if len(flags) == 0 {
		return nil, nil
	}
	return flags, nil
}
