package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/store"
)

// TestConfirmationRule: a stricter policy than the previous observation's
// waits for a second observation (the gateway answers the previous one's,
// and says what is pending); a looser one applies at once; a first
// observation applies as it is. A server started afresh answers the same
// as one that followed the changes (the previous observation is stored).
func TestConfirmationRule(t *testing.T) {
	t.Parallel()
	enforce := &result.STSPolicy{Mode: "enforce", MX: []string{"mx.d.example"}}
	const sts = "secure match=mx.d.example servername=hostname"
	type step struct {
		verdict         result.Verdict
		sts             *result.STSPolicy
		policy, pending string
	}
	cases := []struct {
		name  string
		cfg   Config
		steps []step
	}{
		{"confirmed", Config{}, []step{{result.Verified, nil, "verify", ""}, {result.DANE, nil, "verify", "dane-only"}, {result.DANE, nil, "dane-only", ""}}},
		{"one run only", Config{}, []step{{result.Verified, nil, "verify", ""}, {result.DANE, nil, "verify", "dane-only"}, {result.Verified, nil, "verify", ""}}},
		{"first observation", Config{}, []step{{result.DANE, nil, "dane-only", ""}}},
		{"loosening at once", Config{}, []step{{result.DANE, nil, "dane-only", ""}, {result.Plaintext, nil, "", ""}, {result.Encrypted, nil, "", "encrypt"}}},
		{"mta-sts to dane", Config{}, []step{{result.MTASTS, enforce, sts, ""}, {result.DANE, nil, sts, "dane-only"}, {result.DANE, enforce, "dane-only", ""}}},
		{"broken for a run", Config{}, []step{{result.DANE, nil, "dane-only", ""}, {result.Partial, nil, "", ""}, {result.DANE, nil, "", "dane-only"}, {result.DANE, nil, "dane-only", ""}}},
		{"to mta-sts", Config{}, []step{{result.Encrypted, nil, "encrypt", ""}, {result.MTASTS, enforce, "encrypt", sts}, {result.MTASTS, enforce, sts, ""}}},
		{"levels by configuration", Config{VerifiedPolicy: PolicyMay}, []step{{result.Encrypted, nil, "encrypt", ""}, {result.Verified, nil, "may", ""}, {result.Encrypted, nil, "may", "encrypt"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			st := openTestStore(t)
			s, _ := newTestServer(t, st, c.cfg)
			for i, stp := range c.steps {
				r := result.Result{Domain: "d.example", Verdict: stp.verdict, MTASTS: stp.sts,
					ScannedAt: testNow.Add(time.Duration(i-len(c.steps)) * time.Hour)}
				if err := st.SaveResults(t.Context(), []result.Result{r}); err != nil {
					t.Fatal(err)
				}
				if _, err := s.Refresh(t.Context()); err != nil {
					t.Fatal(err)
				}
				fresh, _ := newTestServer(t, st, c.cfg)
				for _, srv := range []*Server{s, fresh} {
					a, err := srv.Lookup(t.Context(), "d.example")
					if err != nil {
						t.Fatal(err)
					}
					if a.Policy != stp.policy || a.PendingPolicy != stp.pending {
						t.Errorf("step %d (%s): policy %q pending %q, want %q pending %q", i+1, stp.verdict, a.Policy, a.PendingPolicy, stp.policy, stp.pending)
					}
					status, data := srv.socketmapReply([]byte("tlspolicy d.example"))
					if (stp.policy == "" && status != smNotFound) || (stp.policy != "" && (status != smOK || data != stp.policy)) {
						t.Errorf("step %d: socketmap %s %q, want %q", i+1, status, data, stp.policy)
					}
				}
			}
		})
	}
}

// TestPins: an active pin wins over the scan result on every answer path
// (socketmap, HTTP, export policy, the cache file), for a domain never
// scanned too; an expired pin does not apply; a removed one stops applying
// at the next refresh.
func TestPins(t *testing.T) {
	t.Parallel()
	st := openTestStore(t)
	fillVerdicts(t, st, testNow)
	var now atomic.Int64
	now.Store(testNow.UnixNano())
	cfg := Config{Now: func() time.Time { return time.Unix(0, now.Load()).UTC() }}
	pins := []store.Pin{
		{Domain: "dane.example.test", Policy: "may", Reason: "DNSSEC outage, ticket 42", OSUser: "alice", Host: "adm1"},
		{Domain: "plaintext.example.test", Policy: "encrypt", Until: testNow.Add(time.Hour), OSUser: "alice", Host: "adm1"},
		{Domain: "never.example.test", Policy: "verify", Reason: "partner\tagreement\n\"x\"", OSUser: "bob", Host: "adm2"},
		{Domain: "verified.example.test", Policy: "dane-only", Until: testNow.Add(-time.Minute), OSUser: "bob", Host: "adm2"},
		{Domain: "encrypted.example.test", Policy: "none", OSUser: "bob", Host: "adm2"},
	}
	for _, p := range pins {
		p.At = testNow.Add(-2 * time.Hour)
		if _, _, err := st.SetPin(t.Context(), p); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]string{}
	for _, vd := range verdictDomains {
		want[vd.domain] = vd.policy
	}
	want["dane.example.test"] = "may"
	want["plaintext.example.test"] = "encrypt"
	want["never.example.test"] = "verify"
	want["encrypted.example.test"] = "none"

	s, _ := newTestServer(t, st, cfg)
	check := func(t *testing.T, s *Server, want map[string]string, from string) {
		t.Helper()
		for d, w := range want {
			status, data := s.socketmapReply([]byte("tlspolicy " + d))
			if (w == "" && status != smNotFound) || (w != "" && (status != smOK || data != w)) {
				t.Errorf("%s: socketmap %s: %s %q, want %q", from, d, status, data, w)
			}
		}
		got := map[string]string{}
		if err := s.Policies(func(d, p string) error { got[d] = p; return nil }); err != nil {
			t.Fatal(err)
		}
		for d, w := range want {
			if got[d] != w {
				t.Errorf("%s: Policies %s = %q, want %q", from, d, got[d], w)
			}
		}
	}
	check(t, s, want, "store")

	hs := serve(t, s.ServeAPI)
	code, body, err := httpGet(t.Context(), "http://"+hs+"/v1/domains/never.example.test")
	if err != nil || code != 200 {
		t.Fatalf("GET: %d %s %v", code, body, err)
	}
	var a Answer
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		t.Fatal(err)
	}
	if a.Verdict != result.Unknown || a.Policy != "verify" || a.Pin == nil || a.Pin.Reason != "partner\tagreement\n\"x\"" ||
		a.Pin.SetBy != "bob" || a.Pin.Host != "adm2" || !a.Pin.SetAt.Equal(testNow.Add(-2*time.Hour)) || !a.Pin.Until.IsZero() {
		t.Errorf("HTTP answer of a pinned domain never scanned: %s", body)
	}
	_, body, _ = httpGet(t.Context(), "http://"+hs+"/v1/domains/plaintext.example.test")
	if !strings.Contains(body, `"verdict":"plaintext"`) || !strings.Contains(body, `"policy":"encrypt"`) ||
		!strings.Contains(body, `"until":"2025-06-02T13:00:00Z"`) {
		t.Errorf("HTTP answer of a pinned domain: %s", body)
	}
	_, body, _ = httpGet(t.Context(), "http://"+hs+"/v1/domains/verified.example.test")
	if strings.Contains(body, `"pin"`) || !strings.Contains(body, `"policy":"verify"`) {
		t.Errorf("HTTP answer of an expired pin's domain: %s", body)
	}

	if _, m, _ := httpGet(t.Context(), "http://"+hs+"/metrics"); !strings.Contains(m, "\ntlsready_gateway_pins_active 4\n") {
		t.Errorf("metrics: no tlsready_gateway_pins_active 4:\n%s", grepLines(m, "pins"))
	}

	// The cache file keeps the pins: a node started from it answers the same.
	file := filepath.Join(t.TempDir(), "cache")
	if err := s.WriteCacheFile(file); err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{Store: st, Now: cfg.Now})
	if err != nil {
		t.Fatal(err)
	}
	info, err := b.LoadCacheFile(file)
	if err != nil || info.Pins != len(pins) {
		t.Fatalf("cache file: %+v %v", info, err)
	}
	check(t, b, want, "cache file")
	if a, _ := b.Lookup(t.Context(), "never.example.test"); a.Pin == nil || a.Pin.Reason != "partner\tagreement\n\"x\"" {
		t.Errorf("pin from the cache file: %+v", a.Pin)
	}

	// Expiry by the clock, removal by the next refresh.
	now.Store(testNow.Add(time.Hour).UnixNano())
	want["plaintext.example.test"] = ""
	if _, err := st.RemovePin(t.Context(), store.PinEvent{Domain: "dane.example.test", At: testNow, OSUser: "carol", Host: "adm3"}); err != nil {
		t.Fatal(err)
	}
	if reloaded, err := s.Refresh(t.Context()); err != nil || !reloaded {
		t.Fatalf("refresh after a pin change: %v %v", reloaded, err)
	}
	want["dane.example.test"] = "dane-only"
	want["stale.example.test"] = "" // an hour older now: still stale
	check(t, s, want, "after expiry and removal")
}

// TestPinsBeforeFirstLoad: before the cache's first load, when lookups
// read the store, pins are read from it too.
func TestPinsBeforeFirstLoad(t *testing.T) {
	t.Parallel()
	st := openTestStore(t)
	fillVerdicts(t, st, testNow)
	if _, _, err := st.SetPin(t.Context(), store.Pin{Domain: "dane.example.test", Policy: "may", At: testNow, OSUser: "a", Host: "h"}); err != nil {
		t.Fatal(err)
	}
	s := newUnloadedServer(t, st)
	if status, data := s.socketmapReply([]byte("tlspolicy dane.example.test")); status != smOK || data != "may" {
		t.Errorf("pinned, before the first load: %s %q", status, data)
	}
	if status, data := s.socketmapReply([]byte("tlspolicy verified.example.test")); status != smOK || data != "verify" {
		t.Errorf("not pinned, before the first load: %s %q", status, data)
	}
	if a, err := s.Lookup(t.Context(), "dane.example.test"); err != nil || a.Policy != "may" || a.Pin == nil {
		t.Errorf("HTTP, before the first load: %+v %v", a, err)
	}
}

// TestCacheFileV1: a cache file of the previous version (no previous
// observations, no pins) is still read.
func TestCacheFileV1(t *testing.T) {
	t.Parallel()
	data := "tlsready-gateway-cache 1\nsynced_at 2025-06-02T12:00:00Z data_version 3 records 1\n" +
		"d.example\tdane\t1748865600000000000\t\t\t\n"
	h := sha256Hex(data)
	path := filepath.Join(t.TempDir(), "v1")
	if err := os.WriteFile(path, []byte(data+"end 1 "+h+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Store: openTestStore(t), Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	if info, err := s.LoadCacheFile(path); err != nil || info.Records != 1 {
		t.Fatalf("v1: %+v %v", info, err)
	}
	if status, data := s.socketmapReply([]byte("tlspolicy d.example")); status != smOK || data != "dane-only" {
		t.Errorf("v1: %s %q", status, data)
	}
}

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}
