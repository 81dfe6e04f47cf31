package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tlsready/tlsready/scanner/scantest"
)

// TestDeadResolver: a resolver that is silent, has nothing listening or
// refuses us stops scan (even of a three-domain register) and check before
// the first domain with exit 4 and a message naming the resolver; the scan
// writes no database.
func TestDeadResolver(t *testing.T) {
	world, _, _ := demoWorld(t)
	input := filepath.Join(t.TempDir(), "reg.txt")
	if err := os.WriteFile(input, []byte("a@bigmail.test\nb@chuo-ward.test\nc@plain.test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, addr string }{
		{"silent", scantest.SilentResolver(t)},
		{"nothing listening", scantest.UnboundResolver(t)},
		{"refused", scantest.RefusingResolver(t)},
	} {
		t.Run(tc.name+"/scan", func(t *testing.T) {
			t.Parallel()
			db := filepath.Join(t.TempDir(), "t.db")
			args := scanArgs(world, input, db)
			args[slices.Index(args, "--resolver")+1] = tc.addr
			code, out, stderr := runCLI(t, args...)
			if code != exitEnvironment || !strings.Contains(stderr, "resolver "+tc.addr+" does not answer") {
				t.Errorf("scan: exit %d, want %d naming the resolver\nstdout: %s\nstderr: %s", code, exitEnvironment, out, stderr)
			}
			if _, err := os.Stat(db); err == nil {
				t.Errorf("scan with a dead resolver created the database")
			}
		})
		t.Run(tc.name+"/check", func(t *testing.T) {
			t.Parallel()
			code, out, stderr := runCLI(t, "check", "--resolver", tc.addr, "--helo", "test.tlsready.invalid",
				"--allow-private", "--quiet", "bigmail.test")
			if code != exitEnvironment || strings.Contains(out, "MX lookup failed") || !strings.Contains(stderr, "does not answer") {
				t.Errorf("check: exit %d, want %d\nstdout: %s\nstderr: %s", code, exitEnvironment, out, stderr)
			}
		})
	}
}
