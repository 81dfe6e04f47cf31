package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/tlsready/tlsready/scanner/result"
)

// normDomain is the stored form of a domain name: lower case, no trailing dot.
func normDomain(d string) string {
	return strings.ToLower(strings.TrimSuffix(d, "."))
}

// validResult checks what SaveResults needs of a result (i: batch position).
func validResult(i int, r result.Result) error {
	switch {
	case normDomain(r.Domain) == "":
		return fmt.Errorf("store: result %d of the batch has no domain", i)
	case !r.Verdict.Valid():
		return fmt.Errorf("store: result for %s: invalid verdict %q", r.Domain, r.Verdict)
	case r.ScannedAt.IsZero():
		return fmt.Errorf("store: result for %s has no scan time", r.Domain)
	}
	return nil
}

func (s *Store) saveResults(ctx context.Context, rs []result.Result) error {
	if s.readOnly {
		return ErrReadOnly
	}
	if len(rs) == 0 {
		return nil
	}
	for i, r := range rs {
		if err := validResult(i, r); err != nil {
			return err
		}
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: save results: %w", err)
	}
	defer tx.Rollback()
	get, err := tx.PrepareContext(ctx, `SELECT verdict, scanned_at FROM domains WHERE domain = ?`)
	if err != nil {
		return fmt.Errorf("store: save results: %w", err)
	}
	defer get.Close()
	attempt, err := tx.PrepareContext(ctx, `UPDATE domains SET run_id = ?, last_attempt_at = ?, last_error = ? WHERE domain = ?`)
	if err != nil {
		return fmt.Errorf("store: save results: %w", err)
	}
	defer attempt.Close()
	put, err := tx.PrepareContext(ctx, `INSERT INTO domains(domain, verdict, flags, scanned_at, run_id, result, last_attempt_at, last_error)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(domain) DO UPDATE SET verdict = excluded.verdict, flags = excluded.flags,
			scanned_at = excluded.scanned_at, run_id = excluded.run_id, result = excluded.result,
			last_attempt_at = excluded.last_attempt_at, last_error = excluded.last_error`)
	if err != nil {
		return fmt.Errorf("store: save results: %w", err)
	}
	defer put.Close()

	changed := false
	for _, r := range rs {
		r.Domain = normDomain(r.Domain)
		r.ScannedAt = storedTime(r.ScannedAt)
		var runID any
		if r.RunID != 0 {
			runID = r.RunID
		}
		var lastError any
		if r.Verdict.Temporary() {
			lastError = r.Reason
			keep, err := s.keepStored(ctx, get, r)
			if err != nil {
				return err
			}
			if keep {
				if _, err := attempt.ExecContext(ctx, runID, r.ScannedAt.UnixNano(), lastError, r.Domain); err != nil {
					return fmt.Errorf("store: save results: %w", err)
				}
				continue
			}
		}
		flags, err := flagsJSON(r.Flags)
		if err != nil {
			return fmt.Errorf("store: save results: %w", err)
		}
		js, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("store: save results: encode %s: %w", r.Domain, err)
		}
		if _, err := put.ExecContext(ctx, r.Domain, string(r.Verdict), flags, r.ScannedAt.UnixNano(), runID,
			string(js), r.ScannedAt.UnixNano(), lastError); err != nil {
			return fmt.Errorf("store: save results: %w", err)
		}
		changed = true
	}
	if changed {
		if err := bumpDataVersion(ctx, tx); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: save results: %w", err)
	}
	return nil
}

// keepStored reports whether the stored result of r's domain must be kept
// although r (a temporary verdict) is newer: it is not temporary itself and
// not older than staleAfter before r was scanned.
func (s *Store) keepStored(ctx context.Context, get *sql.Stmt, r result.Result) (bool, error) {
	var (
		verdict result.Verdict
		scanned int64
	)
	err := get.QueryRowContext(ctx, r.Domain).Scan(&verdict, &scanned)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: save results: %w", err)
	}
	if verdict.Temporary() {
		return false, nil
	}
	return scanned >= r.ScannedAt.Add(-s.staleAfter).UnixNano(), nil
}
