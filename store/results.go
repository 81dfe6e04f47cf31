package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tlsready/tlsready/scanner/dnsname"
	"github.com/tlsready/tlsready/scanner/result"
)

// validResult checks what SaveResults needs of a result (i: batch position).
func validResult(i int, r result.Result) error {
	switch {
	case dnsname.Key(r.Domain) == "":
		return fmt.Errorf("store: result %d of the batch has no domain", i)
	case !r.Verdict.Valid():
		return fmt.Errorf("store: result for %s: invalid verdict %q", r.Domain, r.Verdict)
	case r.ScannedAt.IsZero():
		return fmt.Errorf("store: result for %s has no scan time", r.Domain)
	}
	return nil
}

func (s *Store) saveResults(ctx context.Context, rs []result.Result) error {
	return s.saveResultsWith(ctx, rs, nil)
}

// saveStmts are the statements of saveResultsWith, prepared on the write
// pool once for a Writer's lifetime; each transaction takes them with
// Tx.StmtContext, which reuses the statement already prepared on its
// connection (SQLite: the writer's only one) instead of preparing and
// finalising six statements at every commit (issue 10).
type saveStmts struct {
	get, attempt, version, put, answer, bump *sql.Stmt
}

// preparer is a *sql.DB or a *sql.Tx.
type preparer interface {
	PrepareContext(ctx context.Context, query string) (*sql.Stmt, error)
}

// prepareSave prepares the statements of saveResultsWith on p. On error
// the ones already prepared are closed.
func (s *Store) prepareSave(ctx context.Context, p preparer) (*saveStmts, error) {
	// Replaced rows carry the data version this transaction commits
	// (resultsRawSince); the write lock, taken at BEGIN, keeps it ours.
	versionQuery := `SELECT value FROM meta WHERE key = 'data_version'`
	if s.pg != nil {
		// PostgreSQL has no database write lock: the row lock, held to
		// commit, serialises the writers of versions.
		versionQuery += ` FOR UPDATE`
	}
	st := &saveStmts{}
	for _, q := range []struct {
		dst   **sql.Stmt
		query string
	}{
		{&st.get, `SELECT verdict, scanned_at FROM domains WHERE domain = ?`},
		{&st.attempt, `UPDATE domains SET run_id = ?, last_attempt_at = ?, last_error = ? WHERE domain = ?`},
		{&st.version, versionQuery},
		{&st.put, `INSERT INTO domains(domain, verdict, flags, scanned_at, run_id, result, last_attempt_at, last_error, changed_version)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(domain) DO UPDATE SET verdict = excluded.verdict, flags = excluded.flags,
			scanned_at = excluded.scanned_at, run_id = excluded.run_id, result = excluded.result,
			last_attempt_at = excluded.last_attempt_at, last_error = excluded.last_error,
			changed_version = excluded.changed_version`},
		{&st.answer, putAnswerQuery},
		{&st.bump, `UPDATE meta SET value = ? WHERE key = 'data_version'`},
	} {
		stmt, err := p.PrepareContext(ctx, s.q(q.query))
		if err != nil {
			st.close()
			return nil, fmt.Errorf("store: save results: %w", err)
		}
		*q.dst = stmt
	}
	return st, nil
}

// close closes the statements prepared so far.
func (st *saveStmts) close() {
	for _, stmt := range []*sql.Stmt{st.get, st.attempt, st.version, st.put, st.answer, st.bump} {
		if stmt != nil {
			stmt.Close()
		}
	}
}

// saveResultsWith is SaveResults with statements prepared on the write
// pool (nil: prepared in the transaction, for this call only).
func (s *Store) saveResultsWith(ctx context.Context, rs []result.Result, pre *saveStmts) error {
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
	var st *saveStmts
	if pre == nil {
		if st, err = s.prepareSave(ctx, tx); err != nil {
			return err
		}
		defer st.close()
	} else {
		// Statements of the transaction, closed with it.
		st = &saveStmts{get: tx.StmtContext(ctx, pre.get), attempt: tx.StmtContext(ctx, pre.attempt),
			version: tx.StmtContext(ctx, pre.version), put: tx.StmtContext(ctx, pre.put), answer: tx.StmtContext(ctx, pre.answer),
			bump: tx.StmtContext(ctx, pre.bump)}
	}
	get, attempt, put := st.get, st.attempt, st.put
	var version int64
	if err := st.version.QueryRowContext(ctx).Scan(&version); err != nil {
		return fmt.Errorf("store: save results: data version: %w", err)
	}
	version++

	changed := false
	for _, r := range rs {
		r.Domain = dnsname.Key(r.Domain)
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
			string(js), r.ScannedAt.UnixNano(), lastError, version); err != nil {
			return fmt.Errorf("store: save results: %w", err)
		}
		a := answerOf(r.Domain, &r)
		if _, err := st.answer.ExecContext(ctx, a.Domain, string(a.Verdict), flags, a.ScannedAt, a.MX, a.STSMode, a.STSMX); err != nil {
			return fmt.Errorf("store: save results: %w", err)
		}
		changed = true
	}
	if changed {
		if _, err := st.bump.ExecContext(ctx, version); err != nil {
			return fmt.Errorf("store: save results: data version: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: save results: %w", err)
	}
	return nil
}

// keepStored reports whether the stored result of r's domain must be kept
// although r (a temporary verdict) is newer: it is not temporary itself and
// not older than keepLastKnown before r was scanned.
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
	return scanned >= r.ScannedAt.Add(-s.keepLastKnown).UnixNano(), nil
}

// ResultsRaw is Results without the decoding: it calls fn with each domain
// and the JSON of its latest stored result (a result.Result), with the same
// domains, order and errors as Results.
//
// raw is only valid during the call (it is the database row's buffer, reused
// for the next row): fn must copy it to keep it, and must not modify it.
func (s *Store) ResultsRaw(ctx context.Context, runID int64, fn func(domain string, raw []byte) error) error {
	query := `SELECT domain, result FROM domains ORDER BY domain`
	var args []any
	if runID > 0 {
		run, err := s.GetRun(ctx, runID)
		if err != nil {
			return err
		}
		args = []any{runID}
		if run.Status == RunFinished {
			query = `SELECT d.domain, d.result FROM run_domains AS rd JOIN domains AS d ON d.domain = rd.domain
				WHERE rd.run_id = ? ORDER BY rd.domain`
		} else {
			query = `SELECT d.domain, d.result FROM domains AS d
				WHERE d.domain IN (SELECT domain FROM run_recipient_domains WHERE run_id = ?) ORDER BY d.domain`
		}
	}
	rows, err := s.r.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return fmt.Errorf("store: results: %w", err)
	}
	return eachRawResult(rows, "store: results", fn)
}

// RunResultsRaw calls fn for every domain of a finished run's history, in
// domain order, with its history row (as RunDomains gives it) and the JSON
// of the domain's latest stored result (a result.Result), or nil raw when no
// result is stored for the domain. The stored result may be newer than the
// run: its verdict can differ from the history row's.
//
// It is one pass over the history joined to the results, for exports that
// write a row per domain of a run. raw is only valid during the call (the
// row's buffer, reused for the next row): fn must copy it to keep it, and
// must not modify it. It returns ErrNotFound for an unknown run; a run that
// is not finished has no history rows. An error from fn stops the iteration
// and is returned.
func (s *Store) RunResultsRaw(ctx context.Context, runID int64, fn func(d RunDomain, raw []byte) error) error {
	if _, err := s.GetRun(ctx, runID); err != nil {
		return err
	}
	rows, err := s.r.QueryContext(ctx, s.q(`SELECT rd.domain, rd.citizens, rd.verdict, rd.flags, d.result
		FROM run_domains AS rd LEFT JOIN domains AS d ON d.domain = rd.domain
		WHERE rd.run_id = ? ORDER BY rd.domain`), runID)
	if err != nil {
		return fmt.Errorf("store: run results: %w", err)
	}
	defer rows.Close()
	var (
		flags string
		raw   sql.RawBytes
	)
	for rows.Next() {
		var d RunDomain
		if err := rows.Scan(&d.Domain, &d.Citizens, &d.Verdict, &flags, &raw); err != nil {
			return fmt.Errorf("store: run results: %w", err)
		}
		if d.Flags, err = parseFlags(flags); err != nil {
			return fmt.Errorf("store: run results: stored flags: %w", err)
		}
		if err := fn(d, raw); err != nil { // raw is nil for NULL
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: run results: %w", err)
	}
	return nil
}

// VerdictTotal counts the domains of a run with one verdict and their citizens.
type VerdictTotal struct {
	Domains  int64
	Citizens int64
}

// RunVerdictTotals returns a finished run's domains and citizens per verdict
// (result.Unknown for domains without a known verdict), computed in SQLite
// from the run's history (an index makes it a short scan): what a trend
// needs of an older run without a pass over its domains. Verdicts without
// domains are absent. It returns ErrNotFound for an unknown run; a run that
// is not finished has no history, so an empty map.
func (s *Store) RunVerdictTotals(ctx context.Context, runID int64) (map[result.Verdict]VerdictTotal, error) {
	if _, err := s.GetRun(ctx, runID); err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, s.q(`SELECT verdict, count(*), CAST(sum(citizens) AS BIGINT) FROM run_domains
		WHERE run_id = ? GROUP BY verdict`), runID)
	if err != nil {
		return nil, fmt.Errorf("store: run verdict totals: %w", err)
	}
	defer rows.Close()
	out := map[result.Verdict]VerdictTotal{}
	for rows.Next() {
		var (
			v result.Verdict
			t VerdictTotal
		)
		if err := rows.Scan(&v, &t.Domains, &t.Citizens); err != nil {
			return nil, fmt.Errorf("store: run verdict totals: %w", err)
		}
		out[v] = t
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: run verdict totals: %w", err)
	}
	return out, nil
}

// SaveResults upserts domain results in one transaction.
//
// Temporary failures must not wipe knowledge (FIELD-NOTES.md): a result whose
// verdict is Temporary() (unreachable, dns-error) does not replace a stored
// non-temporary result unless the stored one is older than KeepLastKnown
// (Options.KeepLastKnown, default 7 days) measured from the new result's
// ScannedAt. When it is kept, only the attempt is recorded (LastAttempt: the
// new ScannedAt and Reason) and the row's run is set to the new result's
// RunID, so PendingDomains does not pick the domain again in that run.
// Every other result replaces the stored one entirely.
//
// Each result needs a Domain, a valid Verdict and a ScannedAt. DataVersion
// changes when a stored result was replaced.
func (s *Store) SaveResults(ctx context.Context, rs []result.Result) error {
	return s.saveResults(ctx, rs)
}

// Lookup returns the latest result for a domain (A-label) or ErrNotFound.
// The domain is matched case-insensitively, with or without a trailing dot.
func (s *Store) Lookup(ctx context.Context, domain string) (result.Result, error) {
	var js string
	err := s.r.QueryRowContext(ctx, s.q(`SELECT result FROM domains WHERE domain = ?`), dnsname.Key(domain)).Scan(&js)
	if errors.Is(err, sql.ErrNoRows) {
		return result.Result{}, ErrNotFound
	}
	if err != nil {
		return result.Result{}, fmt.Errorf("store: lookup: %w", err)
	}
	var r result.Result
	if err := json.Unmarshal([]byte(js), &r); err != nil {
		return result.Result{}, fmt.Errorf("store: lookup: stored result: %w", err)
	}
	return r, nil
}

// LastAttempt returns when a domain was last attempted and, when that attempt
// ended in a temporary failure, its reason (empty after a successful scan).
// It returns ErrNotFound for a domain never saved.
func (s *Store) LastAttempt(ctx context.Context, domain string) (at time.Time, reason string, err error) {
	var (
		ns  sql.NullInt64
		msg sql.NullString
	)
	err = s.r.QueryRowContext(ctx, s.q(`SELECT last_attempt_at, last_error FROM domains WHERE domain = ?`), dnsname.Key(domain)).Scan(&ns, &msg)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, "", ErrNotFound
	}
	if err != nil {
		return time.Time{}, "", fmt.Errorf("store: last attempt: %w", err)
	}
	return fromNS(ns), msg.String, nil
}

// Results calls fn with the full latest result of every domain in the
// database (or only those of runID when runID > 0), in domain order.
//
// For a finished run the domains are those of its history (RunDomains); for a
// run still running (or aborted), those of its recipients. Domains without a
// stored result are skipped. It returns ErrNotFound for an unknown run. An
// error from fn stops the iteration and is returned.
//
// Decoding the stored JSON is most of the cost; ResultsRaw hands out the
// JSON instead, for callers that decode in parallel or only in part.
func (s *Store) Results(ctx context.Context, runID int64, fn func(result.Result) error) error {
	return s.ResultsRaw(ctx, runID, func(domain string, raw []byte) error {
		var r result.Result
		if err := json.Unmarshal(raw, &r); err != nil {
			return fmt.Errorf("store: results: stored result of %s: %w", domain, err)
		}
		return fn(r)
	})
}
