package gateway

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/store"
)

// rawDB opens the store's file beside it, to write what SaveResults never
// would (a result that does not decode, a data version that goes back).
func rawDB(t *testing.T, st *store.Store) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+url.PathEscape(st.Path())+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

// corrupt replaces the stored JSON of a domain as a change of its own, and
// its read model with what the store's schema step makes of such a result:
// verdict, the result's verdict ("" when the JSON does not decode), and
// nothing else.
func corrupt(t *testing.T, db *sql.DB, domain, js, verdict string) {
	t.Helper()
	for _, q := range []string{
		`UPDATE meta SET value = value + 1 WHERE key = 'data_version'`,
		`UPDATE domains SET result = ?1, changed_version = (SELECT value FROM meta WHERE key = 'data_version') WHERE domain = ?2`,
		`UPDATE domain_answers SET verdict = ?3, flags = '[]', mx = '', sts_mode = '', sts_mx = '' WHERE domain = ?2`,
	} {
		if _, err := db.Exec(q, js, domain, verdict); err != nil {
			t.Fatal(err)
		}
	}
}

// reloads is the value of tlsready_gateway_cache_reloads_total{result}.
func reloads(t *testing.T, s *Server, label string) float64 {
	t.Helper()
	var m dto.Metric
	if err := s.m.reloads.WithLabelValues(label).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// randomResult is a result with the variety the cache must represent: every
// verdict, flag sets, MX names (some not usable), MTA-STS policies.
func randomResult(rng *rand.Rand, domain string, at time.Time) result.Result {
	r := result.Result{Domain: domain, Verdict: result.Verdicts[rng.IntN(len(result.Verdicts))], ScannedAt: at}
	flags := []string{result.FlagNoTLSRPT, result.FlagCertExpired, "odd flag", "", "x\x00y"}
	for _, f := range flags {
		if rng.IntN(3) == 0 {
			r.Flags = append(r.Flags, f)
		}
	}
	for i := range rng.IntN(4) {
		name := []string{"mx%d.provider.example", "mx%d." + domain, "", "b,c%d.example"}[rng.IntN(4)]
		if strings.Contains(name, "%d") {
			name = fmt.Sprintf(name, i)
		}
		r.MX = append(r.MX, result.Host{Name: name, Preference: uint16(i)})
	}
	if rng.IntN(3) == 0 {
		r.MTASTS = &result.STSPolicy{Mode: []string{"enforce", "testing", "none"}[rng.IntN(3)],
			MX: [][]string{{"*.provider.example"}, {"MX1.Provider.Example.", "*.other.example"}, {"bad_name"}, nil}[rng.IntN(4)]}
	}
	return r
}

// checkCache compares every domain's cached record with what the store
// holds, decoded in full (json) and taken through recordOf: the answers of
// the cache before the field-limited decoder and incremental updates.
func checkCache(t *testing.T, s *Server, st *store.Store, domains []string) {
	t.Helper()
	sn := s.snap.Load()
	want := 0
	for _, d := range domains {
		got, ok := sn.get(d)
		r, err := st.Lookup(context.Background(), d)
		valid := err == nil && r.Verdict.Valid()
		if err != nil && !errors.Is(err, store.ErrNotFound) && !strings.Contains(d, "corrupt") {
			t.Fatalf("%s: %v", d, err)
		}
		if nd, nerr := NormalizeDomain(d); nerr != nil || nd != d {
			valid = false
		}
		if !valid {
			if ok {
				t.Fatalf("%s: cached %+v, want none (stored: %v)", d, got, err)
			}
			continue
		}
		want++
		rec := recordOf(r)
		if !ok || !sameRecord(got, rec) {
			t.Fatalf("%s: cached %+v (%v), want %+v", d, got, ok, rec)
		}
	}
	if sn.len() != want {
		t.Fatalf("cache counts %d domains, want %d", sn.len(), want)
	}
}

// fullResult has every field of result.Result set, some more than once.
func fullResult() result.Result {
	at := time.Date(2025, 3, 4, 5, 6, 7, 8, time.UTC)
	yes := true
	ip4 := netip.MustParseAddr("192.0.2.1")
	return result.Result{
		Domain: "xn--r8jz45g.example", Unicode: "例え.example", Verdict: result.MTASTS,
		Flags: []string{"dnssec-insecure", "no-tlsrpt"}, ScannedAt: at, RunID: 7, Reason: "a \"reason\" <b>\u2028",
		ImplicitMX: true, MXSecure: true, DNSStatus: "ok",
		MX: []result.Host{
			{Name: "mx2.example", Preference: 20, CNAME: "real.example", Secure: true, Flags: []string{"mx-cname"},
				TLSA: &result.TLSA{Name: "_25._tcp.mx2.example", Secure: true, Status: "ok",
					Records: []result.TLSARecord{{Usage: 3, Selector: 1, MatchingType: 1, Data: "ab"}}},
				Addrs: []result.Addr{{IP: ip4, NameMatch: true, PKIXValid: true, DANEMatch: &yes,
					Probe: &result.Probe{IP: ip4, Status: result.ProbeOK, Reachable: true, Banner: "220 \"mx\" {[", EHLO: []string{"STARTTLS"},
						TLS: &result.TLSInfo{Version: "TLS 1.3", Certs: []result.CertInfo{{Subject: "CN=mx2", NotAfter: at}}}}}}},
			{Name: "mx1.example", Preference: 10},
		},
		MTASTS:   &result.STSPolicy{RecordID: "1", Mode: "enforce", MX: []string{"*.example", "mx1.example"}, MaxAge: 86400, FetchedAt: at},
		TLSRPT:   &result.TLSRPT{RUA: []string{"mailto:tlsrpt@example"}},
		Duration: time.Minute,
	}
}

func sameRecord(a, b record) bool {
	return a.Domain == b.Domain && a.Verdict == b.Verdict && strings.Join(a.Flags, "\x00") == strings.Join(b.Flags, "\x00") &&
		len(a.Flags) == len(b.Flags) && a.ScannedAt.Equal(b.ScannedAt) && a.MX == b.MX && a.STSMatch == b.STSMatch
}

// TestIncrementalRefresh: after each of many rounds of changes (new and
// replaced results, results that do not decode, versions without changes),
// the cache, updated incrementally and merged now and then, answers exactly
// what a full load of the store would.
func TestIncrementalRefresh(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	st := openTestStore(t)
	db := rawDB(t, st)
	var domains []string
	for i := range 300 {
		domains = append(domains, fmt.Sprintf("d%d.example", i))
	}
	domains = append(domains, "bad_name.example", "-x.example", "corrupt1.example", "corrupt2.example", "never.example")
	s, _ := newTestServer(t, st, Config{})
	s.mergeMin = 40          // merge every few rounds
	merges, rebuilds := 0, 0 // deltas folded into the base, and of them rebuilt bases (a new seed)
	seed := s.snap.Load().base.seed
	s.afterReload = func(sn *snapshot) {
		if sn.delta == nil {
			merges++
			if sn.base.seed != seed {
				rebuilds++
			}
		}
		seed = sn.base.seed
	}
	full := func() float64 { return reloads(t, s, "full") }
	at := testNow.Add(-time.Hour)
	for round := range 60 {
		at = at.Add(time.Second)
		var rs []result.Result
		for range rng.IntN(30) {
			rs = append(rs, randomResult(rng, domains[rng.IntN(len(domains)-1)], at))
		}
		if err := st.SaveResults(t.Context(), rs); err != nil {
			t.Fatal(err)
		}
		switch rng.IntN(6) {
		case 0:
			corrupt(t, db, "corrupt1.example", `{"verdict":"dane","mx":[{"name":5}]}`, "")
		case 1:
			corrupt(t, db, "corrupt2.example", `{"verdict":"secure"}`, "secure")
		case 2: // a version without result changes (as FinishRun)
			if _, err := db.Exec(`UPDATE meta SET value = value + 1 WHERE key = 'data_version'`); err != nil {
				t.Fatal(err)
			}
		}
		before := full()
		if _, err := s.Refresh(t.Context()); err != nil {
			t.Fatal(err)
		}
		if full() != before {
			t.Fatalf("round %d: a full reload", round)
		}
		checkCache(t, s, st, domains)
	}
	if n := reloads(t, s, "incremental"); rebuilds == 0 || merges == rebuilds || n < 50 {
		t.Errorf("%v incremental refreshes, %d merges (%d patches, %d rebuilds)", n, merges, merges-rebuilds, rebuilds)
	}

	// A data version that goes back is another database: a full reload.
	if _, err := db.Exec(`UPDATE meta SET value = 1 WHERE key = 'data_version'`); err != nil {
		t.Fatal(err)
	}
	before := full()
	if reloaded, err := s.Refresh(t.Context()); err != nil || !reloaded || full() != before+1 {
		t.Fatalf("version back: reloaded %v, %v, full reloads %v -> %v", reloaded, err, before, full())
	}
	checkCache(t, s, st, domains)
}

// TestFullLoadMatchesRecordOf: a full load through the field-limited
// decoder caches what recordOf makes of each fully decoded result, and
// skips what it cannot represent.
func TestFullLoadMatchesRecordOf(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(5, 6))
	st := openTestStore(t)
	var domains []string
	var rs []result.Result
	for i := range 3000 { // several load batches
		d := fmt.Sprintf("f%d.example", i)
		if i%500 == 7 {
			d = fmt.Sprintf("bad_%d.example", i)
		}
		domains = append(domains, d)
		rs = append(rs, randomResult(rng, d, testNow.Add(-time.Duration(i)*time.Second)))
	}
	long := randomResult(rng, "long.example", testNow)
	for i := range 5000 { // more than an MX list can hold
		long.MX = append(long.MX, result.Host{Name: fmt.Sprintf("mx%d.long-provider-name.example", i)})
	}
	rs = append(rs, long, fullResult())
	domains = append(domains, long.Domain, fullResult().Domain)
	if err := st.SaveResults(t.Context(), rs); err != nil {
		t.Fatal(err)
	}
	s, logs := newTestServer(t, st, Config{})
	checkCache(t, s, st, domains)
	if rec, _ := s.get("long.example"); len(rec.MX) > 65535 || len(rec.MX) < 60000 {
		t.Errorf("long MX list: %d bytes", len(rec.MX))
	}
	if !strings.Contains(logs.String(), "results not cached") {
		t.Error("skipped results not logged")
	}
}
