package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/store"
)

// TestCacheFileStartWithoutStore: a server on a real SQLite store writes
// its cache file (0600) after a refresh; a second server whose store cannot
// be opened loads the file and answers every domain exactly as the first
// (HTTP answers and socketmap replies), /healthz says "degraded" with the
// file's synced_at, /metrics that the answers come from the file; once the
// store opens, a refresh replaces the file's data with the store's (a
// change made meanwhile shows) and health is "ok" again.
func TestCacheFileStartWithoutStore(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "tlsready.db")
	st, err := store.Open(t.Context(), dbPath, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fillVerdicts(t, st, testNow)
	cacheFile := filepath.Join(dir, "serve.cache")
	now := func() time.Time { return testNow }
	a, err := New(Config{Store: st, Now: now, CacheFile: cacheFile})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	a.maybeWriteCacheFile()
	fi, err := os.Stat(cacheFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("cache file: %v %v", fi, err)
	}

	var (
		opened   = make(chan struct{})
		failOpen = true
	)
	b, err := New(Config{Now: func() time.Time { return testNow.Add(time.Hour) }, CacheFile: cacheFile,
		OpenStore: func(ctx context.Context) (*store.Store, error) {
			if failOpen {
				return nil, errors.New("connection refused")
			}
			close(opened)
			return store.Open(ctx, dbPath, store.Options{ReadOnly: true})
		}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Refresh(t.Context()); err == nil {
		t.Fatal("refresh without a store succeeded")
	}
	// No data yet: health says so, the socketmap answers NOTFOUND.
	hs := serve(t, b.ServeAPI)
	code, body, err := httpGet(t.Context(), "http://"+hs+"/healthz")
	if err != nil || code != 503 || !strings.Contains(body, `"status":"no data"`) {
		t.Fatalf("healthz without data: %d %s %v", code, body, err)
	}
	if st, data := b.socketmapReply([]byte("tlspolicy dane.example.test")); st != smNotFound || data != "" {
		t.Errorf("socketmap without data: %s %q", st, data)
	}
	info, err := b.LoadCacheFile(cacheFile)
	if err != nil {
		t.Fatal(err)
	}
	if info.Records != len(verdictDomains) || !info.SyncedAt.Equal(testNow) {
		t.Errorf("cache file info %+v", info)
	}
	if _, err := b.LoadCacheFile(cacheFile); !errors.Is(err, ErrCacheFileNotNeeded) {
		t.Errorf("second load: %v", err)
	}
	for _, vd := range verdictDomains {
		wa, err := a.Lookup(t.Context(), vd.domain)
		if err != nil {
			t.Fatal(err)
		}
		ga, err := b.Lookup(t.Context(), vd.domain)
		if err != nil {
			t.Fatal(err)
		}
		// The clocks differ by an hour: only stale-ness could differ, and
		// no test domain is within an hour of going stale.
		if !equalAnswers(wa, ga) {
			t.Errorf("%s from the cache file: %+v, from the store %+v", vd.domain, ga, wa)
		}
		st, data := b.socketmapReply([]byte("tlspolicy " + vd.domain))
		if want := vd.policy; (want == "" && st != smNotFound) || (want != "" && (st != smOK || data != want)) {
			t.Errorf("socketmap %s from the cache file: %s %q, want %q", vd.domain, st, data, want)
		}
	}
	code, body, _ = httpGet(t.Context(), "http://"+hs+"/healthz")
	if code != 200 || !strings.Contains(body, `"status":"degraded"`) || !strings.Contains(body, `"from_cache_file":true`) ||
		!strings.Contains(body, `"synced_at":"2025-06-02T12:00:00Z"`) || !strings.Contains(body, `"age_seconds":3600`) {
		t.Errorf("healthz from the cache file: %d %s", code, body)
	}
	_, metrics, _ := httpGet(t.Context(), "http://"+hs+"/metrics")
	if !strings.Contains(metrics, "tlsready_gateway_cache_from_file 1") || !strings.Contains(metrics, `tlsready_gateway_cache_reloads_total{result="cache-file"} 1`) {
		t.Errorf("metrics from the cache file:\n%s", grepLines(metrics, "cache_"))
	}

	// The store comes back, with changes made meanwhile: a looser policy
	// (applied at once) and a stricter one (pending: it needs a second
	// observation, see pins.go).
	for _, d := range []string{"verified.example.test", "plaintext.example.test"} {
		r, err := st.Lookup(t.Context(), d)
		if err != nil {
			t.Fatal(err)
		}
		r.Verdict, r.Flags = "encrypted", nil
		if err := st.SaveResults(t.Context(), []result.Result{r}); err != nil {
			t.Fatal(err)
		}
	}
	failOpen = false
	if reloaded, err := b.Refresh(t.Context()); err != nil || !reloaded {
		t.Fatalf("refresh after the store came back: %v %v", reloaded, err)
	}
	<-opened
	if st, data := b.socketmapReply([]byte("tlspolicy verified.example.test")); st != smOK || data != "encrypt" {
		t.Errorf("after the store came back: %s %q", st, data)
	}
	if st, data := b.socketmapReply([]byte("tlspolicy plaintext.example.test")); st != smNotFound {
		t.Errorf("a tightening after the store came back: %s %q, want NOTFOUND until confirmed", st, data)
	}
	code, body, _ = httpGet(t.Context(), "http://"+hs+"/healthz")
	if code != 200 || !strings.Contains(body, `"status":"ok"`) || !strings.Contains(body, `"from_cache_file":false`) {
		t.Errorf("healthz after the store came back: %d %s", code, body)
	}
	b.store().Close()
}

func equalAnswers(a, b Answer) bool {
	return a.Domain == b.Domain && a.Verdict == b.Verdict && strings.Join(a.Flags, ",") == strings.Join(b.Flags, ",") &&
		a.ScannedAt.Equal(b.ScannedAt) && a.Policy == b.Policy && strings.Join(a.MX, ",") == strings.Join(b.MX, ",") && a.Stale == b.Stale
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestCacheFileDamaged: a truncated, altered or foreign file is refused
// with ErrCacheFile, and the round trip of a good one is exact.
func TestCacheFileDamaged(t *testing.T) {
	t.Parallel()
	st := openTestStore(t)
	fillVerdicts(t, st, testNow)
	s := newUnloadedServer(t, st)
	if err := s.WriteCacheFile(filepath.Join(t.TempDir(), "x")); !errors.Is(err, ErrNotReady) {
		t.Errorf("before the first load: %v", err)
	}
	if _, err := s.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "c")
	if err := s.WriteCacheFile(path); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(path)
	tab, info, err := readCacheFile(bytes.NewReader(good))
	if err != nil || tab.len() != len(verdictDomains) || info.Records != len(verdictDomains) {
		t.Fatalf("round trip: %v %d", err, tab.len())
	}
	for _, vd := range verdictDomains {
		want, _ := s.snap.Load().get(vd.domain)
		got, ok := tab.get(vd.domain)
		if !ok || got.Verdict != want.Verdict || got.STSMatch != want.STSMatch || got.MX != want.MX ||
			!got.ScannedAt.Equal(want.ScannedAt) || strings.Join(got.Flags, ",") != strings.Join(want.Flags, ",") {
			t.Errorf("%s: %+v, want %+v", vd.domain, got, want)
		}
	}
	i := bytes.Index(good, []byte("verified.example.test\tverified"))
	for name, b := range map[string][]byte{
		"truncated":  good[:len(good)-10],
		"no end":     good[:bytes.LastIndex(good, []byte("end "))],
		"altered":    append(append(append([]byte{}, good[:i]...), []byte("verified.example.test\tdane\t")...), good[i+len("verified.example.test\tverified\t"):]...),
		"other":      []byte("tlsready-gateway-cache 3\n"),
		"empty":      nil,
		"trailing":   append(append([]byte{}, good...), 'x'),
		"bad header": []byte("tlsready-gateway-cache 1\nsynced_at yesterday data_version 1 records 0\nend 0 x\n"),
	} {
		if _, _, err := readCacheFile(bytes.NewReader(b)); !errors.Is(err, ErrCacheFile) {
			t.Errorf("%s: %v, want ErrCacheFile", name, err)
		}
	}
}

// FuzzReadCacheFile: the cache file reader never panics, and what it
// accepts holds only records the gateway could have cached itself: valid
// A-label domains, known verdicts and MTA-STS match lists Postfix may read.
// Seeds: testdata/fuzz/FuzzReadCacheFile (a file written by
// WriteCacheFile, damaged variants).
func FuzzReadCacheFile(f *testing.F) {
	f.Add([]byte("tlsready-gateway-cache 1\nsynced_at 2025-06-02T12:00:00Z data_version 3 records 0\nend 0 e3b0\n"))
	f.Add([]byte("tlsready-gateway-cache 2\nsynced_at 2025-06-02T12:00:00Z data_version 3 records 1 pins 1\n" +
		"d.example\tdane\t1\t\t\t\t4\npin\tp.example\tmay\t0\t5\t\"alice\"\t\"adm1\"\t\"why\\t\"\nend 1 e3b0\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tab, pins, info, err := readCacheFilePins(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrCacheFile) {
				t.Fatalf("error not ErrCacheFile: %v", err)
			}
			return
		}
		if tab.len() != info.Records || len(pins) != info.Pins {
			t.Fatalf("%d records, table %d; %d pins, %d read", info.Records, tab.len(), info.Pins, len(pins))
		}
		for d, p := range pins {
			if n, err := NormalizeDomain(d); err != nil || n != d || p.Domain != d || !ValidPinPolicy(p.Policy) {
				t.Fatalf("pin %+v accepted", p)
			}
		}
		tab.each(func(e *entry) {
			rec := tab.record(e)
			if d, err := NormalizeDomain(rec.Domain); err != nil || d != rec.Domain {
				t.Fatalf("domain %q accepted", rec.Domain)
			}
			if rec.Verdict.Rank() >= len(result.Verdicts) {
				t.Fatalf("verdict %q accepted", rec.Verdict)
			}
			if strings.ContainsAny(rec.STSMatch, " \t\r\n=") || strings.ContainsAny(rec.MX, " \t\r\n") {
				t.Fatalf("record %+v accepted", rec)
			}
		})
	})
}

// BenchmarkCacheFile writes and reads the cache file of a million domains
// (TLSREADY_CACHE_BENCH_N to change), as serve does after refreshes and at
// a start without the database:
//
//	go test -run '^$' -bench CacheFile -benchtime 3x ./gateway/
func BenchmarkCacheFile(b *testing.B) {
	n := 1_000_000
	if v := os.Getenv("TLSREADY_CACHE_BENCH_N"); v != "" {
		fmt.Sscan(v, &n)
	}
	bl := newBuilder(n)
	for i := range n {
		v := result.Verdicts[i%len(result.Verdicts)]
		rec := record{Domain: fmt.Sprintf("town%07d.example.jp", i), Verdict: v, ScannedAt: testNow.Add(-time.Duration(i) * time.Second),
			MX: fmt.Sprintf("mx%d.provider%d.example.net,mx%d.provider%d.example.net", i%3, i%500, i%3+1, i%500)}
		if v == result.MTASTS {
			rec.STSMatch = fmt.Sprintf(".provider%d.example.net", i%500)
		}
		if i%4 == 0 {
			rec.Flags = []string{result.FlagNoSTARTTLS}
		}
		bl.addRecord(rec)
	}
	t := bl.finish()
	s, err := New(Config{Now: func() time.Time { return testNow },
		OpenStore: func(context.Context) (*store.Store, error) { return nil, errors.New("no store in this benchmark") }})
	if err != nil {
		b.Fatal(err)
	}
	s.snap.Store(&snapshot{base: t, version: 1, count: t.len(), newest: t.newest})
	s.syncedAt.Store(testNow.UnixNano())
	path := filepath.Join(b.TempDir(), "c")
	var size int64
	b.Run("write", func(b *testing.B) {
		for b.Loop() {
			if err := s.WriteCacheFile(path); err != nil {
				b.Fatal(err)
			}
		}
		fi, _ := os.Stat(path)
		size = fi.Size()
		b.ReportMetric(float64(size)/float64(n), "bytes/domain")
	})
	b.Run("load", func(b *testing.B) {
		for b.Loop() {
			f, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			tab, _, err := readCacheFile(f)
			f.Close()
			if err != nil || tab.len() != n {
				b.Fatalf("%v %d", err, tab.len())
			}
		}
	})
}

// TestCacheFileFallBack: the store is open but fails before the first load
// completes: after the failed refresh the server answers from the cache
// file, once.
func TestCacheFileFallBack(t *testing.T) {
	t.Parallel()
	st := openTestStore(t)
	fillVerdicts(t, st, testNow)
	cacheFile := filepath.Join(t.TempDir(), "c")
	a := newUnloadedServer(t, st)
	if _, err := a.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := a.WriteCacheFile(cacheFile); err != nil {
		t.Fatal(err)
	}
	dead := openTestStore(t)
	dead.Close()
	b, err := New(Config{Store: dead, CacheFile: cacheFile, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Refresh(t.Context()); err == nil {
		t.Fatal("refresh of a closed store succeeded")
	}
	b.fallBackToCacheFile()
	if st := b.Status(); !st.Ready || !st.FromCacheFile || !st.RefreshFailed {
		t.Fatalf("after the fall-back: %+v", st)
	}
	if status, data := b.socketmapReply([]byte("tlspolicy dane.example.test")); status != smOK || data != "dane-only" {
		t.Errorf("socketmap after the fall-back: %s %q", status, data)
	}
	if !b.cacheTried.Load() {
		t.Error("fall-back not marked as tried")
	}
}
