package main

import (
	"bufio"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/store"
)

// lookupJSON runs lookup --json for domains in db and decodes its lines,
// one result each.
func lookupJSON(t *testing.T, db string, domains []string) []result.Result {
	t.Helper()
	code, out, stderr := runCLI(t, append([]string{"lookup", "--db", db, "--json"}, domains...)...)
	if code != 0 {
		t.Fatalf("lookup exit %d: %s", code, stderr)
	}
	var rs []result.Result
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<22)
	for sc.Scan() {
		var r result.Result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("lookup output: %v", err)
		}
		rs = append(rs, r)
	}
	return rs
}

// domainNotIn is a domain of expected whose verdict is none of vs.
func domainNotIn(expected map[string]result.Verdict, vs ...result.Verdict) string {
	for d, v := range expected {
		if !slices.Contains(vs, v) {
			return d
		}
	}
	return ""
}

// saveAsDANE saves domain's stored result in db again, times times, as
// DANE and scanned now: what another process's scans would write. The
// gateway applies such a tightening once a second observation confirms it
// (the confirmation rule), so two saves tighten.
func saveAsDANE(t *testing.T, db, domain string, times int) {
	t.Helper()
	st, err := store.Open(t.Context(), db, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r, err := st.Lookup(t.Context(), domain)
	if err != nil {
		t.Fatal(err)
	}
	for range times {
		r.Verdict, r.ScannedAt = result.DANE, time.Now()
		if err := st.SaveResults(t.Context(), []result.Result{r}); err != nil {
			t.Fatal(err)
		}
	}
}

// lockedStore opens db and takes its scan lock, as a running scan holds
// it; the caller unlocks and closes.
func lockedStore(t *testing.T, db string) (*store.Store, func() error) {
	t.Helper()
	st, err := store.Open(t.Context(), db, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := st.LockScan()
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	return st, unlock
}
