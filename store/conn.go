package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"net/url"
	"path/filepath"

	sqlite3 "github.com/mattn/go-sqlite3"
)

// busyTimeoutMS is how long a statement waits for another connection's
// (or process's) lock before failing with SQLITE_BUSY.
const busyTimeoutMS = 5000

// connector opens SQLite connections with our PRAGMAs, without registering a
// driver name globally (database/sql.Register is package-level state).
type connector struct {
	dsn    string
	driver *sqlite3.SQLiteDriver
}

func (c *connector) Connect(context.Context) (driver.Conn, error) { return c.driver.Open(c.dsn) }
func (c *connector) Driver() driver.Driver                        { return c.driver }

// dsn builds the file: URI for path. mattn/go-sqlite3 consumes the
// underscore parameters itself and hands the rest (mode=ro) to SQLite.
func dsn(path string, readOnly, queryOnly bool) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("store: %w", err)
	}
	q := url.Values{}
	q.Set("_busy_timeout", fmt.Sprint(busyTimeoutMS))
	q.Set("_mutex", "no")         // database/sql never shares a conn between goroutines
	q.Set("_txlock", "immediate") // take the write lock at BEGIN: no lock-upgrade deadlocks
	if readOnly {
		q.Set("mode", "ro")
		q.Set("_txlock", "deferred")
	}
	if queryOnly {
		q.Set("_query_only", "1")
		q.Set("_txlock", "deferred")
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: q.Encode()}
	// url.URL renders "file:///abs"; SQLite accepts "file:" + absolute path.
	return "file:" + u.EscapedPath() + "?" + u.RawQuery, nil
}

// pragmas run on every new connection, in this order (page_size only has an
// effect on a new, empty database and must precede journal_mode=WAL).
func pragmas(readOnly bool, cacheKiB int) []string {
	p := []string{fmt.Sprintf("PRAGMA busy_timeout = %d", busyTimeoutMS)}
	if !readOnly {
		p = append(p,
			"PRAGMA page_size = 8192",
			"PRAGMA journal_mode = WAL",
		)
	}
	p = append(p,
		"PRAGMA synchronous = NORMAL", // with WAL: durable across process crashes, commits without fsync
		"PRAGMA foreign_keys = ON",
		fmt.Sprintf("PRAGMA cache_size = -%d", cacheKiB),
		// No mmap and temp b-trees on disk: FinishRun groups ten million
		// recipients, and the scan's peak RSS must stay well under 1 GiB.
		"PRAGMA mmap_size = 0",
		"PRAGMA temp_store = FILE",
	)
	return p
}

func openDB(path string, readOnly, queryOnly bool, cacheKiB int) (*sql.DB, error) {
	d, err := dsn(path, readOnly, queryOnly)
	if err != nil {
		return nil, err
	}
	ps := pragmas(readOnly || queryOnly, cacheKiB)
	drv := &sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
		for _, p := range ps {
			if _, err := c.Exec(p, nil); err != nil {
				return fmt.Errorf("store: %s: %w", p, err)
			}
		}
		return nil
	}}
	return sql.OpenDB(&connector{dsn: d, driver: drv}), nil
}
