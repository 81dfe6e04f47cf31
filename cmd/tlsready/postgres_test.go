package main

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/store/pgtest"
)

// TestPostgresScanLookupServe: scan, lookup and serve with --db postgres://:
// the demo world scanned into PostgreSQL gives the demo's verdicts through
// lookup and through a serve child's HTTP API.
func TestPostgresScanLookupServe(t *testing.T) {
	cluster := pgtest.Start(t)
	world, input, expected := demoWorld(t)
	db := cluster.NewDatabase(t)
	if code, _, stderr := runCLI(t, "lookup", "--db", db, "example.org"); code != exitUsage || !strings.Contains(stderr, "empty database") {
		t.Errorf("lookup in a database no scan wrote to: exit %d: %s", code, stderr)
	}
	if code, _, stderr := runCLI(t, scanArgs(world, input, db)...); code != 0 {
		t.Fatalf("scan exit %d: %s", code, stderr)
	}
	rs := lookupJSON(t, db, slices.Collect(maps.Keys(expected)))
	for _, r := range rs {
		if want := expected[r.Domain]; r.Verdict != want {
			t.Errorf("lookup %s: verdict %s (%s), want %s", r.Domain, r.Verdict, r.Reason, want)
		}
	}
	if len(rs) != len(expected) {
		t.Fatalf("lookup returned %d lines for %d domains", len(rs), len(expected))
	}
	// A second scan of the same register in the same database resumes
	// nothing and finds everything fresh, as with SQLite.
	if code, _, stderr := runCLI(t, scanArgs(world, input, db)...); code != 0 {
		t.Fatalf("second scan exit %d: %s", code, stderr)
	}

	c := startServeChild(t, "--db", db, "--http", "127.0.0.1:0", "--socketmap", "127.0.0.1:0")
	for d, want := range expected {
		code, body := httpGetBody(t, "http://"+c.http+"/v1/domains/"+d)
		var a struct {
			Verdict result.Verdict `json:"verdict"`
		}
		if err := json.Unmarshal([]byte(body), &a); err != nil || code != 200 {
			t.Fatalf("GET %s: %d %s", d, code, body)
		}
		if a.Verdict != want {
			t.Errorf("serve %s: verdict %s, want %s", d, a.Verdict, want)
		}
	}
	// A result saved by another process reaches serve through the data
	// version (polled every second).
	domain := domainNotIn(expected, result.DANE)
	saveAsDANE(t, db, domain, 1)
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, body := httpGetBody(t, "http://"+c.http+"/v1/domains/"+domain)
		if strings.Contains(body, `"verdict":"dane"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve still answers %s for %s 30 s after the change", body, domain)
		}
		time.Sleep(100 * time.Millisecond) // a child process: no event to wait on
	}
	if code, out, stderr := runCLI(t, "report", "--db", db, "--format", "table"); code != 0 || out == "" {
		t.Errorf("report exit %d: %s", code, stderr)
	}
}
