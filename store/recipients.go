package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// recipientsPerStmt is how many rows one multi-row INSERT carries. Binding
// is per value either way; one statement per row costs a database/sql round
// trip and a sqlite3_step per row, which dominates at millions of rows.
const recipientsPerStmt = 128

// recipientsUpsert is the multi-row upsert of n recipients: ?1 is the run,
// then id, domain, address per row. A row that is already stored unchanged
// (a resumed run re-adding it) is left alone, sparing the index update.
func recipientsUpsert(n int) string {
	var b strings.Builder
	b.Grow(64 + n*24 + 200)
	b.WriteString(`INSERT INTO recipients(id, domain, address, last_run) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		p := 2 + 3*i
		b.WriteString("(?")
		b.WriteString(strconv.Itoa(p))
		b.WriteString(",?")
		b.WriteString(strconv.Itoa(p + 1))
		b.WriteString(",?")
		b.WriteString(strconv.Itoa(p + 2))
		b.WriteString(",?1)")
	}
	b.WriteString(` ON CONFLICT(id) DO UPDATE SET domain = excluded.domain, address = excluded.address, last_run = excluded.last_run
	WHERE recipients.last_run IS NOT excluded.last_run OR recipients.domain IS NOT excluded.domain OR recipients.address IS NOT excluded.address`)
	return b.String()
}

func cmpRecipientID(a, b Recipient) int { return strings.Compare(a.ID, b.ID) }

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
	// Insert in key order: consecutive rows then land on the same B-tree
	// pages. Sort a copy; the caller's slice stays as it was.
	if !slices.IsSortedFunc(rs, cmpRecipientID) {
		rs = slices.Clone(rs)
		slices.SortStableFunc(rs, cmpRecipientID)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: add recipients: %w", err)
	}
	defer tx.Rollback()

	exec := func(stmt *sql.Stmt, chunk []Recipient, args []any) error {
		args = args[:1]
		args[0] = runID
		for _, r := range chunk {
			var addr any
			if r.Address != "" {
				addr = r.Address
			}
			args = append(args, r.ID, r.Domain, addr)
		}
		_, err := stmt.ExecContext(ctx, args...)
		return err
	}

	args := make([]any, 0, 1+3*recipientsPerStmt)
	full := len(rs) / recipientsPerStmt * recipientsPerStmt
	if full > 0 {
		stmt, err := tx.PrepareContext(ctx, recipientsUpsert(recipientsPerStmt))
		if err != nil {
			return fmt.Errorf("store: add recipients: %w", err)
		}
		defer stmt.Close()
		for i := 0; i < full; i += recipientsPerStmt {
			if err := exec(stmt, rs[i:i+recipientsPerStmt], args); err != nil {
				return fmt.Errorf("store: add recipients: %w", err)
			}
		}
	}
	if rest := rs[full:]; len(rest) > 0 {
		stmt, err := tx.PrepareContext(ctx, recipientsUpsert(len(rest)))
		if err != nil {
			return fmt.Errorf("store: add recipients: %w", err)
		}
		defer stmt.Close()
		if err := exec(stmt, rest, args); err != nil {
			return fmt.Errorf("store: add recipients: %w", err)
		}
	}
	if err := addRunDomains(ctx, tx, runID, rs); err != nil {
		return fmt.Errorf("store: add recipients: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: add recipients: %w", err)
	}
	return nil
}

// addRunDomains records the batch's distinct domains as domains of runID.
func addRunDomains(ctx context.Context, tx *sql.Tx, runID int64, rs []Recipient) error {
	seen := make(map[string]struct{}, 1024)
	args := []any{runID}
	flush := func() error {
		if len(args) == 1 {
			return nil
		}
		q := `INSERT OR IGNORE INTO run_recipient_domains(run_id, domain) VALUES (?1, ?)` +
			strings.Repeat(`, (?1, ?)`, len(args)-2)
		_, err := tx.ExecContext(ctx, q, args...)
		args = args[:1]
		return err
	}
	for _, r := range rs {
		if _, ok := seen[r.Domain]; ok {
			continue
		}
		seen[r.Domain] = struct{}{}
		args = append(args, r.Domain)
		if len(args) > 500 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}
