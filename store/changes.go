package store

import (
	"context"
	"database/sql"
	"fmt"
)

// resultsRawSince calls fn with each domain and the JSON of its latest stored
// result (a result.Result) whose result was replaced after data version
// since — every stored result when since is 0 — and returns the data
// version the rows are consistent with. The version and the rows are read in
// one read transaction: the rows are exactly the results replaced by the
// changes (since, version], each once with its latest result, so a reader
// that holds every result as of since and applies them holds every result as
// of version. Pass that version as since to fetch the next changes.
//
// Rows come in no particular order (since > 0: in change order, through an
// index; since 0: in table order, the fastest full pass). Result rows are
// never deleted. A returned version below since means that the database is
// not the one since was read from (replaced by an older copy): read it in
// full again.
//
// raw is only valid during the call (the row's buffer, reused for the next
// row): fn must copy it to keep it, and must not modify it. An error from fn
// stops the iteration and is returned.
func (s *Store) resultsRawSince(ctx context.Context, since int64, fn func(domain string, raw []byte) error) (version int64, err error) {
	var opts *sql.TxOptions // SQLite, deferred: the snapshot starts at the first read
	if s.pg != nil {
		opts = &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true} // one snapshot for both reads
	}
	tx, err := s.r.BeginTx(ctx, opts)
	if err != nil {
		return 0, fmt.Errorf("store: results since: %w", err)
	}
	defer tx.Rollback()
	if err := tx.QueryRowContext(ctx, s.q(`SELECT value FROM meta WHERE key = 'data_version'`)).Scan(&version); err != nil {
		return 0, fmt.Errorf("store: results since: data version: %w", err)
	}
	query, args := `SELECT domain, result FROM domains`, []any(nil)
	if since > 0 {
		query, args = `SELECT domain, result FROM domains WHERE changed_version > ? ORDER BY changed_version`, []any{since}
	}
	rows, err := tx.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return 0, fmt.Errorf("store: results since: %w", err)
	}
	if err := eachRawResult(rows, "store: results since", fn); err != nil {
		return 0, err
	}
	return version, nil
}
