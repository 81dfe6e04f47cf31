package gateway

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tlsready/tlsready/scanner/scantest"
)

// TestPostfixStaticMap: the static map says what the socketmap says, asked
// through Postfix's own postmap: as texthash (read as it is) and as hash
// and lmdb (built by postmap), for every domain of every verdict, the stale one and
// one not in the database; with --verified-policy may the same as serve's.
func TestPostfixStaticMap(t *testing.T) {
	t.Parallel()
	pm := scantest.NewPostmap(t)
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
		types := []string{"texthash", "hash", "lmdb"}
		for _, typ := range types[1:] { // build file.db and file.lmdb
			if _, _, err := pm.Run(t.Context(), typ+":"+file); err != nil {
				if typ == "lmdb" && strings.Contains(err.Error(), "unsupported dictionary type") && os.Getenv("CI") == "" {
					t.Logf("lmdb not checked: %v (install postfix-lmdb)", err)
					types = types[:2]
					continue
				}
				t.Fatal(err)
			}
		}
		found := 0
		for _, vd := range append(verdictDomains, struct{ domain, policy string }{"example.test", ""}) {
			want, wantFound := pm.QuerySocketmap(t, addr, MapName, vd.domain)
			if cfg.VerifiedPolicy == "" && want != vd.policy {
				t.Errorf("%s: the socketmap says %q, want %q", vd.domain, want, vd.policy)
			}
			if wantFound {
				found++
			}
			for _, typ := range types {
				got, ok := pm.Query(t, vd.domain, typ+":"+file)
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
