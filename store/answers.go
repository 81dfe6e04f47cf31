package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tlsready/tlsready/scanner/dnsname"
	"github.com/tlsready/tlsready/scanner/result"
)

// The gateway's read model: domain_answers holds, for every domains row,
// the few values of its result the gateway answers from, in columns, so
// that a cache load reads short rows and decodes no result JSON.
// SaveResults writes it with the result; the schema step that added it
// filled it from the stored results (backfillAnswers).

// Answer is the read model of a domain's latest stored result: what the
// gateway answers from.
type Answer struct {
	Domain string
	// Verdict is the result's verdict; empty when the stored result did
	// not decode (a row the schema step could not read), and not one of
	// result.Verdicts only in such a result.
	Verdict   result.Verdict
	Flags     []string // nil when none
	ScannedAt int64    // Unix nanoseconds, 0 for the zero time
	// MX is the result's MX host names in its order, joined by commas;
	// names that are empty or hold a comma are left out.
	MX string
	// STSMode is the MTA-STS policy's mode, empty without a policy.
	STSMode string
	// STSMX is the policy's mx patterns joined by newlines (a policy
	// file's patterns are lines: none holds one).
	STSMX string
	// The previous observation: the verdict and MTA-STS policy of the
	// result this one replaced (SaveResults), for the gateway's
	// confirmation rule. PrevVerdict is empty when there was none (the
	// domain's first result, or one saved before schema version 6).
	PrevVerdict result.Verdict
	PrevSTSMode string
	PrevSTSMX   string
}

// answerOf is the read model of r.
func answerOf(domain string, r *result.Result) Answer {
	a := Answer{Domain: domain, Verdict: r.Verdict, Flags: r.Flags}
	if len(a.Flags) == 0 {
		a.Flags = nil
	}
	if !r.ScannedAt.IsZero() {
		a.ScannedAt = r.ScannedAt.UnixNano()
	}
	var mx strings.Builder
	for _, h := range r.MX {
		if h.Name == "" || strings.IndexByte(h.Name, ',') >= 0 {
			continue
		}
		if mx.Len() > 0 {
			mx.WriteByte(',')
		}
		mx.WriteString(h.Name)
	}
	a.MX = mx.String()
	if p := r.MTASTS; p != nil {
		a.STSMode = p.Mode
		a.STSMX = strings.Join(p.MX, "\n")
	}
	return a
}

// answerOfJSON is the read model of a stored result's JSON; a result that
// does not decode has an empty verdict and nothing else.
func answerOfJSON(domain string, raw []byte) Answer {
	var r result.Result
	if err := json.Unmarshal(raw, &r); err != nil {
		return Answer{Domain: domain}
	}
	return answerOf(domain, &r)
}

// answersSchema is the schema step of domain_answers on SQLite; its
// backfill fills the table from the stored results.
const answersSchema = `
CREATE TABLE domain_answers (
	domain     TEXT PRIMARY KEY,
	verdict    TEXT NOT NULL,
	flags      TEXT NOT NULL DEFAULT '[]',
	scanned_at INTEGER NOT NULL,
	mx         TEXT NOT NULL DEFAULT '',
	sts_mode   TEXT NOT NULL DEFAULT '',
	sts_mx     TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
`

// pgAnswersSchema is answersSchema on PostgreSQL.
const pgAnswersSchema = `
CREATE TABLE domain_answers (
	domain     TEXT COLLATE "C" PRIMARY KEY,
	verdict    TEXT NOT NULL,
	flags      TEXT NOT NULL DEFAULT '[]',
	scanned_at BIGINT NOT NULL,
	mx         TEXT NOT NULL DEFAULT '',
	sts_mode   TEXT NOT NULL DEFAULT '',
	sts_mx     TEXT NOT NULL DEFAULT ''
);
`

// answersVersion is the schema version from which domain_answers exists.
var answersVersion = slices.Index(migrations, answersSchema) + 1

// backfills are the schema steps that run Go after their SQL, in the same
// transaction, by the step's SQL (goStep); q rebinds a query for the
// database's backend.
var backfills = map[string]func(ctx context.Context, tx *sql.Tx, q func(string) string) error{}

// goStep is a schema step whose SQL is followed by fn.
func goStep(query string, fn func(ctx context.Context, tx *sql.Tx, q func(string) string) error) string {
	backfills[query] = fn
	return query
}

// runStep applies one schema step in tx.
func runStep(ctx context.Context, tx *sql.Tx, step string, q func(string) string) error {
	if _, err := tx.ExecContext(ctx, step); err != nil {
		return err
	}
	if fn := backfills[step]; fn != nil {
		return fn(ctx, tx, q)
	}
	return nil
}

// backfillBatch is the rows backfillAnswers reads, decodes and inserts at a
// time (7 parameters a row).
const backfillBatch = 500

// backfillAnswers fills domain_answers from the stored results, reading
// them in batches in domain order (one batch in memory at a time): each
// result is decoded in full (encoding/json), as Lookup does. A million
// results take about a minute (see the README's store section).
func backfillAnswers(ctx context.Context, tx *sql.Tx, q func(string) string) error {
	after := ""
	batch := make([]Answer, 0, backfillBatch)
	for {
		batch = batch[:0]
		rows, err := tx.QueryContext(ctx, q(`SELECT domain, result FROM domains WHERE domain > ? ORDER BY domain LIMIT ?`), after, backfillBatch)
		if err != nil {
			return fmt.Errorf("read results: %w", err)
		}
		err = eachRawResult(rows, "read results", func(domain string, raw []byte) error {
			batch = append(batch, answerOfJSON(domain, raw))
			return nil
		})
		if err != nil {
			return err
		}
		if len(batch) == 0 {
			return nil
		}
		if err := insertAnswers(ctx, tx, q, batch); err != nil {
			return err
		}
		after = batch[len(batch)-1].Domain
	}
}

// insertAnswers inserts new domain_answers rows in one statement.
func insertAnswers(ctx context.Context, tx *sql.Tx, q func(string) string, as []Answer) error {
	var b strings.Builder
	b.WriteString(`INSERT INTO domain_answers(domain, verdict, flags, scanned_at, mx, sts_mode, sts_mx) VALUES `)
	args := make([]any, 0, 7*len(as))
	for i, a := range as {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`(?,?,?,?,?,?,?)`)
		flags, err := flagsJSON(a.Flags)
		if err != nil {
			return fmt.Errorf("answer of %s: %w", a.Domain, err)
		}
		args = append(args, a.Domain, string(a.Verdict), flags, a.ScannedAt, a.MX, a.STSMode, a.STSMX)
	}
	if _, err := tx.ExecContext(ctx, q(b.String()), args...); err != nil {
		return fmt.Errorf("write answers: %w", err)
	}
	return nil
}

// putAnswerQuery writes the read model of a saved result (SaveResults).
const putAnswerQuery = `INSERT INTO domain_answers(domain, verdict, flags, scanned_at, mx, sts_mode, sts_mx)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(domain) DO UPDATE SET verdict = excluded.verdict, flags = excluded.flags,
			scanned_at = excluded.scanned_at, mx = excluded.mx, sts_mode = excluded.sts_mode, sts_mx = excluded.sts_mx,
			prev_verdict = domain_answers.verdict, prev_sts_mode = domain_answers.sts_mode, prev_sts_mx = domain_answers.sts_mx`

// answerColumns are the columns scanAnswer reads: with the previous
// observation from pinsVersion on.
func (s *Store) answerColumns() string {
	if s.version < pinsVersion {
		return `a.domain, a.verdict, a.flags, a.scanned_at, a.mx, a.sts_mode, a.sts_mx, '', '', ''`
	}
	return `a.domain, a.verdict, a.flags, a.scanned_at, a.mx, a.sts_mode, a.sts_mx, a.prev_verdict, a.prev_sts_mode, a.prev_sts_mx`
}

// scanAnswer reads the current row of answerColumns into a.
func scanAnswer(rows *sql.Rows, a *Answer) error {
	var verdict, flags, prev sql.RawBytes
	if err := rows.Scan(&a.Domain, &verdict, &flags, &a.ScannedAt, &a.MX, &a.STSMode, &a.STSMX,
		&prev, &a.PrevSTSMode, &a.PrevSTSMX); err != nil {
		return err
	}
	a.Verdict = internVerdict(verdict)
	a.PrevVerdict = ""
	if len(prev) > 0 {
		a.PrevVerdict = internVerdict(prev)
	}
	var err error
	if a.Flags, err = parseFlags(string(flags)); err != nil {
		return fmt.Errorf("stored flags of %s: %w", a.Domain, err)
	}
	return nil
}

// internVerdict is v as a result.Verdict, without allocating for the ten.
func internVerdict(v []byte) result.Verdict {
	for _, known := range result.Verdicts {
		if string(known) == string(v) {
			return known
		}
	}
	return result.Verdict(v)
}

// AnswersSince calls fn with the read model of each domain whose result was
// replaced after data version since — every domain when since is 0 — and
// returns the data version the rows are consistent with, as resultsRawSince
// does for the result JSON (the same rows, versions and order; see there).
//
// a is only valid during the call (reused for the next row): fn must copy
// it to keep it. An error from fn stops the iteration and is returned.
//
// A read-only store of a database from before the read model (schema
// versions below answersVersion) decodes the result JSON instead, slower.
func (s *Store) AnswersSince(ctx context.Context, since int64, fn func(a *Answer) error) (version int64, err error) {
	if s.version < answersVersion {
		var a Answer
		return s.resultsRawSince(ctx, since, func(domain string, raw []byte) error {
			a = answerOfJSON(domain, raw)
			return fn(&a)
		})
	}
	tx, err := s.readTx(ctx)
	if err != nil {
		return 0, fmt.Errorf("store: answers since: %w", err)
	}
	defer tx.Rollback()
	if err := tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'data_version'`).Scan(&version); err != nil {
		return 0, fmt.Errorf("store: answers since: data version: %w", err)
	}
	query, args := `SELECT `+s.answerColumns()+` FROM domain_answers AS a`, []any(nil)
	if since > 0 {
		query, args = `SELECT `+s.answerColumns()+` FROM domains AS d JOIN domain_answers AS a ON a.domain = d.domain
			WHERE d.changed_version > ? ORDER BY d.changed_version`, []any{since}
	}
	rows, err := tx.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return 0, fmt.Errorf("store: answers since: %w", err)
	}
	defer rows.Close()
	var a Answer
	for rows.Next() {
		if err := scanAnswer(rows, &a); err != nil {
			return 0, fmt.Errorf("store: answers since: %w", err)
		}
		if err := fn(&a); err != nil {
			return 0, err
		}
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("store: answers since: %w", err)
	}
	return version, nil
}

// LookupAnswer returns the read model of a domain's latest stored result
// (the domain as Lookup takes it), or ErrNotFound.
func (s *Store) LookupAnswer(ctx context.Context, domain string) (Answer, error) {
	domain = dnsname.Key(domain)
	var a Answer
	if s.version < answersVersion {
		var js []byte
		err := s.r.QueryRowContext(ctx, s.q(`SELECT result FROM domains WHERE domain = ?`), domain).Scan(&js)
		if errors.Is(err, sql.ErrNoRows) {
			return Answer{}, ErrNotFound
		}
		if err != nil {
			return Answer{}, fmt.Errorf("store: lookup answer: %w", err)
		}
		return answerOfJSON(domain, js), nil
	}
	rows, err := s.r.QueryContext(ctx, s.q(`SELECT `+s.answerColumns()+` FROM domain_answers AS a WHERE a.domain = ?`), domain)
	if err != nil {
		return Answer{}, fmt.Errorf("store: lookup answer: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return Answer{}, fmt.Errorf("store: lookup answer: %w", err)
		}
		return Answer{}, ErrNotFound
	}
	if err := scanAnswer(rows, &a); err != nil {
		return Answer{}, fmt.Errorf("store: lookup answer: %w", err)
	}
	return a, nil
}

// ScannedTime is ScannedAt as a time (UTC; the zero time for 0).
func (a *Answer) ScannedTime() time.Time {
	if a.ScannedAt == 0 {
		return time.Time{}
	}
	return time.Unix(0, a.ScannedAt).UTC()
}
