package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/store"
)

// testNow is the fixed clock of the tests.
var testNow = time.Date(2025, 6, 2, 12, 0, 0, 0, time.UTC)

// openTestStore creates a read-write database in a temporary directory.
func openTestStore(t testing.TB) *store.Store {
	t.Helper()
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "tlsready.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// openReadOnly opens rw's database again, read-only, as serve opens the
// one a scan writes.
func openReadOnly(t testing.TB, rw *store.Store) *store.Store {
	t.Helper()
	ro, err := store.Open(t.Context(), rw.Path(), store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ro.Close() })
	return ro
}

// startWatch runs s.Watch until stopWatch is called (it returns Watch's
// error) or the test ends. Each reload's snapshot goes to onReload (if
// non-nil; on Watch's goroutine), then its data version to versions.
func startWatch(t testing.TB, s *Server, onReload func(*snapshot)) (versions <-chan int64, stopWatch func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	vs := make(chan int64)
	s.afterReload = func(sn *snapshot) {
		if onReload != nil {
			onReload(sn)
		}
		select {
		case vs <- sn.version:
		case <-ctx.Done():
		}
	}
	watchDone := make(chan error, 1)
	go func() { watchDone <- s.Watch(ctx) }()
	return vs, func() error {
		cancel()
		return <-watchDone
	}
}

// awaitDataVersion waits, at most 30 s, until the server's cache has
// reloaded the data version rw is at now, read from versions (which the
// server's afterReload hook feeds).
func awaitDataVersion(t testing.TB, rw *store.Store, versions <-chan int64) {
	t.Helper()
	final, err := rw.DataVersion(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for v := int64(-1); v != final; {
		select {
		case v = <-versions:
		case <-time.After(30 * time.Second):
			t.Fatalf("cache never reloaded data version %d", final)
		}
	}
}

// verdictDomains is what fillVerdicts stores: one domain per verdict and the
// policy the socketmap must answer for it with the default Config.
var verdictDomains = []struct {
	domain string
	policy string // "" = NOTFOUND
}{
	{"dane.example.test", "dane-only"},
	{"sts.example.test", "secure match=.mx.example.net:mx1.sts.example.test servername=hostname"},
	{"verified.example.test", "verify"},
	{"encrypted.example.test", "encrypt"},
	{"partial.example.test", ""},
	{"plaintext.example.test", ""},
	{"broken.example.test", ""},
	{"nomail.example.test", ""},
	{"unreachable.example.test", ""},
	{"dnserror.example.test", ""},
	{"stale.example.test", ""},             // verified, but older than StaleAfter
	{"sts-testing.example.test", "verify"}, // testing-mode policy: verified, never secure
	{"both.example.test", "dane-only"},     // DANE and an enforced MTA-STS policy
	{"xn--bcher-kva.example", "encrypt"},   // bücher.example
}

// fillVerdicts stores results for every verdict and the edge cases above.
// It is the one step a test needs to replace to use a real scan instead.
func fillVerdicts(t testing.TB, st *store.Store, now time.Time) {
	t.Helper()
	mx := func(names ...string) []result.Host {
		var hs []result.Host
		for i, n := range names {
			hs = append(hs, result.Host{Name: n, Preference: uint16(10 * (i + 1))})
		}
		return hs
	}
	enforce := &result.STSPolicy{RecordID: "20250601", Mode: "enforce", MX: []string{"*.mx.example.net", "mx1.sts.example.test", "MX1.sts.example.test."}, MaxAge: 86400}
	rs := []result.Result{
		{Domain: "dane.example.test", Verdict: result.DANE, MX: mx("mx.dane.example.test"), MXSecure: true},
		{Domain: "sts.example.test", Verdict: result.MTASTS, MX: mx("a.mx.example.net", "mx1.sts.example.test"), MTASTS: enforce},
		{Domain: "verified.example.test", Verdict: result.Verified, MX: mx("mx.verified.example.test")},
		{Domain: "encrypted.example.test", Verdict: result.Encrypted, Flags: []string{result.FlagCertSelfSigned}, MX: mx("mx.encrypted.example.test")},
		{Domain: "partial.example.test", Verdict: result.Partial, MX: mx("mx1.partial.example.test", "mx2.partial.example.test")},
		{Domain: "plaintext.example.test", Verdict: result.Plaintext, Flags: []string{result.FlagNoSTARTTLS}, MX: mx("mx.plaintext.example.test")},
		{Domain: "broken.example.test", Verdict: result.Broken, Flags: []string{result.FlagDANEMismatch}, MX: mx("mx.broken.example.test"), MTASTS: enforce},
		{Domain: "nomail.example.test", Verdict: result.NoMail, Flags: []string{result.FlagNullMX}, NullMX: true},
		{Domain: "unreachable.example.test", Verdict: result.Unreachable, Flags: []string{result.FlagConnectFailed}, MX: mx("mx.unreachable.example.test")},
		{Domain: "dnserror.example.test", Verdict: result.DNSError, Flags: []string{result.FlagServfail}},
		{Domain: "stale.example.test", Verdict: result.Verified, MX: mx("mx.stale.example.test"), ScannedAt: now.Add(-DefaultStaleAfter - time.Minute)},
		{Domain: "sts-testing.example.test", Verdict: result.Verified, Flags: []string{result.FlagSTSTesting}, MX: mx("mx.sts-testing.example.test"),
			MTASTS: &result.STSPolicy{Mode: "testing", MX: []string{"mx.sts-testing.example.test"}}},
		{Domain: "both.example.test", Verdict: result.DANE, MX: mx("mx.both.example.test"), MTASTS: &result.STSPolicy{Mode: "enforce", MX: []string{"mx.both.example.test"}}},
		{Domain: "xn--bcher-kva.example", Unicode: "bücher.example", Verdict: result.Encrypted, MX: mx("mx.xn--bcher-kva.example")},
	}
	for i := range rs {
		if rs[i].ScannedAt.IsZero() {
			rs[i].ScannedAt = now.Add(-time.Hour)
		}
	}
	if err := st.SaveResults(t.Context(), rs); err != nil {
		t.Fatal(err)
	}
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// newTestServer returns a Server over st with the cache loaded, logging at
// debug level into the returned buffer.
func newTestServer(t testing.TB, st *store.Store, cfg Config) (*Server, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	cfg.Store = st
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return testNow }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s, logs
}

// newUnloadedServer returns a Server over st at testNow whose cache has
// not loaded yet.
func newUnloadedServer(t testing.TB, st *store.Store) *Server {
	t.Helper()
	s, err := New(Config{Store: st, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// serve runs fn on a fresh loopback listener until the test ends; a serve
// error is reported by the cleanup (never t.Fatal from the goroutine).
func serve(t testing.TB, fn func(context.Context, net.Listener) error) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- fn(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("server did not shut down")
		}
	})
	return l.Addr().String()
}

// fakeChecker is the simulated edge of live checks: it answers from a table
// of results, counts calls, and can hold a check until released.
type fakeChecker struct {
	mu      sync.Mutex
	results map[string]result.Result
	calls   map[string]int
	started chan string   // receives the domain when a check begins (if non-nil)
	release chan struct{} // when non-nil, each check waits for a value or ctx
}

var errNoSuchDomain = errors.New("fake checker: no result for domain")

func (f *fakeChecker) Check(ctx context.Context, domain string) (result.Result, error) {
	f.mu.Lock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[domain]++
	r, ok := f.results[domain]
	f.mu.Unlock()
	if f.started != nil {
		f.started <- domain
	}
	if f.release != nil {
		select {
		case <-f.release:
		case <-ctx.Done():
			return result.Result{}, ctx.Err()
		}
	}
	if !ok {
		return result.Result{}, errNoSuchDomain
	}
	return r, nil
}

func (f *fakeChecker) callsFor(d string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[d]
}

func contextWithCancel(t testing.TB) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx, cancel
}

// httpGet is for goroutines (no t.Fatal): status and body, or an error.
func httpGet(ctx context.Context, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}
