package gateway

import (
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tlsready/tlsready/store"
)

// TestHealthDataAge: /healthz and /metrics say how old the cache is. While
// refreshes fail (here: the SQLite store is closed under the server, as a
// database outage looks to it) health is still 200 but "degraded", the age
// grows from the last successful refresh, lookups answer from memory; once
// a refresh succeeds again it is "ok" with the age back to zero.
func TestHealthDataAge(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "tlsready.db")
	st, err := store.Open(t.Context(), path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fillVerdicts(t, st, testNow)
	var clock atomic.Int64
	clock.Store(testNow.UnixNano())
	advance := func(d time.Duration) { clock.Add(int64(d)) }
	s, _ := newTestServer(t, st, Config{Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	base := "http://" + serve(t, s.ServeAPI)
	sm := serve(t, s.ServeSocketmap)

	health := func(wantCode int) Health {
		t.Helper()
		code, _, body := httpDo(t, "GET", base+"/healthz", "", "")
		if code != wantCode {
			t.Fatalf("healthz: %d %s, want %d", code, body, wantCode)
		}
		return decode[Health](t, body)
	}
	metrics := func(want ...string) {
		t.Helper()
		_, _, body := httpDo(t, "GET", base+"/metrics", "", "")
		for _, w := range want {
			if !strings.Contains(body, w+"\n") {
				t.Errorf("metrics lack %q", w)
			}
		}
	}

	h := health(200)
	if h.Status != "ok" || !h.SyncedAt.Equal(testNow) || h.AgeSeconds != 0 || h.RefreshFailed || h.RefreshFailures != 0 || !h.LastFailure.IsZero() {
		t.Errorf("after the first load: %+v", h)
	}
	// Nothing changed in the store: a successful refresh still counts.
	advance(30 * time.Second)
	if reloaded, err := s.Refresh(t.Context()); err != nil || reloaded {
		t.Fatalf("refresh: %v %v", reloaded, err)
	}
	advance(2 * time.Second)
	if h := health(200); h.Status != "ok" || !h.SyncedAt.Equal(testNow.Add(30*time.Second)) || h.AgeSeconds != 2 {
		t.Errorf("after an unchanged refresh: %+v", h)
	}
	synced := float64(testNow.Add(30 * time.Second).Unix())
	metrics(
		"tlsready_gateway_cache_sync_age_seconds 2",
		"tlsready_gateway_cache_refresh_failing 0",
		"tlsready_gateway_cache_refresh_consecutive_failures 0",
		"tlsready_gateway_cache_last_refresh_failure_timestamp_seconds 0",
		"tlsready_gateway_cache_last_refresh_success_timestamp_seconds "+formatFloat(synced),
	)

	// The store goes away.
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		advance(time.Minute)
		if _, err := s.Refresh(t.Context()); err == nil {
			t.Fatal("refresh of a closed store succeeded")
		}
	}
	failedAt := testNow.Add(32*time.Second + 2*time.Minute)
	h = health(200)
	if h.Status != "degraded" || !h.RefreshFailed || h.RefreshFailures != 2 || !h.LastFailure.Equal(failedAt) ||
		h.AgeSeconds != 122 || h.Domains != len(verdictDomains) {
		t.Errorf("during the outage: %+v", h)
	}
	metrics(
		"tlsready_gateway_cache_sync_age_seconds 122",
		"tlsready_gateway_cache_refresh_failing 1",
		"tlsready_gateway_cache_refresh_consecutive_failures 2",
		"tlsready_gateway_cache_last_refresh_failure_timestamp_seconds "+formatFloat(float64(failedAt.Unix())),
		"tlsready_gateway_cache_last_refresh_success_timestamp_seconds "+formatFloat(synced),
		`tlsready_gateway_cache_reloads_total{result="error"} 2`,
	)
	// Lookups answer from memory meanwhile.
	if code, _, body := httpDo(t, "GET", base+"/v1/domains/dane.example.test", "", ""); code != 200 || decode[Answer](t, body).Policy != "dane-only" {
		t.Errorf("lookup during the outage: %d %s", code, body)
	}
	if r := dialSocketmap(t, sm).query("dane.example.test"); r != "OK dane-only" {
		t.Errorf("socketmap during the outage: %q", r)
	}

	// The store is back (the same file, opened again).
	st2, err := store.Open(t.Context(), path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st2.Close() })
	s.reloadMu.Lock()
	s.st.Store(st2)
	s.reloadMu.Unlock()
	advance(time.Second)
	if _, err := s.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	h = health(200)
	if h.Status != "ok" || h.RefreshFailed || h.RefreshFailures != 0 || h.AgeSeconds != 0 ||
		!h.SyncedAt.Equal(failedAt.Add(time.Second)) || !h.LastFailure.Equal(failedAt) {
		t.Errorf("after the outage: %+v", h)
	}
	metrics("tlsready_gateway_cache_refresh_failing 0", "tlsready_gateway_cache_sync_age_seconds 0")
}

// TestHealthLoadingAge: before the first load health is 503 "loading"; a
// failed first load (no data from the store, no cache file) is 503 "no
// data".
func TestHealthLoadingAge(t *testing.T) {
	t.Parallel()
	st := openTestStore(t)
	s := newUnloadedServer(t, st)
	base := "http://" + serve(t, s.ServeAPI)
	st.Close()
	if _, err := s.Refresh(t.Context()); err == nil {
		t.Fatal("refresh of a closed store succeeded")
	}
	code, _, body := httpDo(t, "GET", base+"/healthz", "", "")
	h := decode[Health](t, body)
	if code != 503 || h.Status != "no data" || !h.RefreshFailed || h.RefreshFailures != 1 || !h.SyncedAt.IsZero() || h.AgeSeconds != 0 {
		t.Errorf("healthz: %d %s", code, body)
	}
}

// formatFloat formats a sample value as the Prometheus text format does.
func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
