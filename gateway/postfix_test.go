package gateway

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tlsready/tlsready/store"
)

// postmapPath finds Postfix's postmap(1). Debian's postfix package installs
// it in /usr/sbin (.ci/run installs the package when missing). The test is
// skipped without it only outside CI.
func postmapPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/sbin/postmap"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("postmap"); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("postmap not found (install Debian's postfix package)")
	}
	t.Skip("postmap not found; install Debian's postfix package to run this test")
	return ""
}

// postmapQuery runs `postmap -c DIR -q KEY socketmap:inet:ADDR:tlspolicy`
// and returns the value and whether it was found (exit status 0 vs 1).
func postmapQuery(t *testing.T, postmap, confDir, addr, key string) (string, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, postmap, "-c", confDir, "-q", key, "socketmap:inet:"+addr+":"+MapName)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return strings.TrimSuffix(stdout.String(), "\n"), true
	case errors.As(err, &ee) && ee.ExitCode() == 1 && stdout.Len() == 0:
		return "", false
	}
	t.Fatalf("postmap -q %s: %v\nstdout: %s\nstderr: %s", key, err, stdout.String(), stderr.String())
	return "", false
}

// TestPostfixSocketmapClient asks Postfix's own socketmap client.
func TestPostfixSocketmapClient(t *testing.T) {
	t.Parallel()
	postmap := postmapPath(t)
	confDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(confDir, "main.cf"), []byte("compatibility_level = 3.6\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	st := openTestStore(t)
	fillVerdicts(t, st, testNow)
	s, _ := newTestServer(t, st, Config{})
	addr := serve(t, s.ServeSocketmap)

	for _, vd := range verdictDomains {
		got, found := postmapQuery(t, postmap, confDir, addr, vd.domain)
		if found != (vd.policy != "") || got != vd.policy {
			t.Errorf("%s: postmap says %q (found %v), want %q", vd.domain, got, found, vd.policy)
		}
	}
	if got, found := postmapQuery(t, postmap, confDir, addr, "example.test"); found {
		t.Errorf("example.test: %q, want not found", got)
	}
}

// TestPostfixSocketmapPins: Postfix's socketmap client gets a pinned
// policy, "none" included, over the scan result, and for a domain never
// scanned.
func TestPostfixSocketmapPins(t *testing.T) {
	t.Parallel()
	postmap := postmapPath(t)
	confDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(confDir, "main.cf"), []byte("compatibility_level = 3.6\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	st := openTestStore(t)
	fillVerdicts(t, st, testNow)
	for d, p := range map[string]string{"dane.example.test": "may", "plaintext.example.test": "none", "never.example.test": "dane-only"} {
		if _, _, err := st.SetPin(t.Context(), store.Pin{Domain: d, Policy: p, At: testNow, OSUser: "alice", Host: "adm1"}); err != nil {
			t.Fatal(err)
		}
	}
	s, _ := newTestServer(t, st, Config{})
	addr := serve(t, s.ServeSocketmap)
	for d, want := range map[string]string{"dane.example.test": "may", "plaintext.example.test": "none",
		"never.example.test": "dane-only", "verified.example.test": "verify"} {
		if got, found := postmapQuery(t, postmap, confDir, addr, d); !found || got != want {
			t.Errorf("%s: postmap says %q (found %v), want %q", d, got, found, want)
		}
	}
}
