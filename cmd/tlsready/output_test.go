package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestScanSummaryBadLineOrder: the summary and the log give bad-line reasons
// in one fixed order (most frequent first, then by name), not as a Go map.
func TestScanSummaryBadLineOrder(t *testing.T) {
	world, _, _ := demoWorld(t)
	input := filepath.Join(t.TempDir(), "reg.txt")
	lines := strings.Join([]string{
		"good@bigmail.test",
		"no-at-1", "no-at-2", "no-at-3",
		"a@[192.0.2.1]", "b@[192.0.2.2]",
		"c@-x-.test", "d@bad..test",
		"@empty-local.test",
		"ok@chuo-ward.test",
	}, "\n") + "\n"
	if err := os.WriteFile(input, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	wantSummary := "8 bad input lines skipped (by reason: no-at 3, address-literal 2, invalid-domain 2, empty-local 1)"
	wantLog := []string{"no-at", "address-literal", "invalid-domain", "empty-local"}
	logLine := regexp.MustCompile(`msg="bad input lines skipped" reason=(\S+)`)
	for i := range 3 { // map order would differ between runs
		db := filepath.Join(t.TempDir(), "t.db")
		code, out, stderr := runCLI(t, scanArgs(world, input, db)...)
		if code != exitOK {
			t.Fatalf("scan %d: exit %d: %s", i, code, stderr)
		}
		if !strings.Contains(out, wantSummary) || strings.Contains(out, "map[") {
			t.Errorf("scan %d: summary does not say %q:\n%s", i, wantSummary, out)
		}
		var got []string
		for _, m := range logLine.FindAllStringSubmatch(stderr, -1) {
			got = append(got, m[1])
		}
		if strings.Join(got, " ") != strings.Join(wantLog, " ") {
			t.Errorf("scan %d: bad-line warnings in order %v, want %v", i, got, wantLog)
		}
	}
}

// TestLookupOutput: plain output has a header and a fixed number of columns
// ("-" for empty cells); an argument that is not a domain is a usage error
// like in check; a domain the cache does not know has no scanned_at in JSON.
func TestLookupOutput(t *testing.T) {
	db := fixtureDB(t)
	out, errOut, code := runCmd(t, "lookup", "--db", db, "plain.example", "dane.example", "xn--r8jz45g.example", "someone@nowhere.example")
	if code != exitOK {
		t.Fatalf("lookup: exit %d: %s", code, errOut)
	}
	rows := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	want := [][]string{
		{"DOMAIN", "VERDICT", "SCANNED_AT", "DOMAIN_UNICODE", "FLAGS"},
		{"plain.example", "plaintext", "2025-02-10T01:01:00Z", "-", "starttls-not-offered"},
		{"dane.example", "dane", "2025-02-10T01:01:00Z", "-", "-"},
		{"xn--r8jz45g.example", "verified", "2025-02-10T01:01:00Z", "例え.example", "no-tlsrpt"},
		{"nowhere.example", "unknown", "-", "-", "-"},
	}
	if len(rows) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(rows), len(want), out)
	}
	for i, row := range rows {
		if got := strings.Fields(row); strings.Join(got, " ") != strings.Join(want[i], " ") {
			t.Errorf("line %d: %q, want fields %q", i, row, want[i])
		}
		if strings.Contains(row, "someone") {
			t.Errorf("line %d prints the local part: %q", i, row)
		}
	}

	for _, bad := range []string{"not a domain", "x@", "bad..test"} {
		out, _, code := runCmd(t, "lookup", "--db", db, "plain.example", bad)
		if code != exitUsage || out != "" {
			t.Errorf("lookup %q: exit %d, output %q; want exit %d and no output", bad, code, out, exitUsage)
		}
		_, _, checkCode := runCmd(t, "check", "--helo", "test.tlsready.invalid", bad)
		if checkCode != code {
			t.Errorf("%q: lookup exits %d, check %d", bad, code, checkCode)
		}
	}

	out, _, code = runCmd(t, "lookup", "--db", db, "--json", "nowhere.example")
	if code != exitOK || strings.Contains(out, "scanned_at") || !strings.Contains(out, `"verdict":"unknown"`) {
		t.Errorf("unknown domain JSON: exit %d, %s", code, out)
	}
	out, _, _ = runCmd(t, "lookup", "--db", db, "--json", "plain.example")
	if !strings.Contains(out, `"scanned_at":"2025-02-10T01:01:00Z"`) {
		t.Errorf("known domain JSON lacks scanned_at: %s", out)
	}
}
