package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/scanner/scantest"
	"github.com/tlsready/tlsready/scanner/scantest/worlds"
	"github.com/tlsready/tlsready/store"
)

// pinRuns writes finished runs through the store, as scans do: each map is
// a run, domain -> verdict, each domain with citizens of its own; the
// runs are an hour apart, the last an hour ago.
func pinRuns(t *testing.T, db string, citizens map[string]int, runs ...map[string]result.Verdict) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, db, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i, verdicts := range runs {
		at := time.Now().Add(time.Duration(i-len(runs)) * time.Hour)
		run, _, err := st.BeginRun(ctx, fmt.Sprintf("register-%d.csv", i), at)
		if err != nil {
			t.Fatal(err)
		}
		var rs []store.Recipient
		var results []result.Result
		for d, v := range verdicts {
			for j := range citizens[d] {
				rs = append(rs, store.Recipient{ID: fmt.Sprintf("%s-%d", d, j), Domain: d})
			}
			results = append(results, result.Result{Domain: d, Verdict: v, ScannedAt: at, RunID: run.ID})
		}
		if err := st.AddRecipients(ctx, run.ID, rs); err != nil {
			t.Fatal(err)
		}
		if err := st.SaveResults(ctx, results); err != nil {
			t.Fatal(err)
		}
		if err := st.FinishRun(ctx, run.ID, store.RunStats{Recipients: int64(len(rs)), Domains: int64(len(results))}, at.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPinCommands: pin set, list and rm against a real database; the
// audit trail says who did what; export policy answers the pins; usage
// errors are exit 2.
func TestPinCommands(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "pins.db")
	pinRuns(t, db, map[string]int{"a.example": 2, "b.example": 1},
		map[string]result.Verdict{"a.example": result.DANE, "b.example": result.Plaintext})

	for _, tc := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"pin", "set", "A.Example.", "may", "--db", db, "--reason", "DNSSEC outage", "--until", "7d"}, exitOK, "pinned a.example to may until"},
		{[]string{"pin", "set", "a.example", "encrypt", "--db", db}, exitOK, "pinned a.example to encrypt (was may)"},
		{[]string{"pin", "set", "bücher.example", "dane-only", "--db", db}, exitOK, "pinned xn--bcher-kva.example to dane-only"},
		{[]string{"pin", "set", "b.example", "none", "--db", db, "--until", "2000-01-01T00:00:00Z"}, exitUsage, "not in the future"},
		{[]string{"pin", "set", "b.example", "strict", "--db", db}, exitUsage, `"strict" is not a policy; valid: none, may, encrypt, verify, secure, dane-only`},
		{[]string{"pin", "set", "not a domain", "may", "--db", db}, exitUsage, "not a valid domain name"},
		{[]string{"pin", "set", "b.example", "may", "--db", db, "--until", "soon"}, exitUsage, "--until"},
		{[]string{"pin", "set", "b.example", "may"}, exitUsage, "--db is required"},
		{[]string{"pin", "set", "b.example", "may", "--db", filepath.Join(t.TempDir(), "missing.db")}, exitUsage, "no such database"},
		{[]string{"pin", "set", "b.example", "may", "--db", db, "--reason", strings.Repeat("x", 2000)}, exitUsage, "--reason is longer"},
		{[]string{"pin", "rm", "b.example", "--db", db}, exitUsage, "b.example has no pin"},
		{[]string{"pin", "rm", "xn--bcher-kva.example", "--db", db, "--reason", "agreement ended"}, exitOK, "removed the pin of xn--bcher-kva.example (dane-only)"},
		{[]string{"pin"}, exitUsage, "pin needs a subcommand"},
		{[]string{"pin", "list", "--db", db}, exitOK, "1 pins (1 active)"},
		{[]string{"export", "policy", "--db", db}, exitOK, "a.example\tencrypt\n"},
		{[]string{"lookup", "--db", db, "--json", "a.example"}, exitOK, `"pin":{"policy":"encrypt","reason":"","set_at":`},
		{[]string{"lookup", "--db", db, "--json", "nowhere.example"}, exitOK, `"reason":"not in the cache"}`},
	} {
		code, out, stderr := runCLI(t, tc.args...)
		if code != tc.code || !strings.Contains(out+stderr, tc.says) {
			t.Errorf("%v: exit %d, want %d with %q\nstdout: %s\nstderr: %s", tc.args, code, tc.code, tc.says, out, stderr)
		}
	}

	// status counts them; an expired pin is counted apart.
	st, err := store.Open(t.Context(), db, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.SetPin(t.Context(), store.Pin{Domain: "old.example", Policy: "may", Until: time.Now().Add(-time.Hour), At: time.Now().Add(-2 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if code, out, stderr := runCLI(t, "status", "--db", db, "--overdue-after", "100000h"); code != 0 || !strings.Contains(out, "pins:      1 active, 1 expired") {
		t.Errorf("status: %d\n%s%s", code, out, stderr)
	}
	if _, rep, _ := statusJSON(t, db, "--overdue-after", "100000h"); rep.PinsActive != 1 || rep.PinsExpired != 1 {
		t.Errorf("status --json: %d active, %d expired", rep.PinsActive, rep.PinsExpired)
	}
	if code, out, _ := runCLI(t, "pin", "list", "--db", db); code != 0 || !strings.Contains(out, "2 pins (1 active)") || !strings.Contains(out, "expired") {
		t.Errorf("pin list with an expired pin: %s", out)
	}
	if _, err := runCLIErr(t, "pin", "rm", "old.example", "--db", db); err != nil {
		t.Fatal(err)
	}

	code, out, stderr := runCLI(t, "pin", "list", "--db", db, "--audit", "--json")
	if code != 0 {
		t.Fatalf("pin list --json: %d %s", code, stderr)
	}
	var l struct {
		Pins []struct {
			Domain, Policy, OSUser string
			Active                 bool
		}
		Audit []store.PinEvent
	}
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatal(err)
	}
	if len(l.Pins) != 1 || l.Pins[0].Domain != "a.example" || l.Pins[0].Policy != "encrypt" || !l.Pins[0].Active {
		t.Errorf("pins: %+v", l.Pins)
	}
	if len(l.Audit) != 6 || l.Audit[2].Action != "rm" || l.Audit[2].Reason != "agreement ended" || l.Audit[2].OSUser != osUser() ||
		l.Audit[5].NewPolicy != "may" || l.Audit[5].Reason != "DNSSEC outage" || l.Audit[5].Until.IsZero() || l.Audit[0].Domain != "old.example" {
		t.Errorf("audit: %+v", l.Audit)
	}
}

// TestDiff: the tightenings and loosenings between two runs, with the
// citizens of the later one and what the gateway answers now: a
// tightening seen once is pending, confirmed by the next run it is
// applied; a loosening applies at once; a pin decides.
func TestDiff(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "diff.db")
	citizens := map[string]int{"a.example": 10, "b.example": 5, "c.example": 3, "d.example": 2, "e.example": 1}
	run1 := map[string]result.Verdict{"a.example": result.Encrypted, "b.example": result.DANE, "c.example": result.Verified, "d.example": result.Verified}
	run2 := map[string]result.Verdict{"a.example": result.Verified, "b.example": result.Plaintext, "c.example": result.DANE, "d.example": result.Verified, "e.example": result.DANE}
	pinRuns(t, db, citizens, run1)
	if code, _, stderr := runCLI(t, "diff", "--db", db); code != exitFailed || !strings.Contains(stderr, "diff needs two finished runs") {
		t.Errorf("one run: %d %s", code, stderr)
	}
	// A database with both runs (ids 1 and 2).
	db = filepath.Join(t.TempDir(), "diff2.db")
	pinRuns(t, db, citizens, run1, run2)
	if code, _, stderr := runCLI(t, "pin", "set", "c.example", "may", "--db", db, "--reason", "DANE rollout pending"); code != 0 {
		t.Fatal(stderr)
	}
	code, out, stderr := runCLI(t, "diff", "--db", db)
	if code != 0 {
		t.Fatalf("diff: %d %s", code, stderr)
	}
	for _, want := range []string{
		"run 1 -> run 2: 4 domains in both (1 new, 0 gone)",
		"tighten: 2 domains, 13 citizens",
		"pending, not answered until a second scan confirms them: 1 domains",
		"applied, pinned or decided by a later result: 1 domains",
		"loosen (applied at once): 1 domains, 5 citizens",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("diff output lacks %q:\n%s", want, out)
		}
	}
	rep := diffJSON(t, "diff", "--db", db, "--json")
	if rep.RunA != 1 || rep.RunB != 2 || len(rep.Tighten.Rows) != 2 || len(rep.Loosen.Rows) != 1 {
		t.Fatalf("diff --json: %+v", rep)
	}
	if r := rep.Tighten.Rows[0]; r.Domain != "a.example" || r.Citizens != 10 || r.From != "encrypt" || r.To != "verify" ||
		r.Gateway != "encrypt" || r.Pending != "verify" || r.Status != "pending" {
		t.Errorf("pending tightening: %+v", r)
	}
	if r := rep.Tighten.Rows[1]; r.Domain != "c.example" || r.To != "dane-only" || r.Gateway != "may" || r.Pin != "may" || r.Status != "pinned" {
		t.Errorf("pinned tightening: %+v", r)
	}
	if r := rep.Loosen.Rows[0]; r.Domain != "b.example" || r.From != "dane-only" || r.To != "none" || r.Gateway != "none" || r.Status != "applied" {
		t.Errorf("loosening: %+v", r)
	}

	// A third run confirms a.example's tightening: applied.
	db3 := filepath.Join(t.TempDir(), "diff3.db")
	pinRuns(t, db3, citizens, run1, run2, run2)
	rep = diffJSON(t, "diff", "--db", db3, "--run", "1", "--run", "3", "--json")
	if len(rep.Tighten.Rows) != 2 || rep.Tighten.Rows[0].Domain != "a.example" || rep.Tighten.Rows[0].Status != "applied" ||
		rep.Tighten.Rows[0].Gateway != "verify" || rep.Tighten.Pending != 0 {
		t.Errorf("confirmed: %+v", rep.Tighten)
	}
	if rep := diffJSON(t, "diff", "--db", db3, "--json"); len(rep.Tighten.Rows)+len(rep.Loosen.Rows) != 0 {
		t.Errorf("runs 2 and 3 are alike: %+v", rep)
	}
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"diff", "--db", db3, "--run", "1"}, "--run is given twice"},
		{[]string{"diff", "--db", db3, "--run", "1", "--run", "9"}, "no run 9 in"},
		{[]string{"diff", "--db", db3, "--verified-policy", "secure"}, "--verified-policy must be verify or may"},
		{[]string{"diff"}, "--db is required"},
	} {
		if code, out, stderr := runCLI(t, tc.args...); code != exitUsage || !strings.Contains(out+stderr, tc.says) {
			t.Errorf("%v: exit %d, want 2 with %q: %s%s", tc.args, code, tc.says, out, stderr)
		}
	}
}

func diffJSON(t *testing.T, args ...string) diffReport {
	t.Helper()
	code, out, stderr := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("%v: %d %s", args, code, stderr)
	}
	var rep diffReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	return rep
}

// runCLIErr runs the command line and fails on a non-zero exit.
func runCLIErr(t *testing.T, args ...string) (string, error) {
	t.Helper()
	code, out, stderr := runCLI(t, args...)
	if code != 0 {
		return out, fmt.Errorf("%v: exit %d: %s", args, code, stderr)
	}
	return out, nil
}

// TestDiffRealScans: diff over real scans of the simulated internet. The
// first scan sees the DANE provider's zone unsigned (no DANE: its domains
// are not dane); the next two see it signed. After the second scan, diff
// lists those domains as tightening to dane-only, pending (the gateway
// still answers the looser policy, as export policy says); the third scan
// confirms them: applied, and export policy answers dane-only.
func TestDiffRealScans(t *testing.T) {
	t.Parallel()
	sc, reg, _, err := worlds.Demo(nil)
	if err != nil {
		t.Fatal(err)
	}
	unsigned := sc
	unsigned.SecureZones = slices.DeleteFunc(slices.Clone(sc.SecureZones), func(z string) bool { return z == "securepost.test." })
	if len(unsigned.SecureZones) == len(sc.SecureZones) {
		t.Fatal("the demo world no longer has the zone securepost.test signed")
	}
	input := filepath.Join(t.TempDir(), "register.txt")
	if err := os.WriteFile(input, []byte(strings.Join(reg, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(t.TempDir(), "scan.db")
	scan := func(world *scantest.Internet) {
		t.Helper()
		if code, _, stderr := runCLI(t, scanArgs(world, input, db, "--rescan-after", "0")...); code != 0 {
			t.Fatalf("scan: %d %s", code, stderr)
		}
	}
	worldA := scantest.StartT(t, unsigned)
	scan(worldA)
	worldA.Close()
	worldB := scantest.StartT(t, sc)
	scan(worldB)

	policies := func() map[string]string {
		t.Helper()
		out, err := runCLIErr(t, "export", "policy", "--db", db)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, line := range strings.Split(out, "\n") {
			if d, p, ok := strings.Cut(line, "\t"); ok && !strings.HasPrefix(line, "#") {
				m[d] = p
			}
		}
		return m
	}
	rep := diffJSON(t, "diff", "--db", db, "--json")
	var toDANE []diffRow
	for _, r := range rep.Tighten.Rows {
		if r.To == "dane-only" {
			toDANE = append(toDANE, r)
		}
	}
	if len(toDANE) == 0 || rep.Tighten.Pending < len(toDANE) {
		t.Fatalf("no pending tightening to dane-only after the DANE provider's zone was signed: %+v", rep.Tighten)
	}
	t.Logf("%d domains tighten to dane-only, %d citizens", len(toDANE), rep.Tighten.Citizens)
	now := policies()
	for _, r := range toDANE {
		if r.Status != "pending" || r.Pending != "dane-only" || r.Gateway == "dane-only" || now[r.Domain] == "dane-only" {
			t.Errorf("%s after one scan: %+v, export policy %q", r.Domain, r, now[r.Domain])
		}
	}

	scan(worldB)
	rep = diffJSON(t, "diff", "--db", db, "--run", "1", "--run", "3", "--json")
	now = policies()
	for _, want := range toDANE {
		i := slices.IndexFunc(rep.Tighten.Rows, func(r diffRow) bool { return r.Domain == want.Domain })
		if i < 0 {
			t.Errorf("%s: not a tightening from run 1 to run 3", want.Domain)
			continue
		}
		if r := rep.Tighten.Rows[i]; r.Status != "applied" || r.Gateway != "dane-only" || now[r.Domain] != "dane-only" {
			t.Errorf("%s after the second scan: %+v, export policy %q", r.Domain, r, now[r.Domain])
		}
	}
	if rep.Tighten.Pending != 0 {
		t.Errorf("%d still pending after the confirming scan", rep.Tighten.Pending)
	}
}
