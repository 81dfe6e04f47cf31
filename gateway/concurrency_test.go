package gateway

import (
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
)

// TestLookupsWhileScanWrites: a writer (as the batch scan) commits results
// through one Store while the gateway, over its own read-only Store on the
// same file, answers HTTP and socketmap lookups and reloads its cache.
func TestLookupsWhileScanWrites(t *testing.T) {
	t.Parallel()
	const batches, perBatch = 20, 100
	rw := openTestStore(t)
	fillVerdicts(t, rw, testNow)
	ro := openReadOnly(t, rw)

	s, _ := newTestServer(t, ro, Config{RefreshInterval: time.Millisecond})
	versions, stopWatch := startWatch(t, s, nil)
	httpBase := "http://" + serve(t, s.ServeAPI)
	smAddr := serve(t, s.ServeSocketmap)

	// Readers: until the writer is done, every answer for a fixed domain
	// must be right, and new domains are either unknown or right.
	var (
		stop    atomic.Bool
		readers sync.WaitGroup
		lookups atomic.Int64
	)
	for i := range 2 {
		readers.Add(2)
		c := dialSocketmap(t, smAddr)
		c.c.SetDeadline(time.Time{})
		go func() {
			defer readers.Done()
			for n := 0; !stop.Load(); n++ {
				if got, err := c.try("dane.example.test"); got != "OK dane-only" {
					t.Errorf("socketmap during writes: %q, %v", got, err)
					return
				}
				got, err := c.try(fmt.Sprintf("w%d-%d.example.test", n%batches, (n+i)%perBatch))
				if got != "NOTFOUND " && got != "OK verify" {
					t.Errorf("socketmap new domain: %q, %v", got, err)
					return
				}
				lookups.Add(2)
			}
		}()
		go func() {
			defer readers.Done()
			for n := 0; !stop.Load(); n++ {
				code, body, err := httpGet(t.Context(), fmt.Sprintf("%s/v1/domains/w%d-%d.example.test", httpBase, n%batches, n%perBatch))
				var a Answer
				if err == nil {
					err = json.Unmarshal([]byte(body), &a)
				}
				if err != nil || code != 200 || (a.Verdict != result.Unknown && a.Verdict != result.Verified) {
					t.Errorf("http during writes: %d %s %v", code, body, err)
					return
				}
				lookups.Add(1)
			}
		}()
	}

	// The writer.
	for b := range batches {
		rs := make([]result.Result, 0, perBatch)
		for i := range perBatch {
			rs = append(rs, result.Result{Domain: fmt.Sprintf("w%d-%d.example.test", b, i), Verdict: result.Verified, ScannedAt: testNow})
		}
		if err := rw.SaveResults(t.Context(), rs); err != nil {
			t.Fatal(err)
		}
	}
	// The cache notices: wait for the reload that reads the final version.
	awaitDataVersion(t, rw, versions)
	stop.Store(true)
	readers.Wait()
	if lookups.Load() == 0 {
		t.Error("no lookups ran during the writes")
	}
	c := dialSocketmap(t, smAddr)
	for b := range batches {
		for i := range perBatch {
			if got := c.query(fmt.Sprintf("w%d-%d.example.test", b, i)); got != "OK verify" {
				t.Fatalf("w%d-%d after reload: %q", b, i, got)
			}
		}
	}
	if err := stopWatch(); err != nil {
		t.Errorf("Watch: %v", err)
	}
}

// TestLookupsWhileIncrementalUpdates: a writer replaces the results of
// existing domains and adds new ones in batches while the gateway answers
// and applies the changes incrementally (merging now and then). A domain
// that exists throughout is never answered as unknown, a replaced one has
// its old or its new answer, and at the end every answer is the new one —
// without a single full reload after the first.
func TestLookupsWhileIncrementalUpdates(t *testing.T) {
	t.Parallel()
	const batches, perBatch = 20, 50
	rw := openTestStore(t)
	fillVerdicts(t, rw, testNow)
	flip := func(i int) string { return fmt.Sprintf("flip%d.example.test", i) }
	var rs []result.Result
	for i := range batches * perBatch {
		rs = append(rs, result.Result{Domain: flip(i), Verdict: result.Verified, ScannedAt: testNow})
	}
	if err := rw.SaveResults(t.Context(), rs); err != nil {
		t.Fatal(err)
	}
	ro := openReadOnly(t, rw)

	s, _ := newTestServer(t, ro, Config{RefreshInterval: time.Millisecond})
	s.mergeMin = 120 // a few merges while the lookups run
	merges := 0
	versions, stopWatch := startWatch(t, s, func(sn *snapshot) {
		if sn.delta == nil {
			merges++ // only Watch's goroutine calls the hook
		}
	})
	smAddr := serve(t, s.ServeSocketmap)

	var (
		stop    atomic.Bool
		readers sync.WaitGroup
		lookups atomic.Int64
	)
	for i := range 2 {
		readers.Add(1)
		c := dialSocketmap(t, smAddr)
		c.c.SetDeadline(time.Time{})
		go func() {
			defer readers.Done()
			for n := i; !stop.Load(); n++ {
				if got, err := c.try("dane.example.test"); got != "OK dane-only" {
					t.Errorf("socketmap during updates: %q, %v", got, err)
					return
				}
				if got, err := c.try(flip(n % (batches * perBatch))); got != "OK verify" && got != "OK encrypt" {
					t.Errorf("replaced domain during updates: %q, %v", got, err)
					return
				}
				if got, err := c.try(fmt.Sprintf("new%d.example.test", n%(batches*perBatch))); got != "NOTFOUND " && got != "OK dane-only" {
					t.Errorf("new domain during updates: %q, %v", got, err)
					return
				}
				lookups.Add(3)
			}
		}()
	}
	for b := range batches {
		rs := rs[:0]
		for i := b * perBatch; i < (b+1)*perBatch; i++ {
			rs = append(rs, result.Result{Domain: flip(i), Verdict: result.Encrypted, ScannedAt: testNow},
				result.Result{Domain: fmt.Sprintf("new%d.example.test", i), Verdict: result.DANE, ScannedAt: testNow})
		}
		if err := rw.SaveResults(t.Context(), rs); err != nil {
			t.Fatal(err)
		}
	}
	awaitDataVersion(t, rw, versions)
	stop.Store(true)
	readers.Wait()
	if err := stopWatch(); err != nil {
		t.Errorf("Watch: %v", err)
	}
	if lookups.Load() == 0 {
		t.Error("no lookups ran during the updates")
	}
	c := dialSocketmap(t, smAddr)
	for i := range batches * perBatch {
		if got := c.query(flip(i)); got != "OK encrypt" {
			t.Fatalf("%s after the updates: %q", flip(i), got)
		}
		if got := c.query(fmt.Sprintf("new%d.example.test", i)); got != "OK dane-only" {
			t.Fatalf("new%d after the updates: %q", i, got)
		}
	}
	if n := reloads(t, s, "full"); n != 1 || merges == 0 {
		t.Errorf("%v full reloads (want only the first), %d merges", n, merges)
	}
	if got, want := s.snap.Load().len(), len(verdictDomains)+2*batches*perBatch; got != want {
		t.Errorf("cache counts %d domains, want %d", got, want)
	}
}
