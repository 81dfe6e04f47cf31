package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/scanner/scantest"
	"github.com/tlsready/tlsready/scanner/scantest/worlds"
)

// runCLI runs the command line in-process as main does and returns exit
// code and output.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := execute(t.Context(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// demoWorld starts the demo world and writes its register.
func demoWorld(t *testing.T) (*scantest.Internet, string, map[string]result.Verdict) {
	t.Helper()
	sc, reg, expected, err := worlds.Demo(nil)
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

// scanDemo starts the demo world and scans it into db: the world and each
// domain's expected verdict.
func scanDemo(t *testing.T, db string) (*scantest.Internet, map[string]result.Verdict) {
	t.Helper()
	world, input, expected := demoWorld(t)
	if code, _, stderr := runCLI(t, scanArgs(world, input, db)...); code != exitOK {
		t.Fatalf("scan: exit %d: %s", code, stderr)
	}
	return world, expected
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
	db := filepath.Join(t.TempDir(), "t.db")
	world, expected := scanDemo(t, db)
	seen := map[result.Verdict]bool{}
	rs := lookupJSON(t, db, slices.Collect(maps.Keys(expected)))
	for _, r := range rs {
		want := expected[r.Domain]
		if r.Verdict != want {
			t.Errorf("%s: verdict %s (%s, flags %v), want %s", r.Domain, r.Verdict, r.Reason, r.Flags, want)
		}
		if r.ScannedAt.IsZero() || r.Flags == nil {
			t.Errorf("%s: lookup JSON lacks scanned_at or flags", r.Domain)
		}
		seen[r.Verdict] = true
	}
	if len(rs) != len(expected) {
		t.Fatalf("lookup returned %d lines for %d domains", len(rs), len(expected))
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
	code, out, _ := runCLI(t, "lookup", "--db", db, "--json", "nobody@not-in-the-register.test")
	if code != 0 || !strings.Contains(out, `"verdict":"unknown"`) || strings.Contains(out, "nobody") {
		t.Errorf("lookup of an unknown domain: exit %d, %s", code, out)
	}
}

// TestSTSPolicyCache: a second run with the same TXT id and an unexpired
// max_age does not fetch a valid MTA-STS policy again (RFC 8461 §5.1), fetches
// every other one again exactly as often as the first run did (counted per
// policy host by the simulated servers), and gives the same verdicts.
func TestSTSPolicyCache(t *testing.T) {
	world, input, expected := demoWorld(t)
	var domains []string
	for d := range expected {
		domains = append(domains, d)
	}
	db := filepath.Join(t.TempDir(), "t.db")
	if code, _, stderr := runCLI(t, scanArgs(world, input, db, "--rescan-after", "0")...); code != 0 {
		t.Fatalf("scan 1: %d %s", code, stderr)
	}
	first := world.Counters()
	if first.HTTPSRequests == 0 {
		t.Fatal("the demo world served no MTA-STS policy")
	}
	code, out, stderr := runCLI(t, append([]string{"lookup", "--db", db, "--json"}, domains...)...)
	if code != 0 {
		t.Fatalf("lookup: %d %s", code, stderr)
	}
	cached := map[string]bool{} // policy host -> a valid policy was stored
	for line := range strings.Lines(out) {
		var r result.Result
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		if p := r.MTASTS; p != nil && p.Mode != "" && p.Error == "" && !p.FetchedAt.IsZero() {
			cached["mta-sts."+r.Domain] = true
		}
	}
	if len(cached) == 0 {
		t.Fatal("the demo world has no valid MTA-STS policy to cache")
	}
	if code, _, stderr := runCLI(t, scanArgs(world, input, db, "--rescan-after", "0")...); code != 0 {
		t.Fatalf("scan 2: %d %s", code, stderr)
	}
	second := world.Counters()
	for name, n1 := range first.SNI {
		if !strings.HasPrefix(name, "mta-sts.") {
			continue
		}
		n2 := second.SNI[name] - n1
		switch {
		case cached[name] && n2 != 0:
			t.Errorf("%s: valid policy cached, fetched %d times again", name, n2)
		case !cached[name] && n2 != n1:
			t.Errorf("%s: no valid policy, %d handshakes on the second run, %d on the first", name, n2, n1)
		}
	}
	for name := range cached {
		if first.SNI[name] == 0 {
			t.Errorf("%s: a policy stored without a fetch", name)
		}
	}
	got := verdicts(t, db, domains)
	for d, v := range expected {
		if got[d] != v {
			t.Errorf("%s: %s on the second run, want %s", d, got[d], v)
		}
	}
}
