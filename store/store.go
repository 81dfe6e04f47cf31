// Package store keeps scan runs, recipients and per-domain results in SQLite
// (mattn/go-sqlite3, WAL). It is the cache that lookup, report and the
// gateway read while a batch scan writes.
//
// One process writes (the scan, holding LockScan and feeding a Writer); any
// number of Stores opened ReadOnly, in this or other processes, read what it
// has committed. The database runs in WAL mode with synchronous=NORMAL: a
// crash of the process (kill -9) loses nothing committed; a power loss may
// lose the last transactions but never corrupts the file.
//
// PostgreSQL is the other backend (postgres.go), behind the same API, for
// several gateway nodes and scan workers. The store owns the schema, its
// versioned migrations and every query; it must not know how a domain is
// scanned or how an answer is presented: it keeps result.Result values and
// the read model the gateway needs.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
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
	return s.opened(userVersion(ctx, r))
}

// opened ends an open of either backend with the schema version v read
// from the database (or the error of reading it): s if checkVersion
// accepts v, else the error, s closed.
func (s *Store) opened(v int, err error) (*Store, error) {
	if err == nil {
		err = s.checkVersion(v)
	}
	if err != nil {
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
