package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	sqlite3 "github.com/mattn/go-sqlite3"
	"github.com/tlsready/tlsready/scanner/result"
)

// Ingestion is the hot path of a scan (millions of register lines), so
// AddRecipients talks to the driver connection directly:
//
//   - multi-row INSERTs (recipientsPerStmt rows per sqlite3_step) instead of
//     one statement per row;
//   - driver.NamedValue arguments reused across statements, bypassing
//     database/sql's per-argument conversion;
//   - a statement without the address column when the chunk has no address
//     (the default: addresses are only kept with --keep-addresses), one bind
//     less per row;
//   - rows sorted by ID so consecutive inserts hit the same B-tree pages;
//   - the run's domain set written once per new domain (runDomainCache).
//
// Measured with BenchmarkAddRecipients; see the package report.
const recipientsPerStmt = 256

// recipientsUpsert is the multi-row upsert of n recipients: ?1 is the run,
// then id, domain (and address when withAddr) per row. A row that is already
// stored unchanged (a resumed run re-adding it) is left alone.
func recipientsUpsert(n int, withAddr bool) string {
	var b strings.Builder
	per := 2
	if withAddr {
		per = 3
		b.WriteString(`INSERT INTO recipients(id, domain, address, last_run) VALUES `)
	} else {
		b.WriteString(`INSERT INTO recipients(id, domain, last_run) VALUES `)
	}
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		p := 2 + per*i
		b.WriteString("(?")
		b.WriteString(strconv.Itoa(p))
		b.WriteString(",?")
		b.WriteString(strconv.Itoa(p + 1))
		if withAddr {
			b.WriteString(",?")
			b.WriteString(strconv.Itoa(p + 2))
		}
		b.WriteString(",?1)")
	}
	b.WriteString(` ON CONFLICT(id) DO UPDATE SET domain = excluded.domain, address = excluded.address, last_run = excluded.last_run
	WHERE recipients.last_run IS NOT excluded.last_run OR recipients.domain IS NOT excluded.domain OR recipients.address IS NOT excluded.address`)
	return b.String()
}

// runDomainsInsert records n domains (?2...) as domains of run ?1.
func runDomainsInsert(n int) string {
	var b strings.Builder
	b.WriteString(`INSERT OR IGNORE INTO run_recipient_domains(run_id, domain) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?1,?")
		b.WriteString(strconv.Itoa(2 + i))
		b.WriteByte(')')
	}
	return b.String()
}

func cmpRecipientID(a, b Recipient) int { return strings.Compare(a.ID, b.ID) }

// sortedByID returns rs in ID order, keeping the batch order of duplicate
// IDs (the last one wins the upsert), without touching the caller's slice.
func sortedByID(rs []Recipient) []Recipient {
	if slices.IsSortedFunc(rs, cmpRecipientID) {
		return rs
	}
	type item struct {
		r Recipient
		i int
	}
	items := make([]item, len(rs))
	for i, r := range rs {
		items[i] = item{r, i}
	}
	// pdqsort with the position as tie-break: a stable order, and much
	// faster than SortStableFunc.
	slices.SortFunc(items, func(a, b item) int {
		if c := strings.Compare(a.r.ID, b.r.ID); c != 0 {
			return c
		}
		return a.i - b.i
	})
	out := make([]Recipient, len(rs))
	for i, it := range items {
		out[i] = it.r
	}
	return out
}

// validRecipient checks a recipient; errors name the batch position only
// (IDs and addresses are personal data).
func validRecipient(i int, r Recipient) error {
	switch {
	case r.ID == "":
		return fmt.Errorf("store: recipient %d of the batch has an empty ID", i)
	case r.Domain == "":
		return fmt.Errorf("store: recipient %d of the batch has no domain", i)
	}
	return nil
}

// runDomainCache remembers which domains this Store has committed to
// run_recipient_domains for the current run, so each is inserted once.
// Rows there are never deleted, so a stale cache only costs an INSERT OR
// IGNORE; it is updated only after a commit.
type runDomainCache struct {
	runID   int64
	domains map[string]struct{}
}

func (s *Store) newRunDomains(runID int64, rs []Recipient) []string {
	s.rdMu.Lock()
	defer s.rdMu.Unlock()
	var seen map[string]struct{}
	if s.rd.runID == runID {
		seen = s.rd.domains
	}
	var out []string
	batch := make(map[string]struct{})
	for _, r := range rs {
		if _, ok := seen[r.Domain]; ok {
			continue
		}
		if _, ok := batch[r.Domain]; ok {
			continue
		}
		batch[r.Domain] = struct{}{}
		out = append(out, r.Domain)
	}
	return out
}

func (s *Store) rememberRunDomains(runID int64, domains []string) {
	s.rdMu.Lock()
	defer s.rdMu.Unlock()
	if s.rd.runID != runID || s.rd.domains == nil {
		s.rd = runDomainCache{runID: runID, domains: make(map[string]struct{})}
	}
	for _, d := range domains {
		s.rd.domains[d] = struct{}{}
	}
}

func (s *Store) addRecipients(ctx context.Context, runID int64, rs []Recipient) error {
	if s.readOnly {
		return ErrReadOnly
	}
	if len(rs) == 0 {
		return nil
	}
	for i, r := range rs {
		if err := validRecipient(i, r); err != nil {
			return err
		}
	}
	rs = sortedByID(rs)
	newDomains := s.newRunDomains(runID, rs)
	if s.pg != nil {
		if err := s.pgAddRecipients(ctx, runID, rs, newDomains); err != nil {
			return fmt.Errorf("store: add recipients: %w", err)
		}
		s.rememberRunDomains(runID, newDomains)
		return nil
	}

	conn, err := s.w.Conn(ctx)
	if err != nil {
		return fmt.Errorf("store: add recipients: %w", err)
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		c, ok := dc.(*sqlite3.SQLiteConn)
		if !ok {
			return fmt.Errorf("unexpected driver connection %T", dc)
		}
		return inTx(c, func() error {
			if err := upsertRecipients(ctx, c, runID, rs); err != nil {
				return err
			}
			return insertRunDomains(ctx, c, runID, newDomains)
		})
	})
	if err != nil {
		return fmt.Errorf("store: add recipients: %w", err)
	}
	s.rememberRunDomains(runID, newDomains)
	return nil
}

// inTx runs fn in an immediate transaction on a driver connection. When even
// the rollback fails the connection is reported bad, so database/sql drops it
// rather than hand out a connection stuck in a transaction.
func inTx(c *sqlite3.SQLiteConn, fn func() error) error {
	if _, err := c.Exec("BEGIN IMMEDIATE", nil); err != nil {
		return err
	}
	err := fn()
	if err == nil {
		if _, err = c.Exec("COMMIT", nil); err == nil {
			return nil
		}
	}
	if _, rerr := c.Exec("ROLLBACK", nil); rerr != nil {
		return errors.Join(err, rerr, driver.ErrBadConn)
	}
	return err
}

// stmtCache prepares each statement shape once per call.
type stmtCache struct {
	c     *sqlite3.SQLiteConn
	stmts map[stmtKey]driver.StmtExecContext
}

type stmtKey struct {
	rows     int
	withAddr bool
}

func (sc *stmtCache) get(k stmtKey, build func(stmtKey) string) (driver.StmtExecContext, error) {
	if st, ok := sc.stmts[k]; ok {
		return st, nil
	}
	st, err := sc.c.Prepare(build(k))
	if err != nil {
		return nil, err
	}
	se, ok := st.(driver.StmtExecContext)
	if !ok {
		st.Close()
		return nil, fmt.Errorf("driver statement %T cannot ExecContext", st)
	}
	if sc.stmts == nil {
		sc.stmts = make(map[stmtKey]driver.StmtExecContext)
	}
	sc.stmts[k] = se
	return se, nil
}

func (sc *stmtCache) close() {
	for _, st := range sc.stmts {
		st.(driver.Stmt).Close()
	}
}

func upsertRecipients(ctx context.Context, c *sqlite3.SQLiteConn, runID int64, rs []Recipient) error {
	sc := stmtCache{c: c}
	defer sc.close()
	args := make([]driver.NamedValue, 1+3*recipientsPerStmt)
	for i := range args {
		args[i].Ordinal = i + 1
	}
	args[0].Value = runID
	for len(rs) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		chunk := rs[:min(len(rs), recipientsPerStmt)]
		rs = rs[len(chunk):]
		withAddr := slices.ContainsFunc(chunk, func(r Recipient) bool { return r.Address != "" })
		st, err := sc.get(stmtKey{len(chunk), withAddr}, func(k stmtKey) string { return recipientsUpsert(k.rows, k.withAddr) })
		if err != nil {
			return err
		}
		n := 1
		for _, r := range chunk {
			args[n].Value, args[n+1].Value = r.ID, r.Domain
			n += 2
			if withAddr {
				if r.Address == "" {
					args[n].Value = nil
				} else {
					args[n].Value = r.Address
				}
				n++
			}
		}
		// Background: cancellation is checked between statements; a
		// cancellable context would cost a goroutine per statement in the driver.
		if _, err := st.ExecContext(context.Background(), args[:n]); err != nil {
			return err
		}
	}
	return nil
}

func insertRunDomains(ctx context.Context, c *sqlite3.SQLiteConn, runID int64, domains []string) error {
	const per = 256
	sc := stmtCache{c: c}
	defer sc.close()
	args := make([]driver.NamedValue, 1+per)
	for i := range args {
		args[i].Ordinal = i + 1
	}
	args[0].Value = runID
	for len(domains) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		chunk := domains[:min(len(domains), per)]
		domains = domains[len(chunk):]
		st, err := sc.get(stmtKey{rows: len(chunk)}, func(k stmtKey) string { return runDomainsInsert(k.rows) })
		if err != nil {
			return err
		}
		for i, d := range chunk {
			args[1+i].Value = d
		}
		if _, err := st.ExecContext(context.Background(), args[:1+len(chunk)]); err != nil {
			return err
		}
	}
	return nil
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
