package pgtest_test

import (
	"database/sql"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/tlsready/tlsready/store/pgtest"
)

func TestClusterRestart(t *testing.T) {
	c := pgtest.Start(t)
	db, err := sql.Open("pgx", c.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v string
	if err := db.QueryRowContext(t.Context(), `SELECT current_setting('listen_addresses')`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != "127.0.0.1" {
		t.Errorf("listen_addresses %q, want loopback only", v)
	}
	if err := c.Restart(); err != nil {
		t.Fatal(err)
	}
	// The pool's old connection is dead; database/sql retries on a new one.
	var n int
	for range 2 {
		if err = db.QueryRowContext(t.Context(), `SELECT 1`).Scan(&n); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("after restart: %v", err)
	}
}
