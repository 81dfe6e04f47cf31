package scanner_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tlsready/tlsready/scanner"
	"github.com/tlsready/tlsready/scanner/resolve"
	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/scanner/scantest"
	"github.com/tlsready/tlsready/scanner/smtpprobe"
)

// lab is a scanner pointed at a simulated world.
type lab struct {
	world *scantest.Internet
	res   *resolve.Client
	sc    *scanner.Scanner
}

func newLab(t *testing.T, b *scantest.Builder, tune func(*scanner.Config)) *lab {
	t.Helper()
	sc, err := b.Scenario()
	if err != nil {
		t.Fatal(err)
	}
	world := scantest.StartT(t, sc)
	trust := true
	res, err := resolve.New(resolve.Config{Servers: []string{world.DNSAddr}, TrustAD: &trust, Timeout: 500 * time.Millisecond, Attempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(res.Close)
	cfg := scanner.Config{
		Resolver: res,
		Probe: smtpprobe.Config{
			Port: world.SMTPPort, HELO: "test.tlsready.invalid",
			ConnectTimeout: time.Second, BannerTimeout: time.Second, CommandTimeout: time.Second, Timeout: 6 * time.Second,
		},
		RootCAs:      world.CA.Pool(),
		HTTPSPort:    world.HTTPSPort,
		Rate:         10000,
		AllowPrivate: true,
		TempRetry:    []time.Duration{100 * time.Millisecond, 200 * time.Millisecond},
	}
	if tune != nil {
		tune(&cfg)
	}
	s, err := scanner.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return &lab{world: world, res: res, sc: s}
}

// scanAll runs the domains through Run and returns the results by domain.
func (l *lab) scanAll(ctx context.Context, domains ...string) map[string]result.Result {
	in := make(chan string)
	go func() {
		defer close(in)
		for _, d := range domains {
			in <- d
		}
	}()
	var mu sync.Mutex
	out := map[string]result.Result{}
	l.sc.Run(ctx, in, func(r result.Result) {
		mu.Lock()
		out[r.Domain] = r
		mu.Unlock()
	})
	return out
}

// want is a scenario's expected verdict and a flag it must carry ("": any).
type want struct {
	want result.Verdict
	flag string
}

// scanCases scans the domains of cases and checks each verdict and flag.
func (l *lab) scanCases(t *testing.T, cases map[string]want) map[string]result.Result {
	t.Helper()
	var domains []string
	for d := range cases {
		domains = append(domains, d)
	}
	got := l.scanAll(context.Background(), domains...)
	for d, c := range cases {
		r := got[d]
		if r.Verdict != c.want {
			t.Errorf("%s: %s (%s, %v), want %s", d, r.Verdict, r.Reason, r.Flags, c.want)
		}
		if c.flag != "" && !hasFlag(r, c.flag) {
			t.Errorf("%s: flags %v lack %s", d, r.Flags, c.flag)
		}
	}
	return got
}

func hasFlag(r result.Result, f string) bool {
	for _, x := range r.Flags {
		if x == f {
			return true
		}
	}
	return false
}

// TestHostileSMTP: every broken or malicious mail server ends within its
// deadlines with the verdict docs/verdicts.md gives and a flag saying why.
//
// Not parallel: it checks that no goroutine outlives the scan (goleak), and a
// sequential test runs while the package's parallel tests wait.
func TestHostileSMTP(t *testing.T) {
	cases := []struct {
		domain string
		host   scantest.SMTPHost
		want   result.Verdict
		flag   string
	}{
		{"silent.test", scantest.SMTPHost{Silent: true}, result.Unreachable, result.FlagTimeout},
		{"drip.test", scantest.SMTPHost{DripBanner: 300 * time.Millisecond}, result.Unreachable, result.FlagTimeout},
		{"banner421.test", scantest.SMTPHost{BannerCode: 421}, result.Unreachable, result.FlagBannerRefused},
		{"banner554.test", scantest.SMTPHost{BannerCode: 554}, result.Unreachable, result.FlagBannerRefused},
		// Lost before the EHLO reply: a sender defers, nothing goes in plaintext.
		{"endless.test", scantest.SMTPHost{EndlessMultiline: true}, result.Unreachable, result.FlagEHLOLost},
		{"hugeline.test", scantest.SMTPHost{HugeLine: 10 << 20}, result.Unreachable, result.FlagEHLOLost},
		{"closeehlo.test", scantest.SMTPHost{CloseAfterEHLO: true}, result.Unreachable, result.FlagEHLOLost},
		{"nostarttls.test", scantest.SMTPHost{NoSTARTTLS: true}, result.Plaintext, result.FlagNoSTARTTLS},
		{"454.test", scantest.SMTPHost{STARTTLSReply: "454 4.7.0 TLS not available"}, result.Plaintext, result.FlagSTARTTLSRefused},
		{"garbage.test", scantest.SMTPHost{GarbageAfterSTARTTLS: true}, result.Plaintext, result.FlagHandshakeFailed},
		{"alert.test", scantest.SMTPHost{AlertAfterSTARTTLS: true}, result.Plaintext, result.FlagHandshakeFailed},
		{"reset.test", scantest.SMTPHost{ResetInHandshake: true}, result.Plaintext, result.FlagHandshakeFailed},
		{"silenttls.test", scantest.SMTPHost{SilentAfterTLS: true}, result.Verified, ""},
		{"down.test", scantest.SMTPHost{Down: true}, result.Unreachable, result.FlagConnectFailed},
		{"selfsigned.test", scantest.SMTPHost{Cert: scantest.CertSelfSigned}, result.Encrypted, result.FlagCertSelfSigned},
		{"expired.test", scantest.SMTPHost{Cert: scantest.CertExpired}, result.Encrypted, result.FlagCertExpired},
		{"wrongname.test", scantest.SMTPHost{Cert: scantest.CertWrongName}, result.Encrypted, result.FlagCertNameMismatch},
		{"untrusted.test", scantest.SMTPHost{Cert: scantest.CertUntrusted}, result.Encrypted, result.FlagCertUntrusted},
		// Signed with SHA-1 by the trusted CA: refused by crypto/x509 and by
		// OpenSSL 3 at its default security level alike.
		{"sha1.test", scantest.SMTPHost{Cert: scantest.CertSHA1}, result.Encrypted, result.FlagCertUntrusted},
		{"tls10.test", scantest.SMTPHost{MinVersion: 0x0301, MaxVersion: 0x0301}, result.Verified, result.FlagTLS10},
	}
	b := scantest.NewBuilder(nil)
	var domains []string
	for _, c := range cases {
		b.MailDomain(c.domain, c.host)
		domains = append(domains, c.domain)
	}
	l := newLab(t, b, nil)
	before := goleak.IgnoreCurrent() // the simulated world's listeners
	start := time.Now()
	got := l.scanAll(context.Background(), domains...)
	if el := time.Since(start); el > 30*time.Second {
		t.Errorf("hostile scan took %v; deadlines not enforced", el)
	}
	for _, c := range cases {
		r, ok := got[c.domain]
		if !ok {
			t.Errorf("%s: no result", c.domain)
			continue
		}
		if r.Verdict != c.want {
			t.Errorf("%s: verdict %s (%s, %v), want %s", c.domain, r.Verdict, r.Reason, r.Flags, c.want)
		}
		if c.flag != "" && !hasFlag(r, c.flag) {
			t.Errorf("%s: flags %v lack %s", c.domain, r.Flags, c.flag)
		}
	}
	if n := l.world.Counters().Commands["MAIL"]; n != 0 {
		t.Errorf("MAIL sent %d times", n)
	}
	// No goroutine of ours outlives the probes. The simulated servers'
	// connection handlers end on their own timers (a tarpit keeps talking
	// after the scanner hung up), so they are not ours to count.
	goleak.VerifyNone(t, before, goleak.IgnoreAnyFunction("github.com/tlsready/tlsready/scanner/scantest.(*smtpServer).serve"))
}

// TestSharedProvider: a provider hosting many domains is probed once per IP.
func TestSharedProvider(t *testing.T) {
	t.Parallel()
	b := scantest.NewBuilder(nil)
	b.Host("mx1.provider.test", scantest.SMTPHost{})
	b.Host("mx1.provider.test", scantest.SMTPHost{})
	b.Host("mx2.provider.test", scantest.SMTPHost{})
	var domains []string
	for i := range 200 {
		d := "d" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + "-" + fmt.Sprintf("%03d", i) + ".test"
		b.MX(d, "mx1.provider.test", "mx2.provider.test")
		domains = append(domains, d)
	}
	l := newLab(t, b, func(c *scanner.Config) { c.Concurrency = 64 })
	got := l.scanAll(context.Background(), domains...)
	if len(got) != len(domains) {
		t.Fatalf("%d results for %d domains", len(got), len(domains))
	}
	for d, r := range got {
		if r.Verdict != result.Verified {
			t.Errorf("%s: %s (%s)", d, r.Verdict, r.Reason)
		}
	}
	c := l.world.Counters()
	if c.SMTPConnections != 3 || l.sc.Stats().MXIPs != 3 || l.sc.Stats().Connections != 3 {
		t.Errorf("connections: server saw %d, scanner made %d over %d MX IPs; want 3 each",
			c.SMTPConnections, l.sc.Stats().Connections, l.sc.Stats().MXIPs)
	}
	if m := c.MaxConcurrency(); m > 1 {
		t.Errorf("an IP saw %d concurrent connections", m)
	}
	// Host address lookups are shared too: 2 A queries, not 400.
	if a := c.DNSQueriesByType["A"]; a > 4 {
		t.Errorf("%d A queries for 2 MX hosts", a)
	}
}

// TestPrivateAddressesRefused: by default a hostile MX record pointing at
// loopback or private space is never connected to.
func TestPrivateAddressesRefused(t *testing.T) {
	t.Parallel()
	b := scantest.NewBuilder(nil)
	b.MailDomain("inside.test", scantest.SMTPHost{})
	b.Zone("localhost.test. 300 IN MX 10 localhost.", "localhost. 300 IN A 127.0.0.1")
	l := newLab(t, b, func(c *scanner.Config) { c.AllowPrivate = false })
	got := l.scanAll(context.Background(), "inside.test", "localhost.test")
	for _, d := range []string{"inside.test", "localhost.test"} {
		r := got[d]
		if r.Verdict != result.Unreachable || !hasFlag(r, result.FlagMXPrivate) {
			t.Errorf("%s: %s %v, want unreachable with %s", d, r.Verdict, r.Flags, result.FlagMXPrivate)
		}
	}
	if n := l.world.Counters().SMTPConnections; n != 0 {
		t.Errorf("%d connections to private addresses", n)
	}
	for _, ip := range []string{"10.1.2.3", "192.168.1.1", "169.254.1.1", "::1", "fe80::1", "100.64.0.1", "0.0.0.0", "::ffff:127.0.0.1", "224.0.0.1"} {
		if !scanner.Forbidden(netip.MustParseAddr(ip)) {
			t.Errorf("Forbidden(%s) = false", ip)
		}
	}
	for _, ip := range []string{"8.8.8.8", "2001:4860:4860::8888", "133.242.0.1"} {
		if scanner.Forbidden(netip.MustParseAddr(ip)) {
			t.Errorf("Forbidden(%s) = true", ip)
		}
	}
}

// blackhole is a network where outbound port 25 is filtered: every dial
// hangs until its deadline.
type blackhole struct{}

func (blackhole) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	<-ctx.Done()
	return nil, &net.OpError{Op: "dial", Net: network, Err: ctx.Err()}
}

// TestPort25Blocked: when every probe times out at connect while DNS works,
// the run stops with ErrPort25Blocked instead of calling every domain
// unreachable, and no result is handed out after the stop.
func TestPort25Blocked(t *testing.T) {
	t.Parallel()
	b := scantest.NewBuilder(nil)
	var domains []string
	for i := range 40 {
		d := "blocked" + fmt.Sprintf("%03d", i) + ".test"
		b.MailDomain(d, scantest.SMTPHost{})
		domains = append(domains, d)
	}
	l := newLab(t, b, func(c *scanner.Config) {
		c.Probe.Dialer = blackhole{}
		c.Probe.ConnectTimeout = 100 * time.Millisecond
		c.HealthProbes = 10
		c.Concurrency = 5
	})
	got := l.scanAll(context.Background(), domains...)
	if !errors.Is(l.sc.Err(), scanner.ErrPort25Blocked) {
		t.Fatalf("Err() = %v, want ErrPort25Blocked", l.sc.Err())
	}
	if len(got) >= len(domains) {
		t.Errorf("the scan went on after the network was found blocked: %d results", len(got))
	}
}

// TestResolverDead: a resolver that never answers, or an address where
// nothing listens (ICMP port unreachable), stops the run.
func TestResolverDead(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		listen bool // keep a socket that reads and never answers
	}{{"silent", true}, {"refused", false}} {
		t.Run(tc.name, func(t *testing.T) {
			pc, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := pc.LocalAddr().String()
			if tc.listen {
				t.Cleanup(func() { pc.Close() })
			} else {
				pc.Close()
			}
			res, err := resolve.New(resolve.Config{Servers: []string{addr}, Timeout: 50 * time.Millisecond, Attempts: 1})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(res.Close)
			s, err := scanner.New(scanner.Config{Resolver: res, Concurrency: 20, AllowPrivate: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(s.Close)
			in := make(chan string)
			go func() {
				defer close(in)
				for i := range 300 {
					in <- tc.name + fmt.Sprintf("%03d", i) + ".test"
				}
			}()
			s.Run(context.Background(), in, func(result.Result) {})
			if !errors.Is(s.Err(), scanner.ErrResolverDead) {
				t.Fatalf("Err() = %v, want ErrResolverDead", s.Err())
			}
		})
	}
}

// TestPolicyScenarios: MTA-STS fetch failures are "no policy" (flagged),
// never broken; testing mode is not enforcement.
func TestPolicyScenarios(t *testing.T) {
	t.Parallel()
	b := scantest.NewBuilder(nil)
	week := 7 * 24 * time.Hour
	enforce := scantest.Policy("enforce", week, "*.sts.test")
	cases := []struct {
		domain string
		policy scantest.HTTPSHost
		want   result.Verdict
		flag   string
	}{
		{"good", scantest.HTTPSHost{Body: enforce}, result.MTASTS, ""},
		{"lf", scantest.HTTPSHost{Body: strings.ReplaceAll(enforce, "\r\n", "\n")}, result.MTASTS, ""},
		{"testing", scantest.HTTPSHost{Body: scantest.Policy("testing", week, "*.sts.test")}, result.Verified, result.FlagSTSTesting},
		{"none", scantest.HTTPSHost{Body: scantest.Policy("none", week)}, result.Verified, result.FlagSTSNone},
		{"redirect", scantest.HTTPSHost{Redirect: "https://example.test/"}, result.Verified, result.FlagSTSFetchFailed},
		{"notfound", scantest.HTTPSHost{Status: 404}, result.Verified, result.FlagSTSFetchFailed},
		{"html", scantest.HTTPSHost{Body: enforce, ContentType: "text/html"}, result.Verified, result.FlagSTSFetchFailed},
		{"badcert", scantest.HTTPSHost{Body: enforce, Cert: scantest.CertSelfSigned}, result.Verified, result.FlagSTSFetchFailed},
		{"huge", scantest.HTTPSHost{Body: enforce, HugeBody: 1 << 20}, result.Verified, result.FlagSTSFetchFailed},
		{"slow", scantest.HTTPSHost{Body: enforce, DripBody: 200 * time.Millisecond}, result.Verified, result.FlagSTSFetchFailed},
		{"mismatch", scantest.HTTPSHost{Body: scantest.Policy("enforce", week, "mx.elsewhere.test")}, result.Broken, result.FlagSTSMXMismatch},
	}
	b.Host("mx.sts.test", scantest.SMTPHost{})
	var domains []string
	for _, c := range cases {
		d := c.domain + ".test"
		b.MX(d, "mx.sts.test")
		b.MTASTS(d, c.policy, "20260101")
		domains = append(domains, d)
	}
	b.MailDomain("badcertsts.test", scantest.SMTPHost{Cert: scantest.CertSelfSigned})
	b.MTASTS("badcertsts.test", scantest.HTTPSHost{Body: scantest.Policy("enforce", week, "*.badcertsts.test")}, "1")
	domains = append(domains, "badcertsts.test")
	l := newLab(t, b, func(c *scanner.Config) { c.STSTimeout = 2 * time.Second })
	got := l.scanAll(context.Background(), domains...)
	for _, c := range cases {
		r := got[c.domain+".test"]
		if r.Verdict != c.want {
			t.Errorf("%s: %s (%s, %v), want %s", c.domain, r.Verdict, r.Reason, r.Flags, c.want)
		}
		if c.flag != "" && !hasFlag(r, c.flag) {
			t.Errorf("%s: flags %v lack %s", c.domain, r.Flags, c.flag)
		}
	}
	if r := got["badcertsts.test"]; r.Verdict != result.Broken || !hasFlag(r, result.FlagSTSCertInvalid) {
		t.Errorf("enforce with a self-signed MX certificate: %s %v", r.Verdict, r.Flags)
	}
}

// TestHostileDNS: broken and hostile DNS answers end with the verdict
// docs/verdicts.md gives and a flag saying what happened.
func TestHostileDNS(t *testing.T) {
	t.Parallel()
	b := scantest.NewBuilder(nil)
	b.Host("mx.ok.test", scantest.SMTPHost{})
	b.MX("truncated.test", "mx.ok.test")
	b.Fault("truncated.test", scantest.FaultTruncate)
	var many []string
	for i := range 300 {
		many = append(many, "mx"+fmt.Sprintf("%03d", i)+".many.test")
	}
	b.MX("many.test", many...)
	b.Zone("loop.test. 300 IN MX 10 a.loop.test.", "a.loop.test. 300 IN CNAME b.loop.test.", "b.loop.test. 300 IN CNAME a.loop.test.")
	b.Zone("literal.test. 300 IN MX 10 192.0.2.1.")
	b.Zone("dangling.test. 300 IN MX 10 nowhere.dangling.test.")
	b.MX("timeout.test", "mx.ok.test")
	b.Fault("timeout.test", scantest.FaultTimeout)
	b.MX("servfail.test", "mx.ok.test")
	b.Fault("servfail.test", scantest.FaultServfail)
	b.MX("wrongid.test", "mx.ok.test")
	b.Fault("wrongid.test", scantest.FaultWrongID)
	b.MX("wrongq.test", "mx.ok.test")
	b.Fault("wrongq.test", scantest.FaultWrongQuestion)
	b.Zone("nullmx.test. 300 IN MX 0 .")
	b.Zone("implicit.test. 300 IN A 127.16.0.1")
	cases := map[string]want{
		"truncated.test": {result.Verified, ""},
		"many.test":      {result.Unreachable, result.FlagMXTruncated},
		"loop.test":      {result.DNSError, ""},
		"literal.test":   {result.Unreachable, result.FlagMXIPLiteral},
		"dangling.test":  {result.Unreachable, result.FlagMXDangling},
		"timeout.test":   {result.DNSError, result.FlagDNSTimeout},
		"servfail.test":  {result.DNSError, result.FlagServfail},
		"wrongid.test":   {result.DNSError, ""},
		"wrongq.test":    {result.DNSError, ""},
		"nullmx.test":    {result.NoMail, result.FlagNullMX},
		"nxdomain.test":  {result.NoMail, result.FlagNXDomain},
		"implicit.test":  {result.Encrypted, result.FlagImplicitMX}, // the server's certificate names mx.ok.test
	}
	l := newLab(t, b, nil)
	got := l.scanCases(t, cases)
	if n := len(got["many.test"].MX); n != 10 {
		t.Errorf("many.test: %d MX hosts looked at, want the cap of 10", n)
	}
}

// TestDANEScenarios: RFC 7672 rules through the real scan path.
func TestDANEScenarios(t *testing.T) {
	t.Parallel()
	b := scantest.NewBuilder(nil)
	add := func(domain string, secure bool, tlsa func(host string)) {
		host := "mx." + domain
		if secure {
			b.Secure(domain)
		}
		b.MailDomain(domain, scantest.SMTPHost{Name: host})
		tlsa(host)
	}
	add("ee.test", true, func(h string) { b.DANE(h, 3, 1, 1) })
	add("ee-full.test", true, func(h string) { b.DANE(h, 3, 0, 2) })
	// DANE-TA: the server must present the trust anchor (RFC 7671 §5.2.2).
	b.Secure("ta.test")
	b.MailDomain("ta.test", scantest.SMTPHost{Name: "mx.ta.test", Cert: scantest.CertChain})
	b.DANE("mx.ta.test", 2, 0, 1)
	add("ta-not-sent.test", true, func(h string) { b.DANE(h, 2, 0, 1) })
	add("mismatch.test", true, func(h string) { b.BadTLSA(h) })
	add("unusable.test", true, func(h string) { b.DANE(h, 1, 1, 1) })
	add("insecure.test", false, func(h string) { b.DANE(h, 3, 1, 1) })
	add("servfail.test", true, func(h string) { b.Fault("_25._tcp."+h, scantest.FaultServfail) })
	// DANE and MTA-STS both published: dane wins (RFC 8461 §2).
	add("both.test", true, func(h string) { b.DANE(h, 3, 1, 1) })
	b.MTASTS("both.test", scantest.HTTPSHost{Body: scantest.Policy("enforce", 24*time.Hour, "mx.both.test")}, "1")
	// A passing MTA-STS never overrides failing DANE.
	add("stsbutdanefails.test", true, func(h string) { b.BadTLSA(h) })
	b.MTASTS("stsbutdanefails.test", scantest.HTTPSHost{Body: scantest.Policy("enforce", 24*time.Hour, "mx.stsbutdanefails.test")}, "1")
	cases := map[string]want{
		"ee.test":              {result.DANE, ""},
		"ee-full.test":         {result.DANE, ""},
		"ta.test":              {result.DANE, ""},
		"ta-not-sent.test":     {result.Broken, result.FlagDANEMismatch},
		"mismatch.test":        {result.Broken, result.FlagDANEMismatch},
		"unusable.test":        {result.Verified, result.FlagTLSAUnusable},
		"insecure.test":        {result.Verified, ""},
		"servfail.test":        {result.DNSError, result.FlagTLSAServfail},
		"both.test":            {result.DANE, ""},
		"stsbutdanefails.test": {result.Broken, result.FlagDANEMismatch},
	}
	l := newLab(t, b, nil)
	got := l.scanCases(t, cases)
	if r := got["insecure.test"]; len(r.MX) == 0 || r.MX[0].TLSA != nil {
		t.Errorf("insecure.test: TLSA looked up although the MX RRset is not secure")
	}
}

// TestPoliteness: the global connection rate holds, as measured by the
// simulated servers, and no IP ever sees two connections at once.
func TestPoliteness(t *testing.T) {
	t.Parallel()
	b := scantest.NewBuilder(nil)
	var domains []string
	for i := range 20 {
		d := "polite" + fmt.Sprintf("%03d", i) + ".test"
		b.MailDomain(d, scantest.SMTPHost{})
		domains = append(domains, d)
	}
	const rate = 6
	l := newLab(t, b, func(c *scanner.Config) { c.Rate = rate; c.Concurrency = 100 })
	got := l.scanAll(context.Background(), domains...)
	if len(got) != len(domains) {
		t.Fatalf("%d results", len(got))
	}
	c := l.world.Counters()
	// The limiter starts at most rate connections in any 1.05 s (in bursts,
	// windowLimiter); the servers count accepts in any sliding second, so
	// allow two for scheduling jitter between the limiter and the accept on
	// a loaded machine.
	if c.PeakConnRate > rate+2 {
		t.Errorf("peak %d connections in one second, limit %d/s", c.PeakConnRate, rate)
	}
	if m := c.MaxConcurrency(); m > 1 {
		t.Errorf("an IP saw %d concurrent connections", m)
	}
}

// TestSTARTTLSRetry: one IP of a host that omits STARTTLS while the host's
// other IP offers it is probed once more before the domain is judged.
func TestSTARTTLSRetry(t *testing.T) {
	t.Parallel()
	b := scantest.NewBuilder(nil)
	good := b.Host("mx.flaky.test", scantest.SMTPHost{})
	bad := b.Host("mx.flaky.test", scantest.SMTPHost{NoSTARTTLS: true})
	b.MX("flaky.test", "mx.flaky.test")
	l := newLab(t, b, nil)
	r := l.scanAll(context.Background(), "flaky.test")["flaky.test"]
	if r.Verdict != result.Partial {
		t.Errorf("verdict %s, want partial", r.Verdict)
	}
	c := l.world.Counters()
	if c.ConnsPerIP[good] != 1 || c.ConnsPerIP[bad] != 2 {
		t.Errorf("connections: good IP %d, IP without STARTTLS %d; want 1 and 2", c.ConnsPerIP[good], c.ConnsPerIP[bad])
	}
	if m := c.MaxConcurrency(); m > 1 {
		t.Errorf("%d concurrent connections to one IP", m)
	}
}

// TestDANEOnSharedIPAfterPlainHost: a probe shared by a host without TLSA
// drops its DER chain; a later host with TLSA on the same IP still gets a
// correct DANE judgement (one more connection for it).
func TestDANEOnSharedIPAfterPlainHost(t *testing.T) {
	t.Parallel()
	b := scantest.NewBuilder(nil)
	ip := b.Host("mx.plain.test", scantest.SMTPHost{})
	b.MX("plain.test", "mx.plain.test")
	cert, err := b.HostCertificate("mx.plain.test")
	if err != nil {
		t.Fatal(err)
	}
	b.Secure("signed.test")
	b.A("mx.signed.test", ip)
	b.MX("signed.test", "mx.signed.test")
	b.TLSA("mx.signed.test", scantest.TLSA(cert.Leaf, 3, 1, 1))
	l := newLab(t, b, nil)
	if r := l.scanAll(context.Background(), "plain.test")["plain.test"]; r.Verdict != result.Verified {
		t.Fatalf("plain.test: %s %v", r.Verdict, r.Flags)
	}
	r := l.scanAll(context.Background(), "signed.test")["signed.test"]
	if r.Verdict != result.DANE {
		t.Errorf("signed.test on the shared IP: %s (%s, %v), want dane", r.Verdict, r.Reason, r.Flags)
	}
	if n := l.world.Counters().ConnsPerIP[ip]; n != 2 {
		t.Errorf("%d connections to the shared IP, want 2 (the shared probe, one for DANE)", n)
	}
}

// TestManyTarpits: a domain whose every MX host is a silent tarpit ends
// after about one banner deadline, not one per host.
func TestManyTarpits(t *testing.T) {
	t.Parallel()
	b := scantest.NewBuilder(nil)
	var hosts []scantest.SMTPHost
	for range 6 {
		hosts = append(hosts, scantest.SMTPHost{Silent: true})
	}
	b.MailDomain("tarpits.test", hosts...)
	l := newLab(t, b, nil) // banner deadline 1 s
	start := time.Now()
	r := l.scanAll(context.Background(), "tarpits.test")["tarpits.test"]
	if el := time.Since(start); el > 4*time.Second {
		t.Errorf("6 tarpit MX hosts took %v; hosts are not probed in parallel", el)
	}
	if r.Verdict != result.Unreachable || len(r.MX) != 6 {
		t.Errorf("%s with %d MX hosts, want unreachable with 6", r.Verdict, len(r.MX))
	}
}
