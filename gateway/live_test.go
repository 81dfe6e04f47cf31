package gateway

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/store"
)

func liveResult(d string, v result.Verdict) result.Result {
	return result.Result{Domain: d, Verdict: v, ScannedAt: testNow.Add(-time.Second), MX: []result.Host{{Name: "mx." + d}}}
}

func TestLiveCheck(t *testing.T) {
	t.Parallel()
	st := openTestStore(t)
	fillVerdicts(t, st, testNow)
	fake := &fakeChecker{results: map[string]result.Result{
		"new.example.test":   liveResult("new.example.test", result.Verified),
		"stale.example.test": liveResult("stale.example.test", result.Encrypted),
	}}
	s, _ := newTestServer(t, st, Config{Live: fake, LiveRate: 1000})
	base := "http://" + serve(t, s.ServeAPI)

	code, _, body := httpDo(t, "GET", base+"/v1/domains/new.example.test?live=1", "", "")
	a := decode[Answer](t, body)
	if code != 200 || !a.Live || a.Verdict != result.Verified || a.Policy != "verify" || strings.Join(a.MX, ",") != "mx.new.example.test" {
		t.Fatalf("live: %d %s", code, body)
	}
	// Saved in the store and answered from the cache from now on.
	if r, err := st.Lookup(t.Context(), "new.example.test"); err != nil || r.Verdict != result.Verified {
		t.Errorf("store: %+v, %v", r, err)
	}
	for _, q := range []string{"", "?live=1"} {
		_, _, body = httpDo(t, "GET", base+"/v1/recipients/x%40new.example.test"+q, "", "")
		if a := decode[Answer](t, body); a.Live || a.Verdict != result.Verified {
			t.Errorf("after live%s: %s", q, body)
		}
	}
	if _, err := s.Refresh(t.Context()); err != nil { // the snapshot takes over from the overlay
		t.Fatal(err)
	}
	if s.ovLen.Load() != 0 {
		t.Errorf("overlay not pruned after reload: %d", s.ovLen.Load())
	}
	if a, _ := s.Lookup(t.Context(), "new.example.test"); a.Verdict != result.Verified {
		t.Errorf("after reload: %+v", a)
	}
	// A fresh cached domain is not scanned; a stale one is.
	_, _, body = httpDo(t, "GET", base+"/v1/domains/dane.example.test?live=1", "", "")
	if a := decode[Answer](t, body); a.Live || a.Verdict != result.DANE {
		t.Errorf("cached: %s", body)
	}
	_, _, body = httpDo(t, "GET", base+"/v1/domains/stale.example.test?live=1", "", "")
	if a := decode[Answer](t, body); !a.Live || a.Verdict != result.Encrypted || a.Stale {
		t.Errorf("stale: %s", body)
	}
	if n := fake.callsFor("dane.example.test") + fake.callsFor("new.example.test") + fake.callsFor("stale.example.test"); n != 2 {
		t.Errorf("%d checks, want 2", n)
	}
	// A failing check is a 502, a result for another domain too.
	fake.results["liar.example.test"] = liveResult("other.example.test", result.DANE)
	for _, d := range []string{"fails.example.test", "liar.example.test"} {
		if code, _, body := httpDo(t, "GET", base+"/v1/domains/"+d+"?live=1", "", ""); code != 502 {
			t.Errorf("%s: %d %s", d, code, body)
		}
	}
}

func TestLiveOneScanPerDomain(t *testing.T) {
	t.Parallel()
	st := openTestStore(t)
	fake := &fakeChecker{
		results: map[string]result.Result{"slow.example.test": liveResult("slow.example.test", result.DANE)},
		started: make(chan string, 4),
		release: make(chan struct{}),
	}
	s, _ := newTestServer(t, st, Config{Live: fake, LiveRate: 1000})
	joined := make(chan string, 4)
	s.liveJoined = func(d string) { joined <- d }
	base := "http://" + serve(t, s.ServeAPI)

	var wg sync.WaitGroup
	answers := make(chan string, 3)
	get := func() {
		defer wg.Done()
		code, body, err := httpGet(t.Context(), base+"/v1/domains/slow.example.test?live=1")
		answers <- strings.TrimSpace(body)
		if err != nil || code != 200 {
			t.Errorf("%d %s %v", code, body, err)
		}
	}
	wg.Add(1)
	go get()
	<-fake.started // the first request is scanning
	wg.Add(2)
	go get()
	go get()
	<-joined
	<-joined // the others wait for the same scan
	close(fake.release)
	wg.Wait()
	close(answers)
	for a := range answers {
		if !strings.Contains(a, `"verdict":"dane"`) {
			t.Errorf("answer %s", a)
		}
	}
	if n := fake.callsFor("slow.example.test"); n != 1 {
		t.Errorf("%d scans, want 1", n)
	}
}

func TestLiveRateLimitAndTimeout(t *testing.T) {
	t.Parallel()
	st := openTestStore(t)
	fake := &fakeChecker{release: make(chan struct{})} // never released: every check times out
	s, _ := newTestServer(t, st, Config{Live: fake, LiveRate: 1e-3, LiveTimeout: 50 * time.Millisecond})
	base := "http://" + serve(t, s.ServeAPI)
	if code, _, body := httpDo(t, "GET", base+"/v1/domains/first.example.test?live=1", "", ""); code != 504 {
		t.Errorf("timeout: %d %s", code, body)
	}
	code, hdr, body := httpDo(t, "GET", base+"/v1/domains/second.example.test?live=1", "", "")
	if code != 429 || hdr.Get("Retry-After") == "" {
		t.Errorf("rate limit: %d %s", code, body)
	}
	if fake.callsFor("second.example.test") != 0 {
		t.Error("rate-limited domain was scanned")
	}
	// Cached answers are not rate limited.
	if code, _, _ := httpDo(t, "GET", base+"/v1/domains/third.example.test", "", ""); code != 200 {
		t.Errorf("plain lookup: %d", code)
	}
}

func TestLiveReadOnlyStore(t *testing.T) {
	t.Parallel()
	rw := openTestStore(t)
	ro := openReadOnly(t, rw)
	fake := &fakeChecker{results: map[string]result.Result{"ro.example.test": liveResult("ro.example.test", result.Verified)}}
	s, logs := newTestServer(t, ro, Config{Live: fake, LiveRate: 1000})
	if a, err := s.liveAnswer(t.Context(), "ro.example.test"); err != nil || !a.Live || a.Verdict != result.Verified {
		t.Fatalf("%+v, %v", a, err)
	}
	if !strings.Contains(logs.String(), "not saved") {
		t.Errorf("unsaved result not logged: %s", logs.String())
	}
	if _, err := rw.Lookup(t.Context(), "ro.example.test"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("saved through a read-only store? %v", err)
	}
	if a, _ := s.Lookup(t.Context(), "ro.example.test"); a.Verdict != result.Verified { // kept in memory instead
		t.Errorf("%+v", a)
	}
}
