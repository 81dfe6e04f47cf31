package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/tlsready/tlsready/scanner/result"
)

// TestServeLive: `serve --live` scans a domain the cache does not know, with
// the real scanner against the simulated internet, answers its verdict and
// stores it.
func TestServeLive(t *testing.T) {
	world, _, expected := demoWorld(t)
	var known, unknown []string
	for d, v := range expected {
		switch {
		case len(known) == 0 && v == result.Verified:
			known = append(known, d)
		case v == result.DANE || v == result.Plaintext || v == result.Encrypted:
			unknown = append(unknown, d)
		}
	}
	input := filepath.Join(t.TempDir(), "one.txt")
	if err := os.WriteFile(input, []byte("someone@"+known[0]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(t.TempDir(), "t.db")
	if code, _, stderr := runCLI(t, scanArgs(world, input, db)...); code != 0 {
		t.Fatalf("scan: %d %s", code, stderr)
	}
	c := startServeChild(t, "--db", db, "--http", "127.0.0.1:0", "--socketmap", "127.0.0.1:0",
		"--live", "--live-rate", "100", "--resolver", world.DNSAddr, "--ca-file", world.CAFile, "--allow-private",
		"--trust-ad", "true", "--smtp-port", fmt.Sprint(world.SMTPPort), "--https-port", fmt.Sprint(world.HTTPSPort),
		"--helo", "live.tlsready.invalid")
	for _, d := range unknown {
		code, body := httpGetBody(t, "http://"+c.http+"/v1/domains/"+d)
		var a struct {
			Verdict result.Verdict `json:"verdict"`
		}
		if err := json.Unmarshal([]byte(body), &a); err != nil || code != 200 || a.Verdict != result.Unknown {
			t.Fatalf("GET %s without live: %d %s", d, code, body)
		}
		code, body = httpGetBody(t, "http://"+c.http+"/v1/domains/"+d+"?live=1")
		if err := json.Unmarshal([]byte(body), &a); err != nil || code != 200 {
			t.Fatalf("GET %s?live=1: %d %s", d, code, body)
		}
		if a.Verdict != expected[d] {
			t.Errorf("live %s: %s, want %s (%s)", d, a.Verdict, expected[d], body)
		}
	}
	// Stored: lookup from the database now knows them.
	got := verdicts(t, db, unknown)
	for _, d := range unknown {
		if got[d] != expected[d] {
			t.Errorf("after live check, the cache says %s for %s, want %s", got[d], d, expected[d])
		}
	}
}
