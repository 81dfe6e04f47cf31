// Package store keeps scan runs, recipients and per-domain results in SQLite
// (mattn/go-sqlite3, WAL). It is the cache that lookup, report and the
// gateway read while a batch scan writes.
//
// One process writes (the scan, holding LockScan and feeding a Writer); any
// number of Stores opened ReadOnly, in this or other processes, read what it
// has committed. The database runs in WAL mode with synchronous=NORMAL: a
// crash of the process (kill -9) loses nothing committed; a power loss may
// lose the last transactions but never corrupts the file.
package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
)

// Sentinel errors.
var (
	ErrLocked   = errors.New("store: another scan holds the lock on this database")
	ErrNotFound = errors.New("store: not found")
	ErrReadOnly = errors.New("store: database opened read-only")

	// ErrRecipientsReplaced: the recipient list of a run is no longer kept,
	// because a later run has added recipients (see RecipientsByVerdict).
	ErrRecipientsReplaced = errors.New("store: only the latest run's recipient list is kept")
)

// Store is a handle on one database file. Safe for concurrent use.
type Store struct {
	path          string
	readOnly      bool
	keepLastKnown time.Duration
	w             *sql.DB // nil when read-only; a single connection, BEGIN IMMEDIATE
	r             *sql.DB // readers (query_only, or mode=ro)
	version       int     // the schema version (below schemaVersion only when read-only; see readableSince)

	pg *pgState // nil for SQLite

	rdMu sync.Mutex
	rd   runDomainCache

	closeOnce sync.Once
	closeErr  error
}

// DefaultKeepLastKnown is Options.KeepLastKnown when zero.
const DefaultKeepLastKnown = 7 * 24 * time.Hour

// Options for Open.
type Options struct {
	ReadOnly bool // open with mode=ro; never migrates, never writes

	// KeepLastKnown is how long a stored result that is not temporary
	// outlasts temporary failures (unreachable, dns-error): only once it is
	// older than this may a temporary result replace it (see SaveResults).
	// Zero: DefaultKeepLastKnown. (Not "stale": that is the gateway's word,
	// README "Terms".)
	KeepLastKnown time.Duration
}

// Open opens (creating with mode 0600 and migrating when needed) the database at path.
//
// A database is tlsready's when it carries ApplicationID. Open refuses
// another application's SQLite database (ErrForeign) without changing it,
// and a file that is no SQLite database (ErrNotDatabase). A read-write open
// stamps ApplicationID on a new database and on one an earlier tlsready made
// (recognised by its tables).
//
// A read-only open needs an existing database at the current schema version
// (ErrEmpty for an empty one).
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("store: empty database path")
	}
	if IsPostgresURL(path) {
		return openPostgres(ctx, path, opts)
	}
	s := &Store{path: path, readOnly: opts.ReadOnly, keepLastKnown: opts.KeepLastKnown}
	if s.keepLastKnown <= 0 {
		s.keepLastKnown = DefaultKeepLastKnown
	}
	if opts.ReadOnly {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("store: open read-only: %w", err)
		}
	} else if err := createPrivate(path); err != nil {
		return nil, err
	}

	if !opts.ReadOnly {
		if err := inspect(ctx, path); err != nil {
			return nil, err
		}
		w, err := openDB(path, false, false, 64<<10)
		if err != nil {
			return nil, err
		}
		w.SetMaxOpenConns(1)
		w.SetMaxIdleConns(1)
		w.SetConnMaxLifetime(0)
		w.SetConnMaxIdleTime(0)
		s.w = w
		if err := claim(ctx, w, path); err != nil {
			w.Close()
			return nil, err
		}
		if err := migrate(ctx, w); err != nil {
			w.Close()
			return nil, err
		}
	}
	r, err := openDB(path, opts.ReadOnly, !opts.ReadOnly, 16<<10)
	if err != nil {
		s.Close()
		return nil, err
	}
	r.SetMaxIdleConns(4)
	s.r = r
	if opts.ReadOnly {
		if err := verifyReadOnly(ctx, r, path); err != nil {
			s.Close()
			return nil, err
		}
	}
	v, err := userVersion(ctx, r)
	if err != nil {
		s.Close()
		return nil, err
	}
	if err := s.checkVersion(v); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// checkVersion accepts the schema version v of the opened database: the
// current one, or for a read-only store one from readableSince on.
func (s *Store) checkVersion(v int) error {
	if v == schemaVersion() || (s.readOnly && v >= readableSince && v < schemaVersion()) {
		s.version = v
		return nil
	}
	return fmt.Errorf("store: database schema version %d, this program needs %d (open it read-write once to migrate)", v, schemaVersion())
}

// createPrivate creates path with mode 0600 (whatever the umask) unless it
// exists. SQLite creates the -wal and -shm files with the database's mode.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: create database: %w", err)
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("store: create database: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("store: create database: %w", err)
	}
	return nil
}

// Close closes the database.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		if s.r != nil {
			errs = append(errs, s.r.Close())
		}
		if s.w != nil {
			errs = append(errs, s.w.Close())
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// Path is the database file name.
func (s *Store) Path() string { return s.path }

// ReadOnly reports whether the store was opened read-only.
func (s *Store) ReadOnly() bool { return s.readOnly }

// LockScan takes the exclusive scan lock (flock on "<path>.lock", created 0600)
// without waiting. It returns ErrLocked when another process holds it.
// The lock is per open file, so a second LockScan in the same process also
// gets ErrLocked until unlock is called. A read-only store returns ErrReadOnly.
func (s *Store) LockScan() (unlock func() error, err error) {
	if s.readOnly {
		return nil, ErrReadOnly
	}
	if s.pg != nil {
		return s.pgLockScan()
	}
	f, err := os.OpenFile(s.path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, ErrLocked
		}
		return nil, fmt.Errorf("store: lock: %w", err)
	}
	var once sync.Once
	var uerr error
	return func() error {
		once.Do(func() {
			uerr = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
			if err := f.Close(); uerr == nil {
				uerr = err
			}
			if uerr != nil {
				uerr = fmt.Errorf("store: unlock: %w", uerr)
			}
		})
		return uerr
	}, nil
}

// IntegrityCheck runs PRAGMA integrity_check and returns an error naming the
// first problems unless SQLite answers "ok".
//
// PostgreSQL has no such check (amcheck is an extension): there it only
// checks that the server answers.
func (s *Store) IntegrityCheck(ctx context.Context) error {
	if s.pg != nil {
		if err := s.r.PingContext(ctx); err != nil {
			return fmt.Errorf("store: integrity check: %w", err)
		}
		return nil
	}
	rows, err := s.r.QueryContext(ctx, `PRAGMA integrity_check`)
	if err != nil {
		return fmt.Errorf("store: integrity check: %w", err)
	}
	defer rows.Close()
	var msgs []string
	for rows.Next() {
		var m string
		if err := rows.Scan(&m); err != nil {
			return fmt.Errorf("store: integrity check: %w", err)
		}
		if m != "ok" && len(msgs) < 10 {
			msgs = append(msgs, m)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: integrity check: %w", err)
	}
	if len(msgs) > 0 {
		return fmt.Errorf("store: integrity check failed: %s", strings.Join(msgs, "; "))
	}
	return nil
}

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

// Run statuses.
const (
	RunRunning  = "running"
	RunFinished = "finished"
	RunAborted  = "aborted"
)

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

// Recipient is one line of the register. Address is empty unless the scan
// was asked to keep addresses (--keep-addresses).
type Recipient struct {
	ID      string
	Domain  string // A-label
	Address string
}

// AddRecipients upserts a batch of recipients (keyed by ID) and marks them as
// seen in runID. Idempotent, so a resumed run can re-add them.
// One transaction per call; batches of about 10,000 are efficient.
func (s *Store) AddRecipients(ctx context.Context, runID int64, rs []Recipient) error {
	return s.addRecipients(ctx, runID, rs)
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
	err := s.r.QueryRowContext(ctx, s.q(`SELECT result FROM domains WHERE domain = ?`), normDomain(domain)).Scan(&js)
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
	err = s.r.QueryRowContext(ctx, s.q(`SELECT last_attempt_at, last_error FROM domains WHERE domain = ?`), normDomain(domain)).Scan(&ns, &msg)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, "", ErrNotFound
	}
	if err != nil {
		return time.Time{}, "", fmt.Errorf("store: last attempt: %w", err)
	}
	return fromNS(ns), msg.String, nil
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

// RecipientsByVerdict calls fn for each recipient seen in runID whose domain
// had one of the verdicts in that run.
//
// Recipients are not versioned per run: the database keeps one recipient
// list, each recipient marked with the latest run that added it. So only the
// latest run that added recipients has its complete list; for an earlier run
// (a later run, finished or not, has added recipients since)
// RecipientsByVerdict returns ErrRecipientsReplaced instead of a partial list.
//
// The verdicts are those of the run's history, so the run must be finished;
// an empty verdicts list means every verdict (including "unknown"). Recipients
// come in ID order. It returns ErrNotFound for an unknown run.
// An error from fn stops the iteration and is returned.
func (s *Store) RecipientsByVerdict(ctx context.Context, runID int64, verdicts []result.Verdict, fn func(Recipient, result.Verdict) error) error {
	if _, err := s.GetRun(ctx, runID); err != nil {
		return err
	}
	var later int64
	err := s.r.QueryRowContext(ctx, s.q(`SELECT run_id FROM run_recipient_domains WHERE run_id > ?
		ORDER BY run_id DESC LIMIT 1`), runID).Scan(&later)
	switch {
	case err == nil:
		return fmt.Errorf("%w: run %d's recipients were re-added by run %d", ErrRecipientsReplaced, runID, later)
	case !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("store: recipients by verdict: %w", err)
	}
	// One pass over recipients in ID order (CROSS JOIN keeps it the outer
	// loop; there is no index on recipients.domain), each joined to the
	// run's history row of its domain.
	query := `SELECT r.id, r.domain, coalesce(r.address, ''), rd.verdict
		FROM recipients AS r CROSS JOIN run_domains AS rd ON rd.run_id = ?1 AND rd.domain = r.domain
		WHERE r.last_run = ?1`
	if s.pg != nil { // PostgreSQL plans the join itself; CROSS JOIN takes no ON there
		query = strings.Replace(query, "CROSS JOIN", "JOIN", 1)
	}
	args := []any{runID}
	if len(verdicts) > 0 {
		query += ` AND rd.verdict IN (?` + strings.Repeat(`, ?`, len(verdicts)-1) + `)`
		for _, v := range verdicts {
			args = append(args, string(v))
		}
	}
	query += ` ORDER BY r.id`
	rows, err := s.r.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return fmt.Errorf("store: recipients by verdict: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			rc Recipient
			v  result.Verdict
		)
		if err := rows.Scan(&rc.ID, &rc.Domain, &rc.Address, &v); err != nil {
			return fmt.Errorf("store: recipients by verdict: %w", err)
		}
		if err := fn(rc, v); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: recipients by verdict: %w", err)
	}
	return nil
}

// DataVersion is a number that changes whenever domain results change
// (the gateway polls it to refresh its in-memory cache).
//
// It is a counter stored in the database and bumped in the same transaction
// as the change (SaveResults replacing a result, FinishRun), so readers in
// other processes see it change exactly when the data they read does.
func (s *Store) DataVersion(ctx context.Context) (int64, error) {
	var v int64
	if err := s.r.QueryRowContext(ctx, s.q(`SELECT value FROM meta WHERE key = 'data_version'`)).Scan(&v); err != nil {
		return 0, fmt.Errorf("store: data version: %w", err)
	}
	return v, nil
}

// STSCache is a cached MTA-STS policy (RFC 8461 §5.1).
type STSCache struct {
	Domain    string
	RecordID  string
	Policy    string // the policy text as fetched
	FetchedAt time.Time
	MaxAge    time.Duration
}

// GetSTSPolicy returns the cached policy of a domain or ErrNotFound.
func (s *Store) GetSTSPolicy(ctx context.Context, domain string) (STSCache, error) {
	var (
		p       STSCache
		fetched sql.NullInt64
		maxAge  int64
	)
	err := s.r.QueryRowContext(ctx, s.q(`SELECT domain, record_id, policy, fetched_at, max_age FROM sts_policies WHERE domain = ?`),
		normDomain(domain)).Scan(&p.Domain, &p.RecordID, &p.Policy, &fetched, &maxAge)
	if errors.Is(err, sql.ErrNoRows) {
		return STSCache{}, ErrNotFound
	}
	if err != nil {
		return STSCache{}, fmt.Errorf("store: sts policy: %w", err)
	}
	p.FetchedAt, p.MaxAge = fromNS(fetched), time.Duration(maxAge)
	return p, nil
}

// PutSTSPolicy stores a fetched policy.
// It replaces the domain's previous policy.
func (s *Store) PutSTSPolicy(ctx context.Context, p STSCache) error {
	if s.readOnly {
		return ErrReadOnly
	}
	d := normDomain(p.Domain)
	if d == "" {
		return errors.New("store: sts policy without domain")
	}
	_, err := s.w.ExecContext(ctx, s.q(`INSERT INTO sts_policies(domain, record_id, policy, fetched_at, max_age) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT(domain) DO UPDATE SET record_id = excluded.record_id, policy = excluded.policy,
			fetched_at = excluded.fetched_at, max_age = excluded.max_age`),
		d, p.RecordID, p.Policy, nsOrNil(p.FetchedAt), int64(p.MaxAge))
	if err != nil {
		return fmt.Errorf("store: put sts policy: %w", err)
	}
	return nil
}
