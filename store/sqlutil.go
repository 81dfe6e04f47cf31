package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
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

// eachRawResult calls fn with each row of rows, a domain and the JSON of
// its stored result (raw is the row's buffer, only valid during the
// call), and closes rows. An error of fn is returned as it is; an error
// reading rows is wrapped with what.
func eachRawResult(rows *sql.Rows, what string, fn func(domain string, raw []byte) error) error {
	defer rows.Close()
	var (
		domain string
		raw    sql.RawBytes
	)
	for rows.Next() {
		if err := rows.Scan(&domain, &raw); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if err := fn(domain, raw); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
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
//
// Lists as flagsJSON writes them (["a","b"], no escapes, printable ASCII)
// take a fast path that slices s without copying: a report reads a flag
// list for each of a million run rows several times. Anything else goes to
// encoding/json, so the result is always what json.Unmarshal gives.
func parseFlags(s string) ([]string, error) {
	if s == "[]" {
		return nil, nil
	}
	if flags, ok := parseFlagsFast(s); ok {
		return flags, nil
	}
	var flags []string
	if err := json.Unmarshal([]byte(s), &flags); err != nil {
		return nil, err
	}
	if len(flags) == 0 {
		return nil, nil
	}
	return flags, nil
}

// parseFlagsFast parses a non-empty JSON array of strings written without
// whitespace whose strings hold only printable ASCII other than '"' and '\\'.
// ok is false for anything else.
func parseFlagsFast(s string) (flags []string, ok bool) {
	if len(s) < 4 || s[0] != '[' || s[len(s)-1] != ']' {
		return nil, false
	}
	n := strings.Count(s, ",") + 1
	flags = make([]string, 0, n)
	i := 1
	for {
		if s[i] != '"' {
			return nil, false
		}
		j := i + 1
		for j < len(s) && s[j] != '"' {
			if c := s[j]; c < 0x20 || c >= 0x7f || c == '\\' {
				return nil, false
			}
			j++
		}
		if j >= len(s)-1 {
			return nil, false
		}
		flags = append(flags, s[i+1:j])
		switch {
		case s[j+1] == ']' && j+2 == len(s):
			return flags, true
		case s[j+1] == ',' && j+2 < len(s)-1:
			i = j + 2
		default:
			return nil, false
		}
	}
}
