// Package pgtest starts private PostgreSQL clusters for tests, the way the
// interop lab starts its servers: initdb and pg_ctl from Debian's postgresql
// package on a temporary directory, listening on a loopback port only, with
// trust authentication for the postgres superuser.
//
// When the binaries are missing a test is skipped, unless CI is set: there a
// missing PostgreSQL is a failure. As root the server runs as the postgres
// user (PostgreSQL refuses to run as root).
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// ErrNoPostgres: initdb or pg_ctl was not found.
var ErrNoPostgres = errors.New("pgtest: PostgreSQL binaries (initdb, pg_ctl) not found; make deps installs Debian's postgresql")

// Cluster is a running private PostgreSQL server.
type Cluster struct {
	dir     string // owned by the server's user; data in dir/data
	bin     string
	port    int
	runAs   string // "" or "postgres" (when we are root)
	counter atomic.Int64
}

// BinDir finds the directory holding initdb and pg_ctl: $TLSREADY_PG_BIN,
// the newest /usr/lib/postgresql/N/bin, or initdb on $PATH.
func BinDir() (string, error) {
	if d := os.Getenv("TLSREADY_PG_BIN"); d != "" {
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) > pgMajor(dirs[j]) })
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		d := filepath.Dir(p)
		if isExec(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	return "", ErrNoPostgres
}

func pgMajor(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// Start starts a cluster for tb and stops it in tb.Cleanup. It skips tb when
// the binaries are missing and CI is not set.
func Start(tb testing.TB) *Cluster {
	tb.Helper()
	c, err := StartCluster()
	if errors.Is(err, ErrNoPostgres) && os.Getenv("CI") == "" {
		tb.Skip(err)
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := c.Stop(); err != nil {
			tb.Error(err)
		}
	})
	return c
}

// StartCluster starts a cluster; the caller must Stop it. It is for a
// TestMain that shares one cluster between a package's tests; tests use Start.
func StartCluster() (*Cluster, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	c := &Cluster{bin: bin}
	if os.Geteuid() == 0 {
		c.runAs = "postgres"
	}
	c.dir, err = os.MkdirTemp("", "tlsready-pg-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	if c.runAs != "" {
		u, err := user.Lookup(c.runAs)
		if err != nil {
			os.RemoveAll(c.dir)
			return nil, fmt.Errorf("pgtest: running as root needs the %s user: %w", c.runAs, err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(c.dir, uid, gid); err != nil {
			os.RemoveAll(c.dir)
			return nil, fmt.Errorf("pgtest: %w", err)
		}
	}
	data := filepath.Join(c.dir, "data")
	if out, err := c.run("initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"); err != nil {
		os.RemoveAll(c.dir)
		return nil, fmt.Errorf("pgtest: initdb: %w\n%s", err, out)
	}
	// A free loopback port: another process may take it between Close and
	// the server's bind, so a failed start is retried on a new port.
	for attempt := 0; ; attempt++ {
		c.port, err = freePort()
		if err != nil {
			os.RemoveAll(c.dir)
			return nil, err
		}
		err := c.StartServer()
		if err == nil {
			break
		}
		if attempt == 2 {
			serverLog, _ := os.ReadFile(filepath.Join(c.dir, "server.log"))
			os.RemoveAll(c.dir)
			return nil, fmt.Errorf("%w\n%s", err, serverLog)
		}
	}
	return c, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// run runs one of the cluster's binaries as the server's user.
func (c *Cluster) run(name string, args ...string) ([]byte, error) {
	prog := filepath.Join(c.bin, name)
	var cmd *exec.Cmd
	if c.runAs != "" {
		cmd = exec.Command("runuser", append([]string{"-u", c.runAs, "--", prog}, args...)...)
	} else {
		cmd = exec.Command(prog, args...)
	}
	cmd.Dir = c.dir
	return cmd.CombinedOutput()
}

// Stop stops the server at once (no checkpoint) and removes its directory.
func (c *Cluster) Stop() error {
	out, err := c.run("pg_ctl", "stop", "-w", "-m", "immediate", "-D", filepath.Join(c.dir, "data"))
	rerr := os.RemoveAll(c.dir)
	if err != nil {
		return fmt.Errorf("pgtest: pg_ctl stop: %w\n%s", err, out)
	}
	return rerr
}

// Restart stops the server (fast shutdown: connections are closed) and starts
// it again on the same port, for tests of clients that must ride out an outage.
func (c *Cluster) Restart() error {
	if err := c.StopServer(); err != nil {
		return err
	}
	return c.StartServer()
}

// StopServer stops the server but keeps its data; StartServer starts it again.
func (c *Cluster) StopServer() error {
	if out, err := c.run("pg_ctl", "stop", "-w", "-m", "fast", "-D", filepath.Join(c.dir, "data")); err != nil {
		return fmt.Errorf("pgtest: pg_ctl stop: %w\n%s", err, out)
	}
	return nil
}

// StartServer starts a server stopped by StopServer on the same port.
func (c *Cluster) StartServer() error {
	// Loopback only; durability off (test data); the socket in our directory.
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200", c.port, c.dir)
	if out, err := c.run("pg_ctl", "start", "-w", "-t", "60", "-D", filepath.Join(c.dir, "data"), "-l", filepath.Join(c.dir, "server.log"), "-o", opts); err != nil {
		return fmt.Errorf("pgtest: pg_ctl start: %w\n%s", err, out)
	}
	return nil
}

// URL is the postgres:// URL of database name on the cluster.
func (c *Cluster) URL(name string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User("postgres"),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)),
		Path:     "/" + name,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// NewDatabase creates an empty database and returns its URL; it is dropped
// in tb.Cleanup (after the connections of a store closed before it).
func (c *Cluster) NewDatabase(tb testing.TB) string {
	tb.Helper()
	name := fmt.Sprintf("t%d_%d", os.Getpid(), c.counter.Add(1))
	if err := c.exec(context.Background(), "CREATE DATABASE "+name); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			tb.Error(err)
		}
	})
	return c.URL(name)
}

// exec runs one statement on the postgres database.
func (c *Cluster) exec(ctx context.Context, stmt string) error {
	cfg, err := pgx.ParseConfig(c.URL("postgres"))
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	if _, err := db.ExecContext(ctx, stmt); err != nil {
		return fmt.Errorf("pgtest: %s: %w", strings.Fields(stmt)[0], err)
	}
	return nil
}
