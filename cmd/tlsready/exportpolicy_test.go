package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/scanner/scantest"
	"github.com/tlsready/tlsready/store"
)

// TestExportPolicyPostfix: a real scan of the simulated internet, then
// export policy --format postfix, read by Postfix's own postmap as lmdb
// (built by postmap) and texthash: every demo domain gets the policy the
// socketmap answers (expectedPolicy), a domain not scanned none;
// --verified-policy may is honoured; a format we do not write is exit 2.
func TestExportPolicyPostfix(t *testing.T) {
	t.Parallel()
	pm := scantest.NewPostmap(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "t.db")
	_, expected := scanDemo(t, db)

	file := filepath.Join(dir, "tlsready_policy")
	code, _, stderr := runCLI(t, "export", "policy", "--db", db, "--format", "postfix", "--out", file)
	if code != exitOK || !strings.Contains(stderr, "policy entries to "+file) {
		t.Fatalf("export policy: exit %d: %s", code, stderr)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("map file: %v %v", fi, err)
	}
	mapType := "lmdb"
	if _, _, err := pm.Run(t.Context(), "lmdb:"+file); err != nil {
		if !strings.Contains(err.Error(), "unsupported dictionary type") || os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Logf("lmdb not available (install postfix-lmdb), checking hash: %v", err)
		mapType = "hash"
		if _, _, err := pm.Run(t.Context(), "hash:"+file); err != nil {
			t.Fatal(err)
		}
	}
	st, err := store.Open(t.Context(), db, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	seen := map[string]bool{}
	verified := []string{}
	for d := range expected {
		r, err := st.Lookup(t.Context(), d)
		if err != nil {
			t.Fatalf("%s: %v", d, err)
		}
		want := expectedPolicy(r)
		for _, typ := range []string{mapType, "texthash"} {
			got, found := pm.Query(t, d, typ+":"+file)
			if got != want || found != (want != "") {
				t.Errorf("postmap -q %s %s:%s: %q (found %v), want %q", d, typ, file, got, found, want)
			}
		}
		if want != "" {
			seen[strings.Fields(want)[0]] = true
		}
		if r.Verdict == result.Verified {
			verified = append(verified, d)
		}
	}
	if _, found := pm.Query(t, "example.test", mapType+":"+file); found {
		t.Error("example.test (not scanned) has a policy")
	}
	for _, p := range []string{"dane-only", "secure", "verify", "encrypt"} {
		if !seen[p] {
			t.Errorf("no demo domain got Postfix policy %s", p)
		}
	}

	// --verified-policy may, to standard output.
	code, stdout, stderr := runCLI(t, "export", "policy", "--db", db, "--verified-policy", "may")
	if code != exitOK || !strings.HasPrefix(stdout, "# Postfix smtp_tls_policy_maps written by tlsready") {
		t.Fatalf("export policy to stdout: exit %d: %s\n%s", code, stderr, stdout)
	}
	if len(verified) == 0 {
		t.Fatal("no verified demo domain")
	}
	for _, d := range verified {
		if !strings.Contains(stdout, "\n"+d+"\tmay\n") {
			t.Errorf("--verified-policy may: %s not \"may\":\n%s", d, stdout)
		}
	}

	for _, args := range [][]string{
		{"export", "policy", "--db", db, "--format", "qmail"},
		{"export", "policy", "--db", db, "--format", "sendmail", "--sendmail-dane", "dane"},
		{"export", "policy", "--db", db, "--verified-policy", "encrypt"},
		{"export", "policy", "--db", filepath.Join(dir, "missing.db")},
	} {
		if code, _, stderr := runCLI(t, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want 2: %s", args, code, stderr)
		}
	}
}
