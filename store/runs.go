package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
)

// Run is one scan run.
type Run struct {
	ID         int64     `json:"id"`
	Input      string    `json:"input"`  // input identity: file name + size + mtime, or "-"
	Status     string    `json:"status"` // "running", "finished", "aborted" (an abandoned run is aborted: Abandoned)
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	Stats      RunStats  `json:"stats"`
	Reason     string    `json:"reason,omitempty"` // why the run was aborted
}

// RunStats are a run's counters, stored as JSON with the run.
type RunStats struct {
	Lines          int64            `json:"lines"`
	Recipients     int64            `json:"recipients"`
	BadLines       int64            `json:"bad_lines"`
	BadByReason    map[string]int64 `json:"bad_by_reason,omitempty"`
	Domains        int64            `json:"domains"`
	Scanned        int64            `json:"scanned"`                    // domains scanned in this run
	Reused         int64            `json:"reused"`                     // fresh cached results reused
	MXIPs          int64            `json:"mx_ips"`                     // distinct MX IPs probed
	Connections    int64            `json:"connections"`                // SMTP connections made
	SNIPerNameIPs  int64            `json:"sni_per_name_ips,omitempty"` // MX IPs that pick certificates by SNI, probed per name
	DNSQueries     int64            `json:"dns_queries"`
	Resolver       string           `json:"resolver,omitempty"`
	TrustAD        bool             `json:"trust_ad,omitempty"`
	ScannerVersion string           `json:"scanner_version,omitempty"`
	Vantage        string           `json:"vantage,omitempty"` // HELO name / host the scan ran from

	// The register's totals: Lines = Entries + BadLines + blank, comment
	// and header lines; Recipients (distinct ids, the run's citizens) =
	// Entries - DuplicateIDs. A line repeating an earlier line's id
	// replaces it; a line repeating an earlier address under a new id is a
	// recipient of its own. The first 100 duplicate lines of each kind are
	// kept with the earlier line each repeats.
	Entries            int64           `json:"entries,omitempty"`
	DuplicateIDs       int64           `json:"duplicate_ids,omitempty"`
	DuplicateAddrs     int64           `json:"duplicate_addresses,omitempty"`
	DuplicateIDLines   []DuplicateLine `json:"duplicate_id_lines,omitempty"`
	DuplicateAddrLines []DuplicateLine `json:"duplicate_address_lines,omitempty"`
}

// DuplicateLine is a register line that repeats an earlier one's id or
// address, by line numbers only.
type DuplicateLine struct {
	Line  int64 `json:"line"`
	First int64 `json:"first"`
}

// BeginRun resumes the latest run with status "running" and the same input
// (resumed=true), or starts a new run.
func (s *Store) BeginRun(ctx context.Context, input string, now time.Time) (run Run, resumed bool, err error) {
	if s.readOnly {
		return Run{}, false, ErrReadOnly
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return Run{}, false, fmt.Errorf("store: begin run: %w", err)
	}
	defer tx.Rollback()
	run, err = scanRun(tx.QueryRowContext(ctx, s.q(`SELECT `+runColumns+` FROM runs
		WHERE status = 'running' AND input = ? ORDER BY id DESC LIMIT 1`), input))
	switch {
	case err == nil:
		return run, true, nil // read-only transaction; rollback is fine
	case !errors.Is(err, ErrNotFound):
		return Run{}, false, fmt.Errorf("store: begin run: %w", err)
	}
	now = now.UTC()
	var id int64
	if err := tx.QueryRowContext(ctx, s.q(`INSERT INTO runs(input, status, started_at, stats) VALUES (?, 'running', ?, '{}') RETURNING id`),
		input, nsOrNil(now)).Scan(&id); err != nil {
		return Run{}, false, fmt.Errorf("store: begin run: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return Run{}, false, fmt.Errorf("store: begin run: %w", err)
	}
	return Run{ID: id, Input: input, Status: RunRunning, StartedAt: storedTime(now)}, false, nil
}

// FinishRun marks the run finished, stores stats, and snapshots, for every
// domain with recipients in this run, its citizen count and current verdict
// and flags into the run's history (RunDomains).
//
// A domain with recipients but no stored result is recorded as "unknown".
// Finishing a finished run again takes a new snapshot; an aborted run cannot
// be finished.
func (s *Store) FinishRun(ctx context.Context, runID int64, stats RunStats, now time.Time) error {
	if s.readOnly {
		return ErrReadOnly
	}
	js, err := json.Marshal(stats)
	if err != nil {
		return fmt.Errorf("store: finish run: %w", err)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: finish run: %w", err)
	}
	defer tx.Rollback()
	var status string
	err = tx.QueryRowContext(ctx, s.q(`SELECT status FROM runs WHERE id = ?`), runID).Scan(&status)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("store: finish run %d: %w", runID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("store: finish run: %w", err)
	}
	if status == RunAborted {
		return fmt.Errorf("store: finish run %d: the run was aborted", runID)
	}
	if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM run_domains WHERE run_id = ?`), runID); err != nil {
		return fmt.Errorf("store: finish run: %w", err)
	}
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO run_domains(run_id, domain, citizens, verdict, flags)
		SELECT CAST(?1 AS BIGINT), c.domain, c.n, coalesce(d.verdict, 'unknown'), coalesce(d.flags, '[]')
		FROM (SELECT domain, count(*) AS n FROM recipients WHERE last_run = ?1 GROUP BY domain) AS c
		LEFT JOIN domains AS d ON d.domain = c.domain`), runID); err != nil {
		return fmt.Errorf("store: finish run: %w", err)
	}
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE runs SET status = 'finished', stats = ?, finished_at = ? WHERE id = ?`),
		string(js), nsOrNil(now), runID); err != nil {
		return fmt.Errorf("store: finish run: %w", err)
	}
	if err := bumpDataVersion(ctx, tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: finish run: %w", err)
	}
	return nil
}

// AbortRun marks a run aborted (e.g. port 25 blocked); its results are not used.
// The reason is kept in Run.Reason.
func (s *Store) AbortRun(ctx context.Context, runID int64, reason string) error {
	if s.readOnly {
		return ErrReadOnly
	}
	res, err := s.w.ExecContext(ctx, s.q(`UPDATE runs SET status = 'aborted', reason = ? WHERE id = ?`), reason, runID)
	if err != nil {
		return fmt.Errorf("store: abort run: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("store: abort run: %w", err)
	} else if n == 0 {
		return fmt.Errorf("store: abort run %d: %w", runID, ErrNotFound)
	}
	return nil
}

// abandonedPrefix starts the Reason of a run that AbandonRuns gave up.
const abandonedPrefix = "abandoned: "

// Abandoned reports whether the run was given up by AbandonRuns: interrupted,
// and never resumed because a scan of another input started. Its status is
// RunAborted; its finished domains stay cached.
func (r Run) Abandoned() bool {
	return r.Status == RunAborted && strings.HasPrefix(r.Reason, abandonedPrefix)
}

// AbandonRuns marks every run still running except keep as aborted, with
// Reason "abandoned: " + reason (see Run.Abandoned), and returns those runs
// as they were before. A scan calls it, holding LockScan, once it has begun
// or resumed its own run: an interrupted run of another input would
// otherwise stay "running" forever. Results it saved stay cached.
func (s *Store) AbandonRuns(ctx context.Context, keep int64, reason string) ([]Run, error) {
	if s.readOnly {
		return nil, ErrReadOnly
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store: abandon runs: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, s.q(`SELECT `+runColumns+` FROM runs WHERE status = 'running' AND id != ? ORDER BY id`), keep)
	if err != nil {
		return nil, fmt.Errorf("store: abandon runs: %w", err)
	}
	var runs []Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: abandon runs: %w", err)
		}
		runs = append(runs, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: abandon runs: %w", err)
	}
	if len(runs) == 0 {
		return nil, nil
	}
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE runs SET status = 'aborted', reason = ? WHERE status = 'running' AND id != ?`),
		abandonedPrefix+reason, keep); err != nil {
		return nil, fmt.Errorf("store: abandon runs: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("store: abandon runs: %w", err)
	}
	return runs, nil
}

// Runs lists all runs, oldest first.
func (s *Store) Runs(ctx context.Context) ([]Run, error) {
	rows, err := s.r.QueryContext(ctx, s.q(`SELECT `+runColumns+` FROM runs ORDER BY id`))
	if err != nil {
		return nil, fmt.Errorf("store: runs: %w", err)
	}
	defer rows.Close()
	var runs []Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, fmt.Errorf("store: runs: %w", err)
		}
		runs = append(runs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: runs: %w", err)
	}
	return runs, nil
}

// GetRun returns one run or ErrNotFound.
func (s *Store) GetRun(ctx context.Context, id int64) (Run, error) {
	r, err := scanRun(s.r.QueryRowContext(ctx, s.q(`SELECT `+runColumns+` FROM runs WHERE id = ?`), id))
	if err != nil {
		return Run{}, fmt.Errorf("store: run %d: %w", id, err)
	}
	return r, nil
}

// LatestFinishedRun returns the newest finished run or ErrNotFound.
// Newest means the highest run ID.
func (s *Store) LatestFinishedRun(ctx context.Context) (Run, error) {
	r, err := scanRun(s.r.QueryRowContext(ctx, s.q(`SELECT `+runColumns+` FROM runs
		WHERE status = 'finished' ORDER BY id DESC LIMIT 1`)))
	if err != nil {
		return Run{}, fmt.Errorf("store: latest finished run: %w", err)
	}
	return r, nil
}

// PendingDomains returns the domains with recipients seen in runID that have
// no result saved in runID and whose latest result is older than freshSince
// (zero freshSince: every domain without a result in this run).
//
// A stored temporary verdict (unreachable, dns-error) is never fresh: docs/verdicts.md
// says those are retried on the next run; nor is a result whose _mta-sts or
// _smtp._tls lookup failed (flags sts-lookup-failed, tlsrpt-lookup-failed),
// which docs/verdicts.md has looked up again on the next run. Within one run a domain is not
// returned again once SaveResults has seen it, whatever its verdict.
// The domains come back sorted.
func (s *Store) PendingDomains(ctx context.Context, runID int64, freshSince time.Time) ([]string, error) {
	fresh := int64(math.MaxInt64) // zero: no stored result is fresh
	if !freshSince.IsZero() {
		fresh = freshSince.UnixNano()
	}
	rows, err := s.r.QueryContext(ctx, s.q(`SELECT rd.domain FROM run_recipient_domains AS rd
		LEFT JOIN domains AS d ON d.domain = rd.domain
		WHERE rd.run_id = ?1 AND (d.domain IS NULL OR (d.run_id IS DISTINCT FROM ?1
			AND (d.scanned_at < ?2 OR d.verdict IN ('unreachable', 'dns-error')
				OR d.flags LIKE '%"sts-lookup-failed"%' OR d.flags LIKE '%"tlsrpt-lookup-failed"%')))
		ORDER BY rd.domain`), runID, fresh)
	if err != nil {
		return nil, fmt.Errorf("store: pending domains: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			return nil, fmt.Errorf("store: pending domains: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: pending domains: %w", err)
	}
	return out, nil
}

// CountRunDomains counts the distinct domains with recipients in runID.
// (If a recipient ID was re-added with another domain within the run, its
// old domain still counts: the count is of domains added in the run.)
func (s *Store) CountRunDomains(ctx context.Context, runID int64) (int64, error) {
	var n int64
	if err := s.r.QueryRowContext(ctx, s.q(`SELECT count(*) FROM run_recipient_domains WHERE run_id = ?`), runID).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count run domains: %w", err)
	}
	return n, nil
}

// RunDomain is one row of a run's history.
type RunDomain struct {
	Domain   string
	Citizens int64
	Verdict  result.Verdict
	Flags    []string
}

// RunDomains calls fn for every domain of a finished run, most citizens first.
// It returns ErrNotFound for an unknown run; a run that is not finished has
// no history rows. An error from fn stops the iteration and is returned.
func (s *Store) RunDomains(ctx context.Context, runID int64, fn func(RunDomain) error) error {
	if _, err := s.GetRun(ctx, runID); err != nil {
		return err
	}
	rows, err := s.r.QueryContext(ctx, s.q(`SELECT domain, citizens, verdict, flags FROM run_domains
		WHERE run_id = ? ORDER BY citizens DESC, domain`), runID)
	if err != nil {
		return fmt.Errorf("store: run domains: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			rd    RunDomain
			flags string
		)
		if err := rows.Scan(&rd.Domain, &rd.Citizens, &rd.Verdict, &flags); err != nil {
			return fmt.Errorf("store: run domains: %w", err)
		}
		if rd.Flags, err = parseFlags(flags); err != nil {
			return fmt.Errorf("store: run domains: stored flags: %w", err)
		}
		if err := fn(rd); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: run domains: %w", err)
	}
	return nil
}

// Run statuses.
const (
	RunRunning  = "running"
	RunFinished = "finished"
	RunAborted  = "aborted"
)
