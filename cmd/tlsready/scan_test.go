package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/scanner/scantest"
)

// runCLI runs the command line in-process and returns exit code and output.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errb)
	code := exitOK
	if err := root.Execute(); err != nil {
		code = exitFailed
		fmt.Fprintln(&errb, err)
		var ee *exitError
		if ok := asExit(err, &ee); ok {
			code = ee.code
		} else if isUsage(err) {
			code = exitUsage
		}
	}
	return code, out.String(), errb.String()
}

func asExit(err error, target **exitError) bool {
	for err != nil {
		if e, ok := err.(*exitError); ok {
			*target = e
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

// demoWorld starts the demo world and writes its register.
func demoWorld(t *testing.T) (*scantest.Internet, string, map[string]result.Verdict) {
	t.Helper()
	sc, reg, expected, err := scantest.Demo(nil)
	if err != nil {
		t.Fatal(err)
	}
	world := scantest.StartT(t, sc)
	input := filepath.Join(t.TempDir(), "register.txt")
	if err := os.WriteFile(input, []byte(strings.Join(reg, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return world, input, expected
}

func scanArgs(world *scantest.Internet, input, db string, extra ...string) []string {
	return append([]string{"scan", "--input", input, "--db", db,
		"--resolver", world.DNSAddr, "--ca-file", world.CAFile, "--allow-private",
		"--smtp-port", fmt.Sprint(world.SMTPPort), "--https-port", fmt.Sprint(world.HTTPSPort),
		"--rate", "1000", "--probe-timeout", "10s", "--helo", "test.tlsready.invalid", "--temp-retry", "200ms", "--quiet"}, extra...)
}

// TestScanDemoVerdicts scans the demo world through the real scan path and
// the real database, then checks every domain's verdict with lookup --json.
func TestScanDemoVerdicts(t *testing.T) {
	world, input, expected := demoWorld(t)
	db := filepath.Join(t.TempDir(), "t.db")
	if code, _, stderr := runCLI(t, scanArgs(world, input, db)...); code != 0 {
		t.Fatalf("scan exit %d: %s", code, stderr)
	}
	args := []string{"lookup", "--db", db, "--json"}
	for d := range expected {
		args = append(args, d)
	}
	code, out, stderr := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("lookup exit %d: %s", code, stderr)
	}
	seen := map[result.Verdict]bool{}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<22)
	n := 0
	for sc.Scan() {
		var r result.Result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("lookup output: %v", err)
		}
		n++
		want := expected[r.Domain]
		if r.Verdict != want {
			t.Errorf("%s: verdict %s (%s, flags %v), want %s", r.Domain, r.Verdict, r.Reason, r.Flags, want)
		}
		if r.ScannedAt.IsZero() || r.Flags == nil {
			t.Errorf("%s: lookup JSON lacks scanned_at or flags", r.Domain)
		}
		seen[r.Verdict] = true
	}
	if n != len(expected) {
		t.Fatalf("lookup returned %d lines for %d domains", n, len(expected))
	}
	for _, v := range result.Verdicts {
		if !seen[v] {
			t.Errorf("verdict %s never produced", v)
		}
	}
	c := world.Counters()
	if bad := c.Commands["MAIL"] + c.Commands["RCPT"] + c.Commands["DATA"]; bad != 0 {
		t.Errorf("the scanner sent MAIL/RCPT/DATA %d times", bad)
	}
	for ip, m := range c.MaxConcurrentPerIP {
		if m > 1 {
			t.Errorf("%s saw %d concurrent connections, want at most 1", ip, m)
		}
	}
	// One probe per distinct MX IP, but for the IPs that need more: the
	// shared-hosting IP that picks certificates by SNI (one probe per name:
	// 3 names), and the greylisting and the EHLO-421 ones (a 4xx is tried
	// again later in the run: 2 each, --temp-retry has one wait).
	var multi []int64
	for _, n := range c.ConnsPerIP {
		if n > 1 {
			multi = append(multi, n)
		}
	}
	slices.Sort(multi)
	if !slices.Equal(multi, []int64{2, 2, 3}) || c.SMTPConnections != int64(len(c.ConnsPerIP))+1+1+2 {
		t.Errorf("%d SMTP connections for %d distinct IPs; IPs with more than one: %v, want [2 2 3]", c.SMTPConnections, len(c.ConnsPerIP), multi)
	}

	// Unknown domains are not an error.
	code, out, _ = runCLI(t, "lookup", "--db", db, "--json", "nobody@not-in-the-register.test")
	if code != 0 || !strings.Contains(out, `"verdict":"unknown"`) || strings.Contains(out, "nobody") {
		t.Errorf("lookup of an unknown domain: exit %d, %s", code, out)
	}
}

// TestSTSPolicyCache: a second run with the same TXT id and an unexpired
// max_age does not fetch the MTA-STS policies again (RFC 8461 §5.1), and
// still gives the same verdicts.
func TestSTSPolicyCache(t *testing.T) {
	world, input, expected := demoWorld(t)
	db := filepath.Join(t.TempDir(), "t.db")
	if code, _, stderr := runCLI(t, scanArgs(world, input, db, "--rescan-after", "0")...); code != 0 {
		t.Fatalf("scan 1: %d %s", code, stderr)
	}
	first := world.Counters().HTTPSRequests
	if first == 0 {
		t.Fatal("the demo world served no MTA-STS policy")
	}
	if code, _, stderr := runCLI(t, scanArgs(world, input, db, "--rescan-after", "0")...); code != 0 {
		t.Fatalf("scan 2: %d %s", code, stderr)
	}
	c := world.Counters()
	t.Logf("policy fetches: first run %d, second run %d", first, c.HTTPSRequests-first)
	// Policies that failed to fetch are tried again; good ones are not.
	if again := c.HTTPSRequests - first; again >= first {
		t.Errorf("second run fetched %d policies again (first run: %d)", again, first)
	}
	var domains []string
	for d := range expected {
		domains = append(domains, d)
	}
	got := verdicts(t, db, domains)
	for d, v := range expected {
		if got[d] != v {
			t.Errorf("%s: %s on the second run, want %s", d, got[d], v)
		}
	}
}
