package store

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations are the schema steps; migrations[i] takes the database from
// PRAGMA user_version i to i+1. Each step runs in its own transaction
// together with the user_version bump. Append only; never edit a released step.
//
// Times are INTEGER unix nanoseconds, UTC (NULL for the zero time).
// Flags are JSON arrays of strings. result is the JSON of result.Result.
var migrations = []string{
	// 1: initial schema.
	`
CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO meta(key, value) VALUES ('data_version', 0);

CREATE TABLE runs (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	input       TEXT NOT NULL,
	status      TEXT NOT NULL CHECK (status IN ('running', 'finished', 'aborted')),
	started_at  INTEGER NOT NULL,
	finished_at INTEGER,
	stats       TEXT NOT NULL DEFAULT '{}',
	reason      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX runs_status_input ON runs(status, input);

-- One row per register line, keyed by the caller's recipient ID; last_run is
-- the latest run that saw it. WITHOUT ROWID: short rows, looked up by id.
-- Deliberately no index on (last_run, domain): with domains in random order
-- every ingest batch rewrites most of that index's pages (measured: several
-- times slower ingestion at 1M recipients). run_recipient_domains answers the
-- per-run domain questions; FinishRun and RecipientsByVerdict scan once.
CREATE TABLE recipients (
	id       TEXT PRIMARY KEY,
	domain   TEXT NOT NULL,
	address  TEXT,
	last_run INTEGER NOT NULL
) WITHOUT ROWID;

-- The distinct domains of the recipients added in a run (a superset when
-- a recipient ID is re-added with another domain in the same run).
CREATE TABLE run_recipient_domains (
	run_id INTEGER NOT NULL,
	domain TEXT NOT NULL,
	PRIMARY KEY (run_id, domain)
) WITHOUT ROWID;

-- The latest known result of each domain. A rowid table: result JSON can be
-- several KiB, too large for WITHOUT ROWID.
CREATE TABLE domains (
	domain          TEXT PRIMARY KEY,
	verdict         TEXT NOT NULL,
	flags           TEXT NOT NULL DEFAULT '[]',
	scanned_at      INTEGER NOT NULL,
	run_id          INTEGER,
	result          TEXT NOT NULL,
	last_attempt_at INTEGER,
	last_error      TEXT
);

-- A finished run's snapshot: citizens per domain and the verdict then.
CREATE TABLE run_domains (
	run_id   INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
	domain   TEXT NOT NULL,
	citizens INTEGER NOT NULL,
	verdict  TEXT NOT NULL,
	flags    TEXT NOT NULL DEFAULT '[]',
	PRIMARY KEY (run_id, domain)
) WITHOUT ROWID;
CREATE INDEX run_domains_run_citizens ON run_domains(run_id, citizens DESC, domain);

CREATE TABLE sts_policies (
	domain     TEXT PRIMARY KEY,
	record_id  TEXT NOT NULL,
	policy     TEXT NOT NULL,
	fetched_at INTEGER,
	max_age    INTEGER NOT NULL
);
`,
	// 2: per-run verdict totals (RunVerdictTotals, a report's trend) from a
	// covering index instead of the run's full history rows: about 3x faster
	// at a million domains, for about 10% more time in FinishRun.
	`
CREATE INDEX run_domains_run_verdict ON run_domains(run_id, verdict, citizens);
`,
	// 3: per-row change version (resultsRawSince): the data version of the
	// SaveResults that last replaced the row's result; 0 for rows saved
	// before this step (no row rewrite: ADD COLUMN with a constant default).
	// The index finds the rows changed since a version (the gateway's
	// incremental reload) without a pass over the table.
	`
ALTER TABLE domains ADD COLUMN changed_version INTEGER NOT NULL DEFAULT 0;
CREATE INDEX domains_changed ON domains(changed_version);
`,
	// 4: the audit trail of exports of personal data (LogExport): when,
	// what (the run and verdicts), how many recipients (NULL until the
	// export finished), who (the operating-system user, the host) and where
	// to (a file name, or "-" for standard output).
	`
CREATE TABLE exports (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	at         INTEGER NOT NULL,
	kind       TEXT NOT NULL,
	run_id     INTEGER NOT NULL,
	verdicts   TEXT NOT NULL,
	recipients INTEGER,
	os_user    TEXT NOT NULL,
	host       TEXT NOT NULL,
	output     TEXT NOT NULL
);
`,
	// The gateway's read model (domain_answers, see answers.go), filled
	// from the stored results.
	goStep(answersSchema, backfillAnswers),
	// 6: gateway pins, their audit trail, and each domain's previous
	// observation in domain_answers (see pins.go; 'prev_' columns empty
	// for rows saved before this step: no previous observation).
	pinsSchema,
	// 7: the tables of a run shared by several scan workers exist on
	// PostgreSQL only (leases.go): SQLite runs one scan at a time, so its
	// step 7 creates nothing and keeps the versions of the two in step.
	`SELECT 1;`,
}

// readableSince is the oldest schema version a read-only Store opens (a
// reader must not fail on a database no scan has migrated since the program
// was upgraded): the steps after it only add tables a reader does without,
// read as empty (4: exports, Exports; 6: pins, Pins; 7: shared-run tables,
// used only by scan workers), or read otherwise
// (domain_answers: AnswersSince and LookupAnswer decode the result JSON
// instead; before 6 an answer has no previous observation).
const readableSince = 3

// schemaVersion is the user_version a fully migrated database has.
func schemaVersion() int { return len(migrations) }

func userVersion(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (int, error) {
	var v int
	if err := q.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil {
		return 0, fmt.Errorf("store: read schema version: %w", err)
	}
	return v, nil
}

func rebindNone(q string) string { return q }

// migrate applies the missing steps, each in an immediate transaction, so two
// processes opening a new database at once do not both apply a step.
func migrate(ctx context.Context, db *sql.DB) error {
	for {
		done, err := migrateStep(ctx, db)
		if err != nil || done {
			return err
		}
	}
}

func migrateStep(ctx context.Context, db *sql.DB) (done bool, err error) {
	tx, err := db.BeginTx(ctx, nil) // the write pool begins IMMEDIATE
	if err != nil {
		return false, fmt.Errorf("store: migrate: %w", err)
	}
	defer tx.Rollback()
	v, err := userVersion(ctx, tx)
	if err != nil {
		return false, err
	}
	switch {
	case v > schemaVersion():
		return false, fmt.Errorf("store: database schema version %d is newer than this program's (%d)", v, schemaVersion())
	case v == schemaVersion():
		return true, nil
	}
	if err := runStep(ctx, tx, migrations[v], rebindNone); err != nil {
		return false, fmt.Errorf("store: migrate to schema version %d: %w", v+1, err)
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, v+1)); err != nil {
		return false, fmt.Errorf("store: migrate to schema version %d: %w", v+1, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("store: migrate to schema version %d: %w", v+1, err)
	}
	return false, nil
}
