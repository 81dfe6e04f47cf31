package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPostfixStaticMap: the static map says what the socketmap says, asked
// through Postfix's own postmap: as texthash (read as it is) and as hash
// and lmdb (built by postmap), for every domain of every verdict, the stale one and
// one not in the database; with --verified-policy may the same as serve's.
func TestPostfixStaticMap(t *testing.T) {
	t.Parallel()
	postmap := postmapPath(t)
	confDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(confDir, "main.cf"), []byte("compatibility_level = 3.6\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	st := openTestStore(t)
	fillVerdicts(t, st, testNow)
	for _, cfg := range []Config{{}, {VerifiedPolicy: PolicyMay, EncryptedPolicy: PolicyMay}} {
		s, _ := newTestServer(t, st, cfg)
		addr := serve(t, s.ServeSocketmap)
		file := filepath.Join(t.TempDir(), "tlsready_policy")
		var buf bytes.Buffer
		n, err := s.WritePostfixMap(&buf, []string{"written by a test", "second line"})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(buf.String(), "# written by a test\n# second line\n") {
			t.Errorf("header:\n%s", buf.String())
		}
		if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		run := func(args ...string) (string, bool, string) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			var stdout, stderr bytes.Buffer
			cmd := exec.CommandContext(ctx, postmap, append([]string{"-c", confDir}, args...)...)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			switch {
			case err == nil:
				return strings.TrimSuffix(stdout.String(), "\n"), true, ""
			case errors.As(err, &ee) && ee.ExitCode() == 1 && stdout.Len() == 0 && !strings.Contains(stderr.String(), "fatal"):
				return "", false, ""
			}
			return "", false, fmt.Sprintf("postmap %v: %v\n%s", args, err, stderr.String())
		}
		types := []string{"texthash", "hash", "lmdb"}
		for _, typ := range types[1:] { // build file.db and file.lmdb
			if _, _, msg := run(typ + ":" + file); msg != "" {
				if typ == "lmdb" && strings.Contains(msg, "unsupported dictionary type") && os.Getenv("CI") == "" {
					t.Logf("lmdb not checked: %s (install postfix-lmdb)", msg)
					types = types[:2]
					continue
				}
				t.Fatal(msg)
			}
		}
		found := 0
		for _, vd := range append(verdictDomains, struct{ domain, policy string }{"example.test", ""}) {
			want, wantFound := postmapQuery(t, postmap, confDir, addr, vd.domain)
			if cfg.VerifiedPolicy == "" && want != vd.policy {
				t.Errorf("%s: the socketmap says %q, want %q", vd.domain, want, vd.policy)
			}
			if wantFound {
				found++
			}
			for _, typ := range types {
				got, ok, msg := run("-q", vd.domain, typ+":"+file)
				if msg != "" {
					t.Fatal(msg)
				}
				if got != want || ok != wantFound {
					t.Errorf("%s:%s: %q (found %v); the socketmap: %q (found %v)", typ, vd.domain, got, ok, want, wantFound)
				}
			}
		}
		if n != found || found == 0 {
			t.Errorf("%d entries written, the socketmap answers %d of the domains", n, found)
		}
	}
}
