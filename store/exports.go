package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// Export is an entry of the audit trail of exports of personal data (the
// recipients of a run): when, what, how many, who and where to. The trail
// is kept in the store with the data it is about, copied by Copy, and never
// written by anything but LogExport and FinishExport.
type Export struct {
	ID       int64     `json:"id"`
	At       time.Time `json:"at"`
	Kind     string    `json:"kind"` // "recipients"
	RunID    int64     `json:"run"`
	Verdicts []string  `json:"verdicts"`
	// Recipients written; nil when the export did not finish (it failed,
	// or the process died after the entry was made).
	Recipients *int64 `json:"recipients"`
	OSUser     string `json:"os_user"`
	Host       string `json:"host"`
	Output     string `json:"output"` // the file written, or "-" for standard output
}

// LogExport records an export before it writes anything (so that no
// personal data leaves without an entry) and returns the entry's id;
// FinishExport then records how many recipients it wrote. e.ID and
// e.Recipients are ignored.
func (s *Store) LogExport(ctx context.Context, e Export) (int64, error) {
	if s.readOnly {
		return 0, ErrReadOnly
	}
	var id int64
	if err := s.w.QueryRowContext(ctx, s.q(`INSERT INTO exports(at, kind, run_id, verdicts, recipients, os_user, host, output)
		VALUES (?, ?, ?, ?, NULL, ?, ?, ?) RETURNING id`),
		e.At.UTC().UnixNano(), e.Kind, e.RunID, strings.Join(e.Verdicts, ","), e.OSUser, e.Host, e.Output).Scan(&id); err != nil {
		return 0, fmt.Errorf("store: log export: %w", err)
	}
	return id, nil
}

// FinishExport records that export id wrote n recipients.
func (s *Store) FinishExport(ctx context.Context, id, n int64) error {
	if s.readOnly {
		return ErrReadOnly
	}
	res, err := s.w.ExecContext(ctx, s.q(`UPDATE exports SET recipients = ? WHERE id = ?`), n, id)
	if err != nil {
		return fmt.Errorf("store: finish export: %w", err)
	}
	if k, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("store: finish export: %w", err)
	} else if k == 0 {
		return fmt.Errorf("store: finish export %d: %w", id, ErrNotFound)
	}
	return nil
}

// Exports returns the audit trail of exports made at or after since (the
// zero time: all), newest first, and how many there are in all since then;
// at most limit entries (0: no limit).
func (s *Store) Exports(ctx context.Context, since time.Time, limit int) ([]Export, int64, error) {
	if s.version < 4 { // a read-only store of an older schema: no trail yet
		return nil, 0, nil
	}
	if since.IsZero() {
		since = time.Unix(0, 0)
	}
	var total int64
	if err := s.r.QueryRowContext(ctx, s.q(`SELECT count(*) FROM exports WHERE at >= ?`), since.UnixNano()).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("store: exports: %w", err)
	}
	q := `SELECT id, at, kind, run_id, verdicts, recipients, os_user, host, output FROM exports WHERE at >= ? ORDER BY at DESC, id DESC`
	args := []any{since.UnixNano()}
	if limit > 0 {
		q += ` LIMIT ?`
		args = append(args, limit)
	}
	rows, err := s.r.QueryContext(ctx, s.q(q), args...)
	if err != nil {
		return nil, 0, fmt.Errorf("store: exports: %w", err)
	}
	defer rows.Close()
	var out []Export
	for rows.Next() {
		var (
			e        Export
			at       int64
			verdicts string
			n        sql.NullInt64
		)
		if err := rows.Scan(&e.ID, &at, &e.Kind, &e.RunID, &verdicts, &n, &e.OSUser, &e.Host, &e.Output); err != nil {
			return nil, 0, fmt.Errorf("store: exports: %w", err)
		}
		e.At = time.Unix(0, at).UTC()
		if verdicts != "" {
			e.Verdicts = strings.Split(verdicts, ",")
		}
		if n.Valid {
			e.Recipients = &n.Int64
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("store: exports: %w", err)
	}
	return out, total, nil
}
