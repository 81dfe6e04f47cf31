package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Shared runs: several scan workers (processes, on one machine or several)
// on one PostgreSQL run. The work is claimed with leases held in the
// database (SELECT ... FOR UPDATE SKIP LOCKED), timed by the server's clock:
//
//   - scan_queues: a run's queue is ready (the register was ingested once,
//     the pending domains queued in scan order); with the ingest's totals.
//   - scan_leases: one row per pending domain of the run, in order (ord);
//     a worker claims a batch (ClaimDomains) and renews its leases while it
//     works (RenewLeases); a row is done once the domain's result is saved
//     in the run (domains.run_id). An expired lease is claimed again by
//     any worker, and a domain saved meanwhile is never claimed again.
//   - scan_ip_leases: the worker that may connect to an MX IP in this run
//     (HoldIP). The others ask it for probes (RequestProbe) and read the
//     outcome it stores (PutProbeOutcome) from scan_probes.
//   - scan_workers: the workers that joined the run, their liveness (a
//     scan is in progress while one is live: ScanLocked) and, once their
//     part is done, their counters (ReportWorker), summed by the one
//     FinishSharedRun that finishes the run.
//
// The setup (begin or resume the run, ingest, queue) and the finish are
// done under a session advisory lock (LockRunSetup), one worker at a time;
// the server drops it with the connection of a worker that dies.
//
// SQLite keeps one writer: a second scan is refused (LockScan), and these
// methods return ErrSharedRunsNeedPostgres.

// ErrSharedRunsNeedPostgres is returned by the shared-run methods on SQLite.
var ErrSharedRunsNeedPostgres = errors.New("store: several scan workers on one run need a PostgreSQL database")

// pgSetupLockKey is the advisory lock of a shared run's setup and finish.
const pgSetupLockKey = pgLockKey + 2

// leaseTablesPG is PostgreSQL schema step 7: the shared-run tables
// (idempotent, for databases whose scans created them on first use).
const leaseTablesPG = `
CREATE TABLE IF NOT EXISTS scan_queues (
	run_id    BIGINT PRIMARY KEY,
	total     BIGINT NOT NULL,
	stats     TEXT NOT NULL,
	queued_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS scan_leases (
	run_id  BIGINT NOT NULL,
	domain  TEXT COLLATE "C" NOT NULL,
	ord     INTEGER NOT NULL,
	worker  TEXT,
	expires TIMESTAMPTZ,
	done    BOOLEAN NOT NULL DEFAULT false,
	PRIMARY KEY (run_id, domain)
);
CREATE INDEX IF NOT EXISTS scan_leases_todo ON scan_leases(run_id, ord) WHERE NOT done;
CREATE INDEX IF NOT EXISTS scan_leases_held ON scan_leases(run_id, worker) WHERE NOT done;
CREATE TABLE IF NOT EXISTS scan_ip_leases (
	run_id  BIGINT NOT NULL,
	ip      TEXT COLLATE "C" NOT NULL,
	worker  TEXT NOT NULL,
	expires TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (run_id, ip)
);
CREATE INDEX IF NOT EXISTS scan_ip_leases_worker ON scan_ip_leases(run_id, worker);
CREATE TABLE IF NOT EXISTS scan_probes (
	run_id  BIGINT NOT NULL,
	ip      TEXT COLLATE "C" NOT NULL,
	key     TEXT COLLATE "C" NOT NULL,
	outcome BYTEA,
	PRIMARY KEY (run_id, ip, key)
);
CREATE INDEX IF NOT EXISTS scan_probes_open ON scan_probes(run_id, ip) WHERE outcome IS NULL;
CREATE TABLE IF NOT EXISTS scan_workers (
	run_id    BIGINT NOT NULL,
	worker    TEXT COLLATE "C" NOT NULL,
	joined_at TIMESTAMPTZ NOT NULL DEFAULT now(),
	expires   TIMESTAMPTZ NOT NULL,
	stats     TEXT,
	PRIMARY KEY (run_id, worker)
);
`

// ensureLeaseTables checks that the store can hold a shared run: a
// PostgreSQL database opened for writing (its tables are schema step 7).
func (s *Store) ensureLeaseTables(context.Context) error {
	if s.pg == nil {
		return ErrSharedRunsNeedPostgres
	}
	if s.readOnly {
		return ErrReadOnly
	}
	return nil
}

func ms(d time.Duration) int64 { return d.Milliseconds() }

// LockScanShared takes the scan lock (LockScan) in shared mode, held by
// every worker of a shared run for its lifetime: the workers do not exclude
// each other (the leases share the work), but a LockScan holder (a
// single-process scan of an older tlsready, a copy by migrate) excludes
// them and they it: ErrLocked.
func (s *Store) LockScanShared() (unlock func() error, err error) {
	if s.pg == nil {
		return nil, ErrSharedRunsNeedPostgres
	}
	if s.readOnly {
		return nil, ErrReadOnly
	}
	return s.pgLockScanMode("_shared")
}

// LockRunSetup waits for the shared-run setup lock and holds it until
// unlock: the workers of a run begin or resume it, ingest and queue it, and
// finish it one at a time. The server drops the lock with the connection of
// a worker that dies.
func (s *Store) LockRunSetup(ctx context.Context) (unlock func() error, err error) {
	if err := s.ensureLeaseTables(ctx); err != nil {
		return nil, err
	}
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: setup lock: %w", err)
	}
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, pgSetupLockKey); err != nil {
		conn.Raw(func(any) error { return driver.ErrBadConn })
		conn.Close()
		return nil, fmt.Errorf("store: setup lock: %w", err)
	}
	return pgUnlockOnce(conn, `SELECT pg_advisory_unlock($1)`, pgSetupLockKey, "setup unlock"), nil
}

// RunQueue is a shared run's queue as QueueRun made it.
type RunQueue struct {
	Total int64    // the run's domains
	Stats RunStats // the ingest's totals
}

// RunQueued returns the run's queue, or ok false when none is ready (no
// worker finished ingesting for it yet).
func (s *Store) RunQueued(ctx context.Context, runID int64) (q RunQueue, ok bool, err error) {
	if err := s.ensureLeaseTables(ctx); err != nil {
		return q, false, err
	}
	var js string
	err = s.w.QueryRowContext(ctx, `SELECT total, stats FROM scan_queues WHERE run_id = $1`, runID).Scan(&q.Total, &js)
	if errors.Is(err, sql.ErrNoRows) {
		return q, false, nil
	}
	if err != nil {
		return q, false, fmt.Errorf("store: run queue: %w", err)
	}
	if err := json.Unmarshal([]byte(js), &q.Stats); err != nil {
		return q, false, fmt.Errorf("store: run queue: %w", err)
	}
	return q, true, nil
}

// QueueRun queues the run's pending domains in this order for the workers
// to claim, with the ingest's totals, in one transaction. Domains already
// queued keep their place.
func (s *Store) QueueRun(ctx context.Context, runID int64, pending []string, q RunQueue) error {
	if err := s.ensureLeaseTables(ctx); err != nil {
		return err
	}
	js, err := json.Marshal(q.Stats)
	if err != nil {
		return fmt.Errorf("store: queue run: %w", err)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: queue run: %w", err)
	}
	defer tx.Rollback()
	const batch = 20000
	for i := 0; i < len(pending); i += batch {
		part := pending[i:min(i+batch, len(pending))]
		if _, err := tx.ExecContext(ctx, `INSERT INTO scan_leases(run_id, domain, ord)
			SELECT $1::bigint, u.domain, $2::int + u.n::int - 1 FROM unnest($3::text[]) WITH ORDINALITY AS u(domain, n)
			ON CONFLICT DO NOTHING`, runID, i, part); err != nil {
			return fmt.Errorf("store: queue run: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO scan_queues(run_id, total, stats) VALUES ($1, $2, $3)
		ON CONFLICT (run_id) DO UPDATE SET total = excluded.total, stats = excluded.stats`, runID, q.Total, string(js)); err != nil {
		return fmt.Errorf("store: queue run: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: queue run: %w", err)
	}
	return nil
}

// JoinRun registers worker in the run, live for lease (RenewLeases keeps it
// live). A worker that joined must report (ReportWorker) or expire before
// the run is finished.
func (s *Store) JoinRun(ctx context.Context, runID int64, worker string, lease time.Duration) error {
	if err := s.ensureLeaseTables(ctx); err != nil {
		return err
	}
	if _, err := s.w.ExecContext(ctx, `INSERT INTO scan_workers(run_id, worker, expires)
		VALUES ($1, $2, now() + $3 * interval '1 millisecond')
		ON CONFLICT (run_id, worker) DO UPDATE SET expires = excluded.expires, stats = NULL`, runID, worker, ms(lease)); err != nil {
		return fmt.Errorf("store: join run: %w", err)
	}
	return nil
}

// ClaimDomains leases up to n of the run's queued domains to worker for
// lease: the first in queue order that nobody holds, or whose lease
// expired, and whose result is not saved in the run yet. Workers claiming
// at once get different domains (FOR UPDATE SKIP LOCKED). None: nothing is
// claimable now (WorkLeft says whether anything is left at all).
func (s *Store) ClaimDomains(ctx context.Context, runID int64, worker string, n int, lease time.Duration) ([]string, error) {
	if s.pg == nil {
		return nil, ErrSharedRunsNeedPostgres
	}
	rows, err := s.w.QueryContext(ctx, `UPDATE scan_leases AS l SET worker = $2, expires = now() + $4 * interval '1 millisecond'
		FROM (SELECT c.domain, c.ord FROM scan_leases AS c
			WHERE c.run_id = $1 AND NOT c.done AND (c.worker IS NULL OR c.expires < now())
			AND NOT EXISTS (SELECT 1 FROM domains AS d WHERE d.domain = c.domain AND d.run_id = $1)
			ORDER BY c.ord LIMIT $3 FOR UPDATE SKIP LOCKED) AS pick
		WHERE l.run_id = $1 AND l.domain = pick.domain
		RETURNING l.domain, l.ord`, runID, worker, n, ms(lease))
	if err != nil {
		return nil, fmt.Errorf("store: claim domains: %w", err)
	}
	defer rows.Close()
	type claimed struct {
		d   string
		ord int64
	}
	var cs []claimed
	for rows.Next() {
		var c claimed
		if err := rows.Scan(&c.d, &c.ord); err != nil {
			return nil, fmt.Errorf("store: claim domains: %w", err)
		}
		cs = append(cs, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: claim domains: %w", err)
	}
	// RETURNING does not keep the subquery's order.
	for i := 1; i < len(cs); i++ {
		for j := i; j > 0 && cs[j].ord < cs[j-1].ord; j-- {
			cs[j], cs[j-1] = cs[j-1], cs[j]
		}
	}
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.d
	}
	return out, nil
}

// RenewLeases marks done the worker's domains whose results are saved in
// the run and extends its other leases (domains, MX IPs, the worker's own
// liveness) by lease, in one transaction.
func (s *Store) RenewLeases(ctx context.Context, runID int64, worker string, lease time.Duration) error {
	if s.pg == nil {
		return ErrSharedRunsNeedPostgres
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: renew leases: %w", err)
	}
	defer tx.Rollback()
	for _, q := range []string{
		`UPDATE scan_leases AS l SET done = true FROM domains AS d
			WHERE l.run_id = $1 AND l.worker = $2 AND NOT l.done AND d.domain = l.domain AND d.run_id = $1 AND $3::bigint >= 0`,
		`UPDATE scan_leases SET expires = now() + $3 * interval '1 millisecond' WHERE run_id = $1 AND worker = $2 AND NOT done`,
		`UPDATE scan_ip_leases SET expires = now() + $3 * interval '1 millisecond' WHERE run_id = $1 AND worker = $2`,
		`UPDATE scan_workers SET expires = now() + $3 * interval '1 millisecond' WHERE run_id = $1 AND worker = $2`,
	} {
		if _, err := tx.ExecContext(ctx, q, runID, worker, ms(lease)); err != nil {
			return fmt.Errorf("store: renew leases: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: renew leases: %w", err)
	}
	return nil
}

// WorkLeft marks done the queued domains whose results are saved in the
// run (also those of workers that died after saving them) and counts the
// others: 0 when every domain of the run is judged.
func (s *Store) WorkLeft(ctx context.Context, runID int64) (int64, error) {
	if s.pg == nil {
		return 0, ErrSharedRunsNeedPostgres
	}
	if _, err := s.w.ExecContext(ctx, `UPDATE scan_leases AS l SET done = true FROM domains AS d
		WHERE l.run_id = $1 AND NOT l.done AND d.domain = l.domain AND d.run_id = $1`, runID); err != nil {
		return 0, fmt.Errorf("store: work left: %w", err)
	}
	var n int64
	if err := s.w.QueryRowContext(ctx, `SELECT count(*) FROM scan_leases WHERE run_id = $1 AND NOT done`, runID).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: work left: %w", err)
	}
	return n, nil
}

// HoldIP reports whether worker holds the lease of the MX IP in the run,
// taking it for lease when nobody does or the holder's lease expired.
func (s *Store) HoldIP(ctx context.Context, runID int64, worker, ip string, lease time.Duration) (bool, error) {
	if s.pg == nil {
		return false, ErrSharedRunsNeedPostgres
	}
	var holder string
	err := s.w.QueryRowContext(ctx, `INSERT INTO scan_ip_leases(run_id, ip, worker, expires)
		VALUES ($1, $2, $3, now() + $4 * interval '1 millisecond')
		ON CONFLICT (run_id, ip) DO UPDATE SET worker = excluded.worker, expires = excluded.expires
			WHERE scan_ip_leases.expires < now() OR scan_ip_leases.worker = excluded.worker
		RETURNING worker`, runID, ip, worker, ms(lease)).Scan(&holder)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil // a live worker holds it
	}
	if err != nil {
		return false, fmt.Errorf("store: hold ip: %w", err)
	}
	return holder == worker, nil
}

// ProbeKey names one probe request of a shared run: an MX IP and what is
// asked of it (the scanner's ProbeRequest).
type ProbeKey struct {
	IP, Key string
}

// RequestProbe asks the holder of key.IP's lease for a probe (once per key
// and run, however many ask).
func (s *Store) RequestProbe(ctx context.Context, runID int64, key ProbeKey) error {
	if s.pg == nil {
		return ErrSharedRunsNeedPostgres
	}
	if _, err := s.w.ExecContext(ctx, `INSERT INTO scan_probes(run_id, ip, key) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
		runID, key.IP, key.Key); err != nil {
		return fmt.Errorf("store: request probe: %w", err)
	}
	return nil
}

// ProbeState is what ProbeOutcomes says of one request.
type ProbeState struct {
	Outcome []byte // nil: not answered yet
	Held    bool   // a live worker holds the IP's lease
}

// ProbeOutcomes returns the outcomes of the requests, and whether a live
// worker holds each one's IP, in one query.
func (s *Store) ProbeOutcomes(ctx context.Context, runID int64, keys []ProbeKey) (map[ProbeKey]ProbeState, error) {
	if s.pg == nil {
		return nil, ErrSharedRunsNeedPostgres
	}
	ips := make([]string, len(keys))
	ks := make([]string, len(keys))
	for i, k := range keys {
		ips[i], ks[i] = k.IP, k.Key
	}
	rows, err := s.w.QueryContext(ctx, `SELECT u.ip, u.key, p.outcome, coalesce(l.expires >= now(), false)
		FROM unnest($2::text[], $3::text[]) AS u(ip, key)
		LEFT JOIN scan_probes AS p ON p.run_id = $1 AND p.ip = u.ip AND p.key = u.key
		LEFT JOIN scan_ip_leases AS l ON l.run_id = $1 AND l.ip = u.ip`, runID, ips, ks)
	if err != nil {
		return nil, fmt.Errorf("store: probe outcomes: %w", err)
	}
	defer rows.Close()
	out := make(map[ProbeKey]ProbeState, len(keys))
	for rows.Next() {
		var k ProbeKey
		var st ProbeState
		if err := rows.Scan(&k.IP, &k.Key, &st.Outcome, &st.Held); err != nil {
			return nil, fmt.Errorf("store: probe outcomes: %w", err)
		}
		out[k] = st
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: probe outcomes: %w", err)
	}
	return out, nil
}

// OpenProbeRequests lists the unanswered requests for the MX IPs whose
// leases worker holds.
func (s *Store) OpenProbeRequests(ctx context.Context, runID int64, worker string) ([]ProbeKey, error) {
	if s.pg == nil {
		return nil, ErrSharedRunsNeedPostgres
	}
	rows, err := s.w.QueryContext(ctx, `SELECT p.ip, p.key FROM scan_probes AS p
		JOIN scan_ip_leases AS l ON l.run_id = p.run_id AND l.ip = p.ip
		WHERE p.run_id = $1 AND p.outcome IS NULL AND l.worker = $2`, runID, worker)
	if err != nil {
		return nil, fmt.Errorf("store: open probe requests: %w", err)
	}
	defer rows.Close()
	var out []ProbeKey
	for rows.Next() {
		var k ProbeKey
		if err := rows.Scan(&k.IP, &k.Key); err != nil {
			return nil, fmt.Errorf("store: open probe requests: %w", err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: open probe requests: %w", err)
	}
	return out, nil
}

// PutProbeOutcome stores the outcome of a request (made by the IP's
// holder) for the workers that asked.
func (s *Store) PutProbeOutcome(ctx context.Context, runID int64, key ProbeKey, outcome []byte) error {
	if s.pg == nil {
		return ErrSharedRunsNeedPostgres
	}
	if _, err := s.w.ExecContext(ctx, `INSERT INTO scan_probes(run_id, ip, key, outcome) VALUES ($1, $2, $3, $4)
		ON CONFLICT (run_id, ip, key) DO UPDATE SET outcome = excluded.outcome`, runID, key.IP, key.Key, outcome); err != nil {
		return fmt.Errorf("store: put probe outcome: %w", err)
	}
	return nil
}

// ReportWorker stores a worker's counters once its part of the run is
// done; FinishSharedRun sums them.
func (s *Store) ReportWorker(ctx context.Context, runID int64, worker string, stats RunStats) error {
	if s.pg == nil {
		return ErrSharedRunsNeedPostgres
	}
	js, err := json.Marshal(stats)
	if err != nil {
		return fmt.Errorf("store: report worker: %w", err)
	}
	if _, err := s.w.ExecContext(ctx, `UPDATE scan_workers SET stats = $3 WHERE run_id = $1 AND worker = $2`, runID, worker, string(js)); err != nil {
		return fmt.Errorf("store: report worker: %w", err)
	}
	return nil
}

// FinishSharedRun finishes a shared run once: under the setup lock, when
// the run is still running, no domain is left (WorkLeft) and every worker
// that joined has reported or expired, it calls FinishRun with merge of
// the reported counters and removes the run's leases. finished is true when
// the run is finished (by this call or an earlier one); false with a nil
// error when it is not time yet (call again later).
func (s *Store) FinishSharedRun(ctx context.Context, runID int64, now time.Time, merge func([]RunStats) RunStats) (finished bool, err error) {
	unlock, err := s.LockRunSetup(ctx)
	if err != nil {
		return false, err
	}
	defer unlock()
	run, err := s.GetRun(ctx, runID)
	if err != nil {
		return false, err
	}
	switch run.Status {
	case RunFinished:
		return true, nil
	case RunAborted:
		return false, fmt.Errorf("store: finish run %d: the run was aborted", runID)
	}
	left, err := s.WorkLeft(ctx, runID)
	if err != nil || left > 0 {
		return false, err
	}
	var waiting int
	if err := s.w.QueryRowContext(ctx, `SELECT count(*) FROM scan_workers WHERE run_id = $1 AND stats IS NULL AND expires >= now()`,
		runID).Scan(&waiting); err != nil {
		return false, fmt.Errorf("store: finish run: %w", err)
	}
	if waiting > 0 {
		return false, nil
	}
	rows, err := s.w.QueryContext(ctx, `SELECT stats FROM scan_workers WHERE run_id = $1 AND stats IS NOT NULL ORDER BY joined_at, worker`, runID)
	if err != nil {
		return false, fmt.Errorf("store: finish run: %w", err)
	}
	var reported []RunStats
	for rows.Next() {
		var js string
		var st RunStats
		if err := rows.Scan(&js); err == nil {
			err = json.Unmarshal([]byte(js), &st)
		}
		if err != nil {
			rows.Close()
			return false, fmt.Errorf("store: finish run: %w", err)
		}
		reported = append(reported, st)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return false, fmt.Errorf("store: finish run: %w", err)
	}
	if err := s.FinishRun(ctx, runID, merge(reported), now); err != nil {
		return false, err
	}
	// The leases are of no use once the run is finished (the workers
	// still waiting see it finished); a failure here leaves rows behind,
	// not a wrong run.
	for _, q := range []string{
		`DELETE FROM scan_probes WHERE run_id = $1`,
		`DELETE FROM scan_ip_leases WHERE run_id = $1`,
		`DELETE FROM scan_leases WHERE run_id = $1`,
		`DELETE FROM scan_queues WHERE run_id = $1`,
	} {
		if _, err := s.w.ExecContext(ctx, q, runID); err != nil {
			return true, fmt.Errorf("store: finish run: removing its leases: %w", err)
		}
	}
	return true, nil
}

// LeaveRun removes a worker from the run's live workers (it stopped, e.g.
// interrupted): the run is no longer in progress because of it.
func (s *Store) LeaveRun(ctx context.Context, runID int64, worker string) error {
	if s.pg == nil {
		return ErrSharedRunsNeedPostgres
	}
	if _, err := s.w.ExecContext(ctx, `UPDATE scan_workers SET expires = now() - interval '1 second' WHERE run_id = $1 AND worker = $2 AND stats IS NULL`, runID, worker); err != nil {
		return fmt.Errorf("store: leave run: %w", err)
	}
	if _, err := s.w.ExecContext(ctx, `UPDATE scan_ip_leases SET expires = now() - interval '1 second' WHERE run_id = $1 AND worker = $2`, runID, worker); err != nil {
		return fmt.Errorf("store: leave run: %w", err)
	}
	if _, err := s.w.ExecContext(ctx, `UPDATE scan_leases SET worker = NULL, expires = NULL WHERE run_id = $1 AND worker = $2 AND NOT done`, runID, worker); err != nil {
		return fmt.Errorf("store: leave run: %w", err)
	}
	return nil
}

// liveWorkers reports whether a worker of a running shared run is live
// (ScanLocked on PostgreSQL). False when the tables do not exist.
func (s *Store) liveWorkers(ctx context.Context) (bool, error) {
	var exists bool
	if err := s.r.QueryRowContext(ctx, `SELECT to_regclass('scan_workers') IS NOT NULL`).Scan(&exists); err != nil || !exists {
		return false, err
	}
	var live bool
	err := s.r.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM scan_workers AS w JOIN runs AS r ON r.id = w.run_id
		WHERE r.status = 'running' AND w.expires >= now())`).Scan(&live)
	return live, err
}
