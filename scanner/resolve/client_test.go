package resolve

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

const testZone = `
example.test.        300 IN MX 20 MX2.Example.Test.
example.test.        300 IN MX 10 mx1.example.test.
example.test.        300 IN MX 10 mx0.example.test.
example.test.        300 IN MX 30 mx1.example.test.
example.test.        300 IN TXT "v=spf1 " "-all"
example.test.        300 IN TXT "second"
mx1.example.test.    300 IN A 192.0.2.2
mx1.example.test.    300 IN A 192.0.2.1
mx1.example.test.    300 IN A 192.0.2.1
mx1.example.test.    300 IN AAAA 2001:db8::1
v4only.example.test. 300 IN A 192.0.2.9
v6only.example.test. 300 IN AAAA 2001:db8::9
null.test.           300 IN MX 0 .
nullplus.test.       300 IN MX 0 .
nullplus.test.       300 IN MX 10 mx.nullplus.test.
literal.test.        300 IN MX 10 192.0.2.7
_25._tcp.mx1.example.test. 300 IN TLSA 3 1 1 0123456789ABCDEF
alias.test.          300 IN CNAME alias2.test.
alias2.test.         300 IN CNAME example.test.
loop1.test.          300 IN CNAME loop2.test.
loop2.test.          300 IN CNAME loop1.test.
dangling.test.       300 IN CNAME gone.test.
`

func records(zoneText string) []string {
	var out []string
	for _, l := range strings.Split(zoneText, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// statusServer answers names by behaviour: servfail.test., refused.test.,
// formerr.test., drop.test.; everything else from testZone.
func statusServer(t *testing.T) (string, *zone) {
	z := newZone(t, records(testZone)...)
	z.Override = func(w dns.ResponseWriter, r *dns.Msg) bool {
		switch strings.ToLower(r.Question[0].Name) {
		case "servfail.test.":
			rcodeReply(w, r, dns.RcodeServerFailure)
		case "refused.test.":
			rcodeReply(w, r, dns.RcodeRefused)
		case "formerr.test.":
			rcodeReply(w, r, dns.RcodeFormatError)
		case "drop.test.":
		default:
			return false
		}
		return true
	}
	return startServer(t, z), z
}

func TestStatuses(t *testing.T) {
	t.Parallel()
	addr, _ := statusServer(t)
	cfg := fastConfig(addr)
	cfg.Timeout = 100 * time.Millisecond
	cfg.Attempts = 2
	c := mustNew(t, cfg)
	for _, tc := range []struct {
		name string
		want Status
		err  error
	}{
		{"example.test", StatusOK, nil},
		{"mx1.example.test", StatusNoData, ErrNoData},
		{"nothere.test", StatusNXDomain, ErrNXDomain},
		{"servfail.test", StatusServfail, ErrRcode},
		{"refused.test", StatusRefused, ErrRcode},
		{"formerr.test", StatusError, ErrRcode},
		{"drop.test", StatusTimeout, ErrTimeout},
		{"bad..name", StatusError, ErrBadName},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := c.MX(t.Context(), tc.name)
			if a.Status != tc.want {
				t.Fatalf("status %q, want %q (err %v)", a.Status, tc.want, a.Err)
			}
			if tc.err == nil {
				if a.Err != nil {
					t.Fatalf("err %v for ok", a.Err)
				}
				return
			}
			if !errors.Is(a.Err, tc.err) {
				t.Fatalf("err %v, want %v", a.Err, tc.err)
			}
			if strings.Contains(a.Err.Error(), "127.0.0.1") {
				t.Fatalf("err %q names the server address", a.Err)
			}
		})
	}
}

func TestQueryFlags(t *testing.T) {
	t.Parallel()
	z := newZone(t, records(testZone)...)
	addr := startServer(t, z)
	cfg := fastConfig(addr)
	cfg.UDPSize = 1400
	c := mustNew(t, cfg)
	if a := c.TXT(t.Context(), "EXAMPLE.Test."); a.Status != StatusOK {
		t.Fatalf("status %q: %v", a.Status, a.Err)
	}
	qs := z.queries()
	if len(qs) != 1 {
		t.Fatalf("%d queries, want 1", len(qs))
	}
	q := qs[0]
	if q.Name != "example.test." || q.Type != dns.TypeTXT || q.Net != "udp" || !q.RD || !q.HasOP || !q.DO || q.Size != 1400 {
		t.Fatalf("query %+v", q)
	}
	if c.Queries() != 1 {
		t.Fatalf("Queries() = %d, want 1", c.Queries())
	}
}

func TestTrustAD(t *testing.T) {
	t.Parallel()
	z := newZone(t, records(testZone)...)
	z.AD = true
	addr := startServer(t, z)
	no, yes := false, true
	for _, tc := range []struct {
		name  string
		trust *bool
		want  bool
	}{
		{"default-loopback", nil, true},
		{"forced-off", &no, false},
		{"forced-on", &yes, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fastConfig(addr)
			cfg.TrustAD = tc.trust
			c := mustNew(t, cfg)
			if c.TrustsAD() != tc.want {
				t.Fatalf("TrustsAD %t", c.TrustsAD())
			}
			a := c.MX(t.Context(), "example.test")
			if a.Status != StatusOK || a.Secure != tc.want {
				t.Fatalf("status %q secure %t, want secure %t", a.Status, a.Secure, tc.want)
			}
			// NXDOMAIN with AD is an authenticated denial.
			if a := c.MX(t.Context(), "nothere.test"); a.Secure != tc.want {
				t.Fatalf("nxdomain secure %t", a.Secure)
			}
		})
	}
	// Without the AD bit nothing is secure, trusted or not.
	z2 := newZone(t, records(testZone)...)
	c := mustNew(t, fastConfig(startServer(t, z2)))
	if a := c.MX(t.Context(), "example.test"); a.Status != StatusOK || a.Secure {
		t.Fatalf("no AD: status %q secure %t", a.Status, a.Secure)
	}
	// A remote resolver is not trusted by default; one remote server is enough.
	for _, servers := range [][]string{{"192.0.2.53:53"}, {"127.0.0.1:53", "[2001:db8::53]:53"}} {
		c, err := New(Config{Servers: servers})
		if err != nil {
			t.Fatal(err)
		}
		if c.TrustsAD() {
			t.Fatalf("%v trusted", servers)
		}
		c.Close()
	}
	c2, err := New(Config{Servers: []string{"127.0.0.53:53", "[::1]:53"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if !c2.TrustsAD() {
		t.Fatal("loopback servers not trusted")
	}
}

func TestMX(t *testing.T) {
	t.Parallel()
	addr := startServer(t, newZone(t, records(testZone)...))
	c := mustNew(t, fastConfig(addr))
	ctx := t.Context()

	a := c.MX(ctx, "Example.TEST.")
	want := []MX{{"mx0.example.test", 10}, {"mx1.example.test", 10}, {"mx2.example.test", 20}}
	if a.Status != StatusOK || a.Null || !slices.Equal(a.MX, want) {
		t.Fatalf("got %q %t %v, want %v", a.Status, a.Null, a.MX, want)
	}
	if a.Canonical != "example.test" || len(a.CNAMEs) != 0 {
		t.Fatalf("canonical %q cnames %v", a.Canonical, a.CNAMEs)
	}

	a = c.MX(ctx, "null.test")
	if a.Status != StatusOK || !a.Null || len(a.MX) != 0 {
		t.Fatalf("null MX: %q %t %v", a.Status, a.Null, a.MX)
	}
	a = c.MX(ctx, "nullplus.test")
	if a.Status != StatusOK || a.Null || !slices.Equal(a.MX, []MX{{"mx.nullplus.test", 10}}) {
		t.Fatalf("null MX with others: %q %t %v", a.Status, a.Null, a.MX)
	}
	a = c.MX(ctx, "literal.test")
	if a.Status != StatusOK || !slices.Equal(a.MX, []MX{{"192.0.2.7", 10}}) {
		t.Fatalf("IP literal MX: %q %v", a.Status, a.MX)
	}
}

func TestCNAME(t *testing.T) {
	t.Parallel()
	z := newZone(t, records(testZone)...)
	z.AD = true
	addr := startServer(t, z)
	c := mustNew(t, fastConfig(addr))
	ctx := t.Context()

	a := c.MX(ctx, "alias.test")
	if a.Status != StatusOK || len(a.MX) != 3 || !a.Secure {
		t.Fatalf("chain: %q secure %t %v (%v)", a.Status, a.Secure, a.MX, a.Err)
	}
	if a.Canonical != "example.test" || !slices.Equal(a.CNAMEs, []string{"alias2.test", "example.test"}) {
		t.Fatalf("canonical %q cnames %v", a.Canonical, a.CNAMEs)
	}
	if n := z.count("alias.test"); n != 1 || len(z.queries()) != 1 {
		t.Fatalf("chain in answer needed %d queries", len(z.queries()))
	}

	a = c.MX(ctx, "loop1.test")
	if a.Status != StatusError || !errors.Is(a.Err, ErrCNAMELoop) {
		t.Fatalf("loop: %q %v", a.Status, a.Err)
	}
	// A CNAME to a name that does not exist: NXDOMAIN is about the target.
	a = c.MX(ctx, "dangling.test")
	if a.Status != StatusNXDomain || a.Canonical != "gone.test" {
		t.Fatalf("dangling: %q %q", a.Status, a.Canonical)
	}

	c2 := mustNew(t, Config{Servers: []string{addr}, MaxCNAME: 1})
	a = c2.MX(ctx, "alias.test")
	if a.Status != StatusError || !errors.Is(a.Err, ErrCNAMELong) {
		t.Fatalf("long chain: %q %v", a.Status, a.Err)
	}
}

func TestCNAMERequery(t *testing.T) {
	t.Parallel()
	z := newZone(t, records(testZone)...)
	z.AD = true
	z.StopAtCNAME = true
	addr := startServer(t, z)
	c := mustNew(t, fastConfig(addr))
	ctx := t.Context()

	a := c.MX(ctx, "alias.test")
	if a.Status != StatusOK || len(a.MX) != 3 || !a.Secure {
		t.Fatalf("requery: %q secure %t %v (%v)", a.Status, a.Secure, a.MX, a.Err)
	}
	if a.Canonical != "example.test" || !slices.Equal(a.CNAMEs, []string{"alias2.test", "example.test"}) {
		t.Fatalf("canonical %q cnames %v", a.Canonical, a.CNAMEs)
	}
	var got []string
	for _, q := range z.queries() {
		got = append(got, qstring(q))
	}
	want := []string{"udp alias.test. MX", "udp alias2.test. MX", "udp example.test. MX"}
	if !slices.Equal(got, want) {
		t.Fatalf("queries %v, want %v", got, want)
	}

	// One insecure answer on the chain makes the whole answer insecure.
	z.setInsecure("alias2.test.")
	if a := c.MX(ctx, "alias.test"); a.Status != StatusOK || a.Secure {
		t.Fatalf("insecure link: %q secure %t", a.Status, a.Secure)
	}

	// A loop spread over re-queries is still a loop.
	a = c.MX(ctx, "loop1.test")
	if a.Status != StatusError || !errors.Is(a.Err, ErrCNAMELoop) {
		t.Fatalf("loop: %q %v", a.Status, a.Err)
	}
}

func TestTruncationTCP(t *testing.T) {
	t.Parallel()
	// Big enough that TCP must carry it: 200 TXT records of 200 bytes.
	var big []string
	for i := range 200 {
		big = append(big, fmt.Sprintf(`big.test. 300 IN TXT "%03d%s"`, i, strings.Repeat("x", 197)))
	}
	z := newZone(t, big...)
	z.Override = func(w dns.ResponseWriter, r *dns.Msg) bool {
		if w.LocalAddr().Network() != "udp" {
			return false
		}
		m := new(dns.Msg)
		m.SetReply(r)
		m.Truncated = true
		_ = w.WriteMsg(m)
		return true
	}
	c := mustNew(t, fastConfig(startServer(t, z)))
	a := c.TXT(t.Context(), "big.test")
	if a.Status != StatusOK || len(a.TXT) != 200 {
		t.Fatalf("status %q, %d records (%v)", a.Status, len(a.TXT), a.Err)
	}
	for _, s := range a.TXT {
		if len(s) != 200 {
			t.Fatalf("record of %d bytes", len(s))
		}
	}
	var nets []string
	for _, q := range z.queries() {
		nets = append(nets, q.Net)
	}
	if !slices.Equal(nets, []string{"udp", "tcp"}) || c.Queries() != 2 {
		t.Fatalf("nets %v, Queries %d", nets, c.Queries())
	}
}

// mismatchServer answers from testZone but spoils the first bad replies
// with spoil; bad < 0 spoils all.
func mismatchServer(t *testing.T, bad int, spoil func(m *dns.Msg), alsoGood bool) (string, *zone) {
	z := newZone(t, records(testZone)...)
	var n atomic.Int64
	z.Override = func(w dns.ResponseWriter, r *dns.Msg) bool {
		if bad >= 0 && n.Add(1) > int64(bad) {
			return false
		}
		m := z.reply(r)
		spoil(m)
		_ = w.WriteMsg(m)
		if alsoGood {
			_ = w.WriteMsg(z.reply(r))
		}
		return true
	}
	return startServer(t, z), z
}

func TestMismatchedReplies(t *testing.T) {
	t.Parallel()
	wrongID := func(m *dns.Msg) { m.Id++ }
	wrongName := func(m *dns.Msg) { m.Question[0].Name = "evil.test." }
	wrongType := func(m *dns.Msg) { m.Question[0].Qtype = dns.TypeA }
	wrongClass := func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }
	caseOnly := func(m *dns.Msg) { m.Question[0].Name = "EXAMPLE.test." }
	for _, tc := range []struct {
		name     string
		bad      int
		spoil    func(*dns.Msg)
		alsoGood bool
		want     Status
		queries  int64
	}{
		// A forged datagram then the real one: the same attempt succeeds.
		{"wrong-id-then-right", 1, wrongID, true, StatusOK, 1},
		{"wrong-name-then-right", 1, wrongName, true, StatusOK, 1},
		// Only a bad reply to the first attempt: the second succeeds.
		{"wrong-id-first-attempt", 1, wrongID, false, StatusOK, 2},
		{"wrong-type-first-attempt", 1, wrongType, false, StatusOK, 2},
		{"wrong-class-first-attempt", 1, wrongClass, false, StatusOK, 2},
		{"never-right-name", -1, wrongName, false, StatusError, 3},
		{"name-case-differs", -1, caseOnly, false, StatusOK, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr, _ := mismatchServer(t, tc.bad, tc.spoil, tc.alsoGood)
			cfg := fastConfig(addr)
			cfg.Timeout = 200 * time.Millisecond
			c := mustNew(t, cfg)
			a := c.MX(t.Context(), "example.test")
			if a.Status != tc.want {
				t.Fatalf("status %q, want %q (%v)", a.Status, tc.want, a.Err)
			}
			if tc.want == StatusOK && len(a.MX) != 3 {
				t.Fatalf("MX %v", a.MX)
			}
			if tc.want == StatusError && !errors.Is(a.Err, ErrMismatch) {
				t.Fatalf("err %v, want ErrMismatch", a.Err)
			}
			if c.Queries() != tc.queries {
				t.Fatalf("Queries %d, want %d", c.Queries(), tc.queries)
			}
		})
	}
}

func TestMismatchTCP(t *testing.T) {
	t.Parallel()
	z := newZone(t, records(testZone)...)
	z.Override = func(w dns.ResponseWriter, r *dns.Msg) bool {
		m := z.reply(r)
		if w.LocalAddr().Network() == "udp" {
			m.Answer, m.Truncated = nil, true
		} else {
			m.Id++
		}
		_ = w.WriteMsg(m)
		return true
	}
	cfg := fastConfig(startServer(t, z))
	cfg.Attempts = 2
	c := mustNew(t, cfg)
	a := c.MX(t.Context(), "example.test")
	if a.Status != StatusError || !errors.Is(a.Err, ErrMismatch) {
		t.Fatalf("status %q err %v", a.Status, a.Err)
	}
	if c.Queries() != 4 {
		t.Fatalf("Queries %d, want 4 (2 x UDP+TCP)", c.Queries())
	}
}

func TestTimeoutAttempts(t *testing.T) {
	t.Parallel()
	addr, z := statusServer(t)
	cfg := fastConfig(addr)
	cfg.Timeout = 100 * time.Millisecond
	c := mustNew(t, cfg)
	start := time.Now()
	a := c.TXT(t.Context(), "drop.test")
	if a.Status != StatusTimeout || !errors.Is(a.Err, ErrTimeout) {
		t.Fatalf("status %q err %v", a.Status, a.Err)
	}
	if c.Queries() != 3 || z.count("drop.test") != 3 {
		t.Fatalf("Queries %d, server saw %d, want 3", c.Queries(), z.count("drop.test"))
	}
	// 3 timeouts and back-offs of 100ms and 200ms.
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Fatalf("gave up after %v: no back-off?", d)
	}
}

func TestServfailRetried(t *testing.T) {
	t.Parallel()
	addr, z := statusServer(t)
	cfg := fastConfig(addr)
	cfg.Attempts = 5
	c := mustNew(t, cfg)
	if a := c.MX(t.Context(), "servfail.test"); a.Status != StatusServfail {
		t.Fatalf("status %q", a.Status)
	}
	if n := z.count("servfail.test"); n != 2 {
		t.Fatalf("servfail asked %d times, want 2", n)
	}

	// A SERVFAIL then an answer.
	z2 := newZone(t, records(testZone)...)
	var n atomic.Int64
	z2.Override = func(w dns.ResponseWriter, r *dns.Msg) bool {
		if n.Add(1) == 1 {
			rcodeReply(w, r, dns.RcodeServerFailure)
			return true
		}
		return false
	}
	c2 := mustNew(t, fastConfig(startServer(t, z2)))
	if a := c2.MX(t.Context(), "example.test"); a.Status != StatusOK || len(a.MX) != 3 {
		t.Fatalf("status %q %v", a.Status, a.Err)
	}
	if c2.Queries() != 2 {
		t.Fatalf("Queries %d", c2.Queries())
	}
}

func TestRotateServers(t *testing.T) {
	t.Parallel()
	zd := newZone(t)
	zd.Override = func(dns.ResponseWriter, *dns.Msg) bool { return true } // drops all
	dead := startServer(t, zd)
	zl := newZone(t, records(testZone)...)
	live := startServer(t, zl)
	c := mustNew(t, Config{Servers: []string{dead, live}, Timeout: 100 * time.Millisecond, Attempts: 2})
	a := c.MX(t.Context(), "example.test")
	if a.Status != StatusOK {
		t.Fatalf("status %q %v", a.Status, a.Err)
	}
	if len(zd.queries()) != 1 || len(zl.queries()) != 1 {
		t.Fatalf("dead saw %d, live saw %d", len(zd.queries()), len(zl.queries()))
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	addr, z := statusServer(t)
	got := make(chan struct{}, 1)
	z.setHook(func(query) {
		select {
		case got <- struct{}{}:
		default:
		}
	})
	cfg := fastConfig(addr)
	cfg.Timeout = 30 * time.Second
	c := mustNew(t, cfg)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan MXAnswer)
	go func() { done <- c.MX(ctx, "drop.test") }()
	<-got
	start := time.Now()
	cancel()
	select {
	case a := <-done:
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("returned %v after cancel", d)
		}
		if !a.Status.Temporary() || !errors.Is(a.Err, context.Canceled) {
			t.Fatalf("status %q err %v", a.Status, a.Err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("lookup did not return after cancel")
	}

	// An expired ctx deadline is a timeout.
	ctx2, cancel2 := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel2()
	if a := c.MX(ctx2, "drop.test"); a.Status != StatusTimeout || !errors.Is(a.Err, context.DeadlineExceeded) {
		t.Fatalf("deadline: status %q err %v", a.Status, a.Err)
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	z := newZone(t, records(testZone)...)
	cfg := fastConfig(startServer(t, z))
	cfg.Rate = 5
	cfg.ratePer = 200 * time.Millisecond
	c := mustNew(t, cfg)

	// 60 lookups wanted within 500ms; the limiter allows a burst of 5 per
	// 200ms, about 15-20 in the window.
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	var ok atomic.Int64
	for range 60 {
		wg.Go(func() {
			if a := c.MX(ctx, "example.test"); a.Status == StatusOK {
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	n := len(z.queries())
	t.Logf("server saw %d queries", n)
	if n < 5 || n > 30 {
		t.Fatalf("server saw %d queries in 500ms at 5/200ms", n)
	}
	if ok.Load() > int64(n) || ok.Load() < 5 {
		t.Fatalf("%d ok answers for %d queries", ok.Load(), n)
	}

	// Close releases waiters and fails later lookups.
	c.Close()
	if a := c.MX(t.Context(), "example.test"); a.Status != StatusError || !errors.Is(a.Err, ErrClosed) {
		t.Fatalf("after Close: %q %v", a.Status, a.Err)
	}
	c.Close()
}

func TestAddrs(t *testing.T) {
	t.Parallel()
	addr, _ := statusServer(t)
	z := newZone(t, records(testZone)...)
	z.AD = true
	z.setInsecure("v6only.example.test.")
	secureAddr := startServer(t, z)
	c := mustNew(t, fastConfig(addr))
	cs := mustNew(t, fastConfig(secureAddr))
	ctx := t.Context()
	ip := netip.MustParseAddr

	a := c.Addrs(ctx, "MX1.example.test.", true)
	want := []netip.Addr{ip("192.0.2.1"), ip("192.0.2.2"), ip("2001:db8::1")}
	if a.Status != StatusOK || !slices.Equal(a.Addrs, want) || a.Canonical != "mx1.example.test" {
		t.Fatalf("both: %q %v %q", a.Status, a.Addrs, a.Canonical)
	}
	a = c.Addrs(ctx, "mx1.example.test", false)
	if a.Status != StatusOK || !slices.Equal(a.Addrs, want[:2]) {
		t.Fatalf("v4 only asked: %q %v", a.Status, a.Addrs)
	}
	// Without IPv6, an IPv6-only name is told apart from a dangling one.
	if a = c.Addrs(ctx, "v6only.example.test", false); a.Status != StatusOK || len(a.Addrs) != 0 ||
		!slices.Equal(a.IPv6Only, []netip.Addr{ip("2001:db8::9")}) {
		t.Fatalf("v6only without ipv6: %q %v %v", a.Status, a.Addrs, a.IPv6Only)
	}
	if a = c.Addrs(ctx, "v6only.example.test", true); a.Status != StatusOK || !slices.Equal(a.Addrs, []netip.Addr{ip("2001:db8::9")}) {
		t.Fatalf("v6only: %q %v", a.Status, a.Addrs)
	}
	if a = c.Addrs(ctx, "nothere.test", true); a.Status != StatusNXDomain || !errors.Is(a.Err, ErrNXDomain) {
		t.Fatalf("nxdomain: %q %v", a.Status, a.Err)
	}
	if a = c.Addrs(ctx, "example.test", true); a.Status != StatusNoData {
		t.Fatalf("nodata: %q", a.Status)
	}
	if a = c.Addrs(ctx, "servfail.test", true); a.Status != StatusServfail {
		t.Fatalf("servfail: %q", a.Status)
	}

	// Secure only if every RRset used is.
	if a = cs.Addrs(ctx, "mx1.example.test", true); a.Status != StatusOK || !a.Secure {
		t.Fatalf("secure: %q %t", a.Status, a.Secure)
	}
	if a = cs.Addrs(ctx, "v6only.example.test", true); a.Status != StatusOK || a.Secure {
		t.Fatalf("insecure AAAA: %q %t", a.Status, a.Secure)
	}
}

func TestMergeAddrs(t *testing.T) {
	t.Parallel()
	set := func(s Status, secure bool, addrs ...string) rrset {
		r := rrset{Answer: Answer{Status: s, Secure: secure}}
		for _, a := range addrs {
			rr, err := dns.NewRR(a)
			if err != nil {
				t.Fatal(err)
			}
			r.rrs = append(r.rrs, rr)
		}
		return r
	}
	a4 := "h. 1 IN A 192.0.2.1"
	for _, tc := range []struct {
		name   string
		v4, v6 rrset
		want   Status
		secure bool
	}{
		{"a-ok-aaaa-nodata", set(StatusOK, true, a4), set(StatusNoData, true), StatusOK, true},
		{"a-ok-aaaa-insecure-nodata", set(StatusOK, true, a4), set(StatusNoData, false), StatusOK, false},
		{"a-ok-aaaa-timeout", set(StatusOK, true, a4), set(StatusTimeout, false), StatusOK, true},
		{"nxdomain-wins", set(StatusNoData, true), set(StatusNXDomain, true), StatusNXDomain, true},
		{"nxdomain-wins-v4", set(StatusNXDomain, true), set(StatusNoData, true), StatusNXDomain, true},
		{"temporary-wins", set(StatusNXDomain, true), set(StatusServfail, false), StatusServfail, false},
		{"temporary-v4", set(StatusTimeout, false), set(StatusNoData, true), StatusTimeout, false},
		{"ok-without-addresses", set(StatusOK, true), set(StatusNoData, true), StatusNoData, true},
	} {
		a := mergeAddrs(tc.v4, tc.v6)
		if a.Status != tc.want || a.Secure != tc.secure {
			t.Errorf("%s: %q secure %t, want %q %t", tc.name, a.Status, a.Secure, tc.want, tc.secure)
		}
	}
}

func TestTXTAndTLSA(t *testing.T) {
	t.Parallel()
	c := mustNew(t, fastConfig(startServer(t, newZone(t, records(testZone)...))))
	ctx := t.Context()
	a := c.TXT(ctx, "example.test")
	slices.Sort(a.TXT)
	if a.Status != StatusOK || !slices.Equal(a.TXT, []string{"second", "v=spf1 -all"}) {
		t.Fatalf("TXT %q %q", a.Status, a.TXT)
	}
	ta := c.TLSA(ctx, "_25._tcp.MX1.example.test")
	want := TLSARecord{Usage: 3, Selector: 1, MatchingType: 1, Data: []byte{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef}}
	if ta.Status != StatusOK || len(ta.Records) != 1 {
		t.Fatalf("TLSA %q %v", ta.Status, ta.Records)
	}
	r := ta.Records[0]
	if r.Usage != want.Usage || r.Selector != want.Selector || r.MatchingType != want.MatchingType || string(r.Data) != string(want.Data) {
		t.Fatalf("TLSA %+v, want %+v", r, want)
	}
	if ta := c.TLSA(ctx, "_25._tcp.mx2.example.test"); ta.Status != StatusNXDomain || ta.Records != nil {
		t.Fatalf("no TLSA: %q %v", ta.Status, ta.Records)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{
		{},
		{Servers: []string{"127.0.0.1"}},
		{Servers: []string{"dns.example:53"}},
		{Servers: []string{"127.0.0.1:0"}},
		{Servers: []string{"::1:53"}},
		{Servers: []string{"127.0.0.1:53"}, Timeout: -1},
		{Servers: []string{"127.0.0.1:53"}, Attempts: -1},
		{Servers: []string{"127.0.0.1:53"}, Rate: -1},
		{Servers: []string{"127.0.0.1:53"}, MaxCNAME: -1},
		{Servers: []string{"127.0.0.1:53"}, UDPSize: 100},
	} {
		if _, err := New(cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: err %v, want ErrConfig", cfg, err)
		}
	}
	c, err := New(Config{Servers: []string{"[::1]:5353"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.timeout != DefaultTimeout || c.attempts != DefaultAttempts || c.maxCNAME != DefaultMaxCNAME || c.udpSize != DefaultUDPSize {
		t.Fatalf("defaults: %+v", c)
	}
}

func BenchmarkMX(b *testing.B) {
	c := mustNew(b, Config{Servers: []string{startServer(b, newZone(b, records(testZone)...))}})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if a := c.MX(ctx, "example.test"); a.Status != StatusOK {
			b.Fatalf("status %q: %v", a.Status, a.Err)
		}
	}
}
