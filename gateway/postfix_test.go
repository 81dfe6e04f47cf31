package gateway

import (
	"testing"

	"github.com/tlsready/tlsready/scanner/scantest"
	"github.com/tlsready/tlsready/store"
)

// TestPostfixSocketmapClient asks Postfix's own socketmap client.
func TestPostfixSocketmapClient(t *testing.T) {
	t.Parallel()
	pm := scantest.NewPostmap(t)
	st := openTestStore(t)
	fillVerdicts(t, st, testNow)
	s, _ := newTestServer(t, st, Config{})
	addr := serve(t, s.ServeSocketmap)

	for _, vd := range verdictDomains {
		got, found := pm.QuerySocketmap(t, addr, MapName, vd.domain)
		if found != (vd.policy != "") || got != vd.policy {
			t.Errorf("%s: postmap says %q (found %v), want %q", vd.domain, got, found, vd.policy)
		}
	}
	if got, found := pm.QuerySocketmap(t, addr, MapName, "example.test"); found {
		t.Errorf("example.test: %q, want not found", got)
	}
}

// TestPostfixSocketmapPins: Postfix's socketmap client gets a pinned
// policy, "none" included, over the scan result, and for a domain never
// scanned.
func TestPostfixSocketmapPins(t *testing.T) {
	t.Parallel()
	pm := scantest.NewPostmap(t)
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
		if got, found := pm.QuerySocketmap(t, addr, MapName, d); !found || got != want {
			t.Errorf("%s: postmap says %q (found %v), want %q", d, got, found, want)
		}
	}
}
