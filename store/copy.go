package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
)

// ErrNotEmpty: Copy's destination already holds runs, results, recipients
// or MTA-STS policies.
var ErrNotEmpty = errors.New("store: destination database is not empty")

// column kinds of copyTables.
const (
	colInt   = iota // INTEGER / BIGINT NOT NULL
	colNInt         // nullable integer
	colText         // TEXT NOT NULL
	colNText        // nullable text
)

type copyColumn struct {
	name string
	kind int
}

type copyTable struct {
	name    string
	orderBy string
	cols    []copyColumn
}

// copyTables are the tables Copy copies, parents first (run_domains
// references runs), with every column of the current schema version. meta
// (the data version) is copied apart; the schema marks are each backend's own.
var copyTables = []copyTable{
	{"runs", "id", []copyColumn{{"id", colInt}, {"input", colText}, {"status", colText}, {"started_at", colInt},
		{"finished_at", colNInt}, {"stats", colText}, {"reason", colText}}},
	{"recipients", "id", []copyColumn{{"id", colText}, {"domain", colText}, {"address", colNText}, {"last_run", colInt}}},
	{"run_recipient_domains", "run_id, domain", []copyColumn{{"run_id", colInt}, {"domain", colText}}},
	{"domains", "domain", []copyColumn{{"domain", colText}, {"verdict", colText}, {"flags", colText}, {"scanned_at", colInt},
		{"run_id", colNInt}, {"result", colText}, {"last_attempt_at", colNInt}, {"last_error", colNText}, {"changed_version", colInt}}},
	{"domain_answers", "domain", []copyColumn{{"domain", colText}, {"verdict", colText}, {"flags", colText}, {"scanned_at", colInt},
		{"mx", colText}, {"sts_mode", colText}, {"sts_mx", colText},
		{"prev_verdict", colText}, {"prev_sts_mode", colText}, {"prev_sts_mx", colText}}},
	{"run_domains", "run_id, domain", []copyColumn{{"run_id", colInt}, {"domain", colText}, {"citizens", colInt},
		{"verdict", colText}, {"flags", colText}}},
	{"sts_policies", "domain", []copyColumn{{"domain", colText}, {"record_id", colText}, {"policy", colText},
		{"fetched_at", colNInt}, {"max_age", colInt}}},
	{"exports", "id", []copyColumn{{"id", colInt}, {"at", colInt}, {"kind", colText}, {"run_id", colInt}, {"verdicts", colText},
		{"recipients", colNInt}, {"os_user", colText}, {"host", colText}, {"output", colText}}},
	{"pins", "domain", []copyColumn{{"domain", colText}, {"policy", colText}, {"reason", colText}, {"expires_at", colNInt},
		{"at", colInt}, {"os_user", colText}, {"host", colText}}},
	{"pin_audit", "id", []copyColumn{{"id", colInt}, {"at", colInt}, {"action", colText}, {"domain", colText},
		{"old_policy", colText}, {"new_policy", colText}, {"reason", colText}, {"expires_at", colNInt},
		{"os_user", colText}, {"host", colText}}},
}

// Summary is what Copy verifies: the rows of each table, the data version,
// and a checksum of the verdicts (every domain's latest verdict and every
// finished run's history rows), equal for two databases with the same
// content whatever their backends.
type Summary struct {
	Rows        map[string]int64 `json:"rows"` // per table
	DataVersion int64            `json:"data_version"`
	Verdicts    string           `json:"verdicts_sha256"`
}

// Equal reports whether two summaries are the same.
func (a Summary) Equal(b Summary) bool {
	return maps.Equal(a.Rows, b.Rows) && a.DataVersion == b.DataVersion && a.Verdicts == b.Verdicts
}

// Tables lists Summary.Rows's tables in copy order.
func (a Summary) Tables() []string {
	var out []string
	for _, t := range copyTables {
		out = append(out, t.name)
	}
	return out
}

// Summarize counts the rows of every table and checksums the verdicts, in
// one read transaction.
func (s *Store) Summarize(ctx context.Context) (Summary, error) {
	tx, err := s.readTx(ctx)
	if err != nil {
		return Summary{}, fmt.Errorf("store: summarize: %w", err)
	}
	defer tx.Rollback()
	sum := Summary{Rows: map[string]int64{}}
	for _, t := range copyTables {
		var n int64
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM `+t.name).Scan(&n); err != nil {
			return Summary{}, fmt.Errorf("store: summarize: %w", err)
		}
		sum.Rows[t.name] = n
	}
	if err := tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'data_version'`).Scan(&sum.DataVersion); err != nil {
		return Summary{}, fmt.Errorf("store: summarize: %w", err)
	}
	h := sha256.New()
	for _, q := range []string{
		`SELECT domain, verdict, '' FROM domains ORDER BY domain`,
		`SELECT domain, verdict, CAST(run_id AS TEXT) || ' ' || CAST(citizens AS TEXT) FROM run_domains ORDER BY run_id, domain`,
	} {
		rows, err := tx.QueryContext(ctx, q)
		if err != nil {
			return Summary{}, fmt.Errorf("store: summarize: %w", err)
		}
		var a, b, c string
		for rows.Next() {
			if err := rows.Scan(&a, &b, &c); err != nil {
				rows.Close()
				return Summary{}, fmt.Errorf("store: summarize: %w", err)
			}
			fmt.Fprintf(h, "%s\t%s\t%s\n", a, b, c)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return Summary{}, fmt.Errorf("store: summarize: %w", err)
		}
		h.Write([]byte("--\n"))
	}
	sum.Verdicts = hex.EncodeToString(h.Sum(nil))
	return sum, nil
}

// readTx begins a read transaction that sees one snapshot.
func (s *Store) readTx(ctx context.Context) (*sql.Tx, error) {
	var opts *sql.TxOptions // SQLite: a deferred transaction is one snapshot
	if s.pg != nil {
		opts = &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}
	}
	return s.r.BeginTx(ctx, opts)
}

// copyBatch is the rows per INSERT statement in Copy (at most 10 columns:
// well under SQLite's 32766 and PostgreSQL's 65535 parameters).
const copyBatch = 500

// Copy copies every table of src into dst, an empty database of either
// backend, in one transaction of dst, and verifies the copy: the Summary of
// both must be equal, else the error says how they differ (the copy is then
// committed already; use a new destination). It returns the Summary.
//
// progress, when not nil, is called after each table with its row count.
// src should not be written meanwhile (the caller holds its LockScan); it
// is read in one snapshot.
func Copy(ctx context.Context, dst, src *Store, progress func(table string, rows int64)) (Summary, error) {
	if dst.readOnly {
		return Summary{}, ErrReadOnly
	}
	before, err := dst.Summarize(ctx)
	if err != nil {
		return Summary{}, err
	}
	for _, t := range before.Tables() {
		if n := before.Rows[t]; n > 0 {
			return Summary{}, fmt.Errorf("%w: %s has %d rows in %s", ErrNotEmpty, RedactURL(dst.path), n, t)
		}
	}
	rtx, err := src.readTx(ctx)
	if err != nil {
		return Summary{}, fmt.Errorf("store: copy: %w", err)
	}
	defer rtx.Rollback()
	wtx, err := dst.w.BeginTx(ctx, nil)
	if err != nil {
		return Summary{}, fmt.Errorf("store: copy: %w", err)
	}
	defer wtx.Rollback()
	for _, t := range copyTables {
		n, err := copyTableRows(ctx, dst, wtx, rtx, t)
		if err != nil {
			return Summary{}, fmt.Errorf("store: copy %s: %w", t.name, err)
		}
		if progress != nil {
			progress(t.name, n)
		}
	}
	var version int64
	if err := rtx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'data_version'`).Scan(&version); err != nil {
		return Summary{}, fmt.Errorf("store: copy: data version: %w", err)
	}
	if _, err := wtx.ExecContext(ctx, dst.q(`UPDATE meta SET value = ? WHERE key = 'data_version'`), version); err != nil {
		return Summary{}, fmt.Errorf("store: copy: data version: %w", err)
	}
	if dst.pg != nil {
		// Rows inserted with their ids leave the identity behind: the next
		// BeginRun must get an id above the copied ones (SQLite's
		// AUTOINCREMENT follows inserted ids by itself).
		for _, t := range []string{"runs", "exports", "pin_audit"} {
			if _, err := wtx.ExecContext(ctx, `SELECT setval(pg_get_serial_sequence('`+t+`', 'id'), coalesce(max(id), 0) + 1, false) FROM `+t); err != nil {
				return Summary{}, fmt.Errorf("store: copy: %s ids: %w", t, err)
			}
		}
	}
	if err := wtx.Commit(); err != nil {
		return Summary{}, fmt.Errorf("store: copy: %w", err)
	}
	want, err := src.Summarize(ctx)
	if err != nil {
		return Summary{}, err
	}
	got, err := dst.Summarize(ctx)
	if err != nil {
		return Summary{}, err
	}
	if !got.Equal(want) {
		return got, fmt.Errorf("store: copy: verification failed: source %s, destination %s", describeSummary(want), describeSummary(got))
	}
	return got, nil
}

func describeSummary(s Summary) string {
	var parts []string
	for _, t := range s.Tables() {
		parts = append(parts, fmt.Sprintf("%s=%d", t, s.Rows[t]))
	}
	return fmt.Sprintf("{%s data_version=%d verdicts=%.16s}", strings.Join(parts, " "), s.DataVersion, s.Verdicts)
}

func copyTableRows(ctx context.Context, dst *Store, wtx, rtx *sql.Tx, t copyTable) (int64, error) {
	names := make([]string, len(t.cols))
	for i, c := range t.cols {
		names[i] = c.name
	}
	rows, err := rtx.QueryContext(ctx, `SELECT `+strings.Join(names, ", ")+` FROM `+t.name+` ORDER BY `+t.orderBy)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	stmts := map[int]*sql.Stmt{}
	defer func() {
		for _, st := range stmts {
			st.Close()
		}
	}()
	insert := func(args []any) error {
		n := len(args) / len(t.cols)
		st, ok := stmts[n]
		if !ok {
			var b strings.Builder
			b.WriteString(`INSERT INTO ` + t.name + `(` + strings.Join(names, ", ") + `) VALUES `)
			p := 0
			for i := range n {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteByte('(')
				for j := range t.cols {
					if j > 0 {
						b.WriteByte(',')
					}
					p++
					b.WriteString("?" + strconv.Itoa(p))
				}
				b.WriteByte(')')
			}
			var err error
			if st, err = wtx.PrepareContext(ctx, dst.q(b.String())); err != nil {
				return err
			}
			stmts[n] = st
		}
		_, err := st.ExecContext(ctx, args...)
		return err
	}
	dest := make([]any, len(t.cols))
	for i, c := range t.cols {
		switch c.kind {
		case colInt:
			dest[i] = new(int64)
		case colNInt:
			dest[i] = new(sql.NullInt64)
		case colText:
			dest[i] = new(string)
		case colNText:
			dest[i] = new(sql.NullString)
		}
	}
	var (
		total int64
		args  = make([]any, 0, copyBatch*len(t.cols))
	)
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return total, err
		}
		for _, d := range dest {
			switch v := d.(type) {
			case *int64:
				args = append(args, *v)
			case *string:
				args = append(args, *v)
			case *sql.NullInt64:
				args = append(args, nullable(v.Int64, v.Valid))
			case *sql.NullString:
				args = append(args, nullable(v.String, v.Valid))
			}
		}
		total++
		if len(args) == cap(args) {
			if err := insert(args); err != nil {
				return total, err
			}
			args = args[:0]
		}
	}
	if err := rows.Err(); err != nil {
		return total, err
	}
	if len(args) > 0 {
		if err := insert(args); err != nil {
			return total, err
		}
	}
	return total, nil
}

func nullable[T any](v T, valid bool) any {
	if !valid {
		return nil
	}
	return v
}
