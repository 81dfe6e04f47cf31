package scanner_test

// Scenarios from the real internet that the verdicts must survive (issue
// "Verdicts that hold on the real internet"): shared hosting with SNI,
// refusals after the banner and greylisting, partial policy failures, TXT
// lookup failures, certificates with hundreds of names, IPv6-only hosts,
// DANE names. Each runs through Scanner.Run against the simulated internet.

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/tlsready/tlsready/scanner"
	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/scanner/scantest"
	"github.com/tlsready/tlsready/store"
)

// sharedIP puts an SMTP server at one fresh IP and points every name at it.
func sharedIP(b *scantest.Builder, h scantest.SMTPHost, names ...string) netip.Addr {
	ip := b.Host(names[0], h)
	for _, n := range names[1:] {
		b.A(n, ip)
	}
	return ip
}

// addrFlags are the flags of every probed address of a result.
func addrFlags(r result.Result) []string {
	var f []string
	for _, h := range r.MX {
		for _, a := range h.Addrs {
			f = append(f, a.Flags...)
		}
	}
	return f
}

// TestSNISharedHosting: on an IP that chooses its certificate by SNI, each
// MX host is judged on the certificate presented for its own name, at one
// connection at a time; an IP that does not is probed once per name set.
func TestSNISharedHosting(t *testing.T) {
	t.Parallel()
	b := scantest.NewBuilder(nil)
	week := 7 * 24 * time.Hour
	// The hoster's IP: one certificate per customer, a default one for the
	// hoster's own name.
	hoster := sharedIP(b, scantest.SMTPHost{SNICerts: map[string]scantest.CertKind{
		"mx.alpha.test": scantest.CertValid,
		"mx.beta.test":  scantest.CertValid,
		"mx.sts.test":   scantest.CertValid,
	}}, "smtp.hoster.test", "mx.alpha.test", "mx.beta.test", "mx.gamma.test", "mx.sts.test")
	b.MX("alpha.test", "mx.alpha.test")
	b.MX("beta.test", "mx.beta.test")
	b.MX("gamma.test", "mx.gamma.test") // not in the SNI map: the default certificate
	b.MX("sts.test", "mx.sts.test")
	b.MTASTS("sts.test", scantest.HTTPSHost{Body: scantest.Policy("enforce", week, "mx.sts.test")}, "1")
	// A provider's IP that presents one certificate for all its names.
	plain := sharedIP(b, scantest.SMTPHost{Certificate: nil}, "mx1.provider.test", "mx2.provider.test", "mx3.provider.test")
	b.MX("p1.test", "mx1.provider.test")
	b.MX("p2.test", "mx2.provider.test")
	b.MX("p3.test", "mx3.provider.test")

	l := newLab(t, b, func(c *scanner.Config) { c.Concurrency = 1 }) // deterministic order of names
	got := l.scanCases(t, map[string]want{
		"alpha.test": {result.Verified, ""},
		"beta.test":  {result.Verified, ""},
		"gamma.test": {result.Encrypted, result.FlagCertNameMismatch},
		"sts.test":   {result.MTASTS, ""},
		"p1.test":    {result.Verified, ""},
		"p2.test":    {result.Encrypted, result.FlagCertNameMismatch},
		"p3.test":    {result.Encrypted, result.FlagCertNameMismatch},
	})
	// The first name's probe was made before anyone knew; the three after
	// it were made per name and say so.
	perName := 0
	for _, d := range []string{"alpha.test", "beta.test", "gamma.test", "sts.test"} {
		if slices.Contains(addrFlags(got[d]), result.FlagSNIPerName) {
			perName++
		}
		if p := got[d].MX[0].Addrs[0].Probe; p.SNI != got[d].MX[0].Name {
			t.Errorf("%s: judged on a probe with SNI %s", d, p.SNI)
		}
	}
	if perName != 3 {
		t.Errorf("%d of 4 domains flagged %s, want 3", perName, result.FlagSNIPerName)
	}
	c := l.world.Counters()
	// The hoster's IP: one probe per name (4 names), the provider's: the
	// first name's probe and the second handshake that showed the leaf
	// does not depend on SNI.
	if n := c.ConnsPerIP[hoster]; n != 4 {
		t.Errorf("SNI-choosing IP: %d connections for 4 names, want 4", n)
	}
	if n := c.ConnsPerIP[plain]; n != 2 {
		t.Errorf("IP with one certificate: %d connections for 3 names, want 2", n)
	}
	if m := c.MaxConcurrency(); m > 1 {
		t.Errorf("an IP saw %d concurrent connections", m)
	}
	if s := l.sc.Stats(); s.SNIPerNameIPs != 1 {
		t.Errorf("Stats.SNIPerNameIPs = %d, want 1", s.SNIPerNameIPs)
	}
}

// TestSNISharedHostingConcurrent: with many domains on one SNI-choosing IP
// scanned at once, every name is still judged on its own certificate and
// the IP never sees two connections at a time.
func TestSNISharedHostingConcurrent(t *testing.T) {
	t.Parallel()
	b := scantest.NewBuilder(nil)
	certs := map[string]scantest.CertKind{}
	var names, domains []string
	for i := range 12 {
		d := fmt.Sprintf("customer%d.test", i)
		certs["mx."+d] = scantest.CertValid
		names = append(names, "mx."+d)
		domains = append(domains, d)
	}
	ip := sharedIP(b, scantest.SMTPHost{SNICerts: certs}, append([]string{"shared.hoster.test"}, names...)...)
	cases := map[string]want{}
	for i, d := range domains {
		b.MX(d, names[i])
		cases[d] = want{result.Verified, ""}
	}
	l := newLab(t, b, func(c *scanner.Config) { c.Concurrency = 12 })
	l.scanCases(t, cases)
	c := l.world.Counters()
	if n := c.ConnsPerIP[ip]; n != int64(len(names)) {
		t.Errorf("%d connections for %d names", n, len(names))
	}
	if m := c.MaxConcurrency(); m > 1 {
		t.Errorf("an IP saw %d concurrent connections", m)
	}
}

// TestReachabilityAsASenderSeesIt: a refusal after the banner, or a lost
// session before the EHLO reply, is not plaintext: a sender defers.
// Greylisting is tried again later in the run.
func TestReachabilityAsASenderSeesIt(t *testing.T) {
	t.Parallel()
	b := scantest.NewBuilder(nil)
	b.MailDomain("ehlo421.test", scantest.SMTPHost{EHLOCode: 421})
	b.MailDomain("ehlo450.test", scantest.SMTPHost{EHLOCode: 450})
	b.MailDomain("ehlo554.test", scantest.SMTPHost{EHLOCode: 554})
	b.MailDomain("greylist.test", scantest.SMTPHost{TempFailFirst: 1})
	b.MailDomain("greylist-ehlo.test", scantest.SMTPHost{TempFailFirst: 2, EHLOCode: 421})
	b.MailDomain("ratelimited.test", scantest.SMTPHost{TempFailFirst: 100})
	// One MX refuses after the banner, the other offers STARTTLS: the
	// refusing one does not count, the domain is not partial.
	b.MailDomain("onerefuses.test", scantest.SMTPHost{EHLOCode: 421}, scantest.SMTPHost{})
	// One MX speaks plaintext, the other refuses EHLO: plaintext (the
	// reachable one never encrypts).
	b.MailDomain("plainandrefusing.test", scantest.SMTPHost{NoSTARTTLS: true}, scantest.SMTPHost{EHLOCode: 450})
	l := newLab(t, b, nil)
	got := l.scanCases(t, map[string]want{
		"ehlo421.test":          {result.Unreachable, result.FlagEHLORefused},
		"ehlo450.test":          {result.Unreachable, result.FlagEHLORefused},
		"ehlo554.test":          {result.Unreachable, result.FlagEHLORefused},
		"greylist.test":         {result.Verified, result.FlagRetriedLater},
		"greylist-ehlo.test":    {result.Verified, result.FlagRetriedLater},
		"ratelimited.test":      {result.Unreachable, result.FlagRetriedLater},
		"onerefuses.test":       {result.Verified, result.FlagEHLORefused},
		"plainandrefusing.test": {result.Plaintext, result.FlagEHLORefused},
	})
	if r := got["ratelimited.test"]; !hasFlag(r, result.FlagBannerRefused) {
		t.Errorf("ratelimited.test: flags %v lack %s", r.Flags, result.FlagBannerRefused)
	}
	// 1 + len(TempRetry) attempts at most, and none for a 5xx.
	c := l.world.Counters()
	for d, n := range map[string]int64{"ratelimited.test": 3, "greylist.test": 2, "greylist-ehlo.test": 3, "ehlo554.test": 1} {
		ip := got[d].MX[0].Addrs[0].IP
		if c.ConnsPerIP[ip] != n {
			t.Errorf("%s: %d connections, want %d", d, c.ConnsPerIP[ip], n)
		}
	}
	if n := c.Commands["MAIL"] + c.Commands["RCPT"] + c.Commands["DATA"]; n != 0 {
		t.Errorf("MAIL/RCPT/DATA sent %d times", n)
	}
}

// TestGreylistingDoesNotHoldWorkers: while one domain waits out its
// back-off, a single worker goes on with the others.
func TestGreylistingDoesNotHoldWorkers(t *testing.T) {
	t.Parallel()
	b := scantest.NewBuilder(nil)
	b.MailDomain("grey.test", scantest.SMTPHost{TempFailFirst: 1})
	var domains []string
	for i := range 5 {
		d := fmt.Sprintf("ok%d.test", i)
		b.MailDomain(d, scantest.SMTPHost{})
		domains = append(domains, d)
	}
	l := newLab(t, b, func(c *scanner.Config) {
		c.Concurrency = 1
		c.TempRetry = []time.Duration{2 * time.Second}
	})
	start := time.Now()
	in := make(chan string)
	go func() {
		defer close(in)
		for _, d := range append([]string{"grey.test"}, domains...) {
			in <- d
		}
	}()
	var order []string
	l.sc.Run(context.Background(), in, func(r result.Result) { order = append(order, r.Domain) })
	if len(order) != 6 || order[5] != "grey.test" {
		t.Fatalf("order %v: the greylisted domain should finish last, after the others", order)
	}
	if d := time.Since(start); d < 2*time.Second {
		t.Errorf("finished after %v, before the 2 s back-off", d)
	}
}

// TestPartialPolicyFailure: one failing MX host does not make a domain
// broken when policy-honouring senders can deliver through another.
func TestPartialPolicyFailure(t *testing.T) {
	t.Parallel()
	b := scantest.NewBuilder(nil)
	week := 7 * 24 * time.Hour
	// DANE: mx1 matches, mx2 does not; both fail; mx1 matches, mx2 has no TLSA.
	b.Secure("dane-partial.test")
	b.MailDomain("dane-partial.test", scantest.SMTPHost{}, scantest.SMTPHost{})
	b.DANE("mx1.dane-partial.test", 3, 1, 1)
	b.BadTLSA("mx2.dane-partial.test")
	b.Secure("dane-none.test")
	b.MailDomain("dane-none.test", scantest.SMTPHost{}, scantest.SMTPHost{})
	b.BadTLSA("mx1.dane-none.test")
	b.BadTLSA("mx2.dane-none.test")
	b.Secure("dane-half.test")
	b.MailDomain("dane-half.test", scantest.SMTPHost{}, scantest.SMTPHost{})
	b.BadTLSA("mx1.dane-half.test") // DANE senders skip mx1, deliver to mx2 opportunistically
	// MTA-STS enforce: mx2 expired; mx2 outside the patterns; all bad.
	b.MailDomain("sts-expired.test", scantest.SMTPHost{}, scantest.SMTPHost{Cert: scantest.CertExpired})
	b.MTASTS("sts-expired.test", scantest.HTTPSHost{Body: scantest.Policy("enforce", week, "*.sts-expired.test")}, "1")
	b.MailDomain("sts-outside.test", scantest.SMTPHost{}, scantest.SMTPHost{Name: "mx.elsewhere.test"})
	b.MTASTS("sts-outside.test", scantest.HTTPSHost{Body: scantest.Policy("enforce", week, "mx1.sts-outside.test")}, "1")
	b.MailDomain("sts-allbad.test", scantest.SMTPHost{Cert: scantest.CertExpired}, scantest.SMTPHost{Cert: scantest.CertSelfSigned})
	b.MTASTS("sts-allbad.test", scantest.HTTPSHost{Body: scantest.Policy("enforce", week, "*.sts-allbad.test")}, "1")
	l := newLab(t, b, nil)
	got := l.scanCases(t, map[string]want{
		"dane-partial.test": {result.DANE, result.FlagDANEMismatch},
		"dane-none.test":    {result.Broken, result.FlagDANEMismatch},
		"dane-half.test":    {result.Verified, result.FlagDANEMismatch},
		"sts-expired.test":  {result.MTASTS, result.FlagSTSCertInvalid},
		"sts-outside.test":  {result.MTASTS, result.FlagSTSMXMismatch},
		"sts-allbad.test":   {result.Broken, result.FlagSTSCertInvalid},
	})
	// The failing IP carries the flag, the passing one does not.
	r := got["dane-partial.test"]
	for _, h := range r.MX {
		bad := slices.Contains(h.Addrs[0].Flags, result.FlagDANEMismatch)
		if bad != (h.Name == "mx2.dane-partial.test") {
			t.Errorf("dane-partial.test %s: IP flags %v", h.Name, h.Addrs[0].Flags)
		}
	}
}

// openSTSStore opens a real store on disk, the scanner's MTA-STS policy cache.
func openSTSStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "sts.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestPolicyLookupFailures: a failed TXT lookup is not an absent record,
// and a cached MTA-STS policy applies when the live one cannot be had
// (RFC 8461 §5.1).
func TestPolicyLookupFailures(t *testing.T) {
	t.Parallel()
	week := 7 * 24 * time.Hour
	policy := scantest.HTTPSHost{Body: scantest.Policy("enforce", week, "*.gone.test", "*.failing.test", "*.invalid.test", "*.fetchfail.test")}
	first := scantest.NewBuilder(nil)
	for _, d := range []string{"gone.test", "failing.test", "invalid.test", "fetchfail.test"} {
		first.MailDomain(d, scantest.SMTPHost{})
		first.MTASTS(d, policy, "1")
	}
	st := openSTSStore(t)
	l1 := newLab(t, first, func(c *scanner.Config) { c.STSCache = st })
	l1.scanCases(t, map[string]want{
		"gone.test": {result.MTASTS, ""}, "failing.test": {result.MTASTS, ""},
		"invalid.test": {result.MTASTS, ""}, "fetchfail.test": {result.MTASTS, ""},
	})

	// A week later, less than max_age: the record disappeared, its lookup
	// fails, it turned invalid, the policy server is gone.
	second := scantest.NewBuilder(first.CA())
	for _, d := range []string{"gone.test", "failing.test", "invalid.test", "fetchfail.test"} {
		second.MailDomain(d, scantest.SMTPHost{})
	}
	second.Zone(`_mta-sts.failing.test. 300 IN TXT "v=STSv1; id=1"`)
	second.Fault("_mta-sts.failing.test", scantest.FaultServfail)
	second.Zone(`_mta-sts.invalid.test. 300 IN TXT "v=STSv1; id=not-valid!"`)
	second.Zone(`_mta-sts.fetchfail.test. 300 IN TXT "v=STSv1; id=2"`)
	// TLSRPT: a failed lookup is not "no TLSRPT".
	second.MailDomain("rptfail.test", scantest.SMTPHost{})
	second.Zone(`_smtp._tls.rptfail.test. 300 IN TXT "v=TLSRPTv1; rua=mailto:r@rptfail.test"`)
	second.Fault("_smtp._tls.rptfail.test", scantest.FaultServfail)
	// Without a cache, a failed _mta-sts lookup is flagged, and no policy.
	second.MailDomain("nocache.test", scantest.SMTPHost{})
	second.Zone(`_mta-sts.nocache.test. 300 IN TXT "v=STSv1; id=1"`)
	second.Fault("_mta-sts.nocache.test", scantest.FaultServfail)
	// Two TXT records, one not matching the grammar: one valid record.
	second.MailDomain("tworecords.test", scantest.SMTPHost{})
	second.MTASTS("tworecords.test", scantest.HTTPSHost{Body: scantest.Policy("enforce", week, "*.tworecords.test")}, "1")
	second.Zone(`_mta-sts.tworecords.test. 300 IN TXT "v=STSv1"`)
	later := time.Now().Add(week - time.Hour)
	l2 := newLab(t, second, func(c *scanner.Config) {
		c.STSCache = st
		c.Now = func() time.Time { return later }
	})
	got := l2.scanCases(t, map[string]want{
		"gone.test":       {result.MTASTS, result.FlagSTSCached},
		"failing.test":    {result.MTASTS, result.FlagSTSLookupFailed},
		"invalid.test":    {result.MTASTS, result.FlagSTSRecordInvalid},
		"fetchfail.test":  {result.MTASTS, result.FlagSTSFetchFailed},
		"rptfail.test":    {result.Verified, result.FlagTLSRPTLookupFail},
		"nocache.test":    {result.Verified, result.FlagSTSLookupFailed},
		"tworecords.test": {result.MTASTS, ""},
	})
	for _, d := range []string{"failing.test", "invalid.test", "fetchfail.test"} {
		if !hasFlag(got[d], result.FlagSTSCached) {
			t.Errorf("%s: flags %v lack %s", d, got[d].Flags, result.FlagSTSCached)
		}
	}
	if hasFlag(got["rptfail.test"], result.FlagNoTLSRPT) {
		t.Errorf("rptfail.test: a failed lookup flagged as %s", result.FlagNoTLSRPT)
	}
}

// TestCertificateWithManySANs: the name check uses every name of the
// certificate, not the bounded list kept for storage.
func TestCertificateWithManySANs(t *testing.T) {
	t.Parallel()
	b := scantest.NewBuilder(nil)
	var names []string
	for i := range 239 {
		names = append(names, fmt.Sprintf("customer%d.hoster.test", i))
	}
	names = append(names, "mx.many.test") // the 240th name
	cert, err := b.CA().Issue(scantest.CertOptions{Names: names})
	if err != nil {
		t.Fatal(err)
	}
	b.MailDomain("many.test", scantest.SMTPHost{Name: "mx.many.test", Certificate: &cert})
	l := newLab(t, b, nil)
	got := l.scanCases(t, map[string]want{"many.test": {result.Verified, ""}})
	if n := len(got["many.test"].MX[0].Addrs[0].Probe.TLS.Certs[0].DNSNames); n >= 240 {
		t.Errorf("stored %d names; the stored list is bounded", n)
	}
}

// TestIPv6Only: with IPv6 probing off, an IPv6-only MX host or implicit-MX
// domain accepts mail but is not probed: unreachable, flagged; never
// dangling or no-mail.
func TestIPv6Only(t *testing.T) {
	t.Parallel()
	b := scantest.NewBuilder(nil)
	b.Zone("mx.v6.test. 300 IN AAAA 2001:db8::25")
	b.MX("v6.test", "mx.v6.test")
	b.Zone("implicit6.test. 300 IN AAAA 2001:db8::26")
	b.MailDomain("dual.test", scantest.SMTPHost{})
	b.Zone("mx1.dual.test. 300 IN AAAA 2001:db8::27")
	l := newLab(t, b, nil)
	got := l.scanCases(t, map[string]want{
		"v6.test":        {result.Unreachable, result.FlagIPv6NotProbed},
		"implicit6.test": {result.Unreachable, result.FlagIPv6NotProbed},
		"dual.test":      {result.Verified, ""},
	})
	if r := got["implicit6.test"]; !hasFlag(r, result.FlagImplicitMX) {
		t.Errorf("implicit6.test: flags %v lack %s", r.Flags, result.FlagImplicitMX)
	}
	if hasFlag(got["v6.test"], result.FlagMXDangling) {
		t.Errorf("v6.test: an IPv6-only host called dangling")
	}
}

// TestDANENames: SNI is the TLSA base domain after CNAME expansion (RFC 7672
// §8.1); a DANE-TA certificate may name the recipient domain (§3.2.2).
func TestDANENames(t *testing.T) {
	t.Parallel()
	b := scantest.NewBuilder(nil)
	// mx.alias.test is a CNAME for the provider's host, whose TLSA records
	// are the base: the probe sends the provider's name.
	b.Secure("alias.test")
	b.Secure("dprovider.test")
	b.Host("mx.dprovider.test", scantest.SMTPHost{})
	b.DANE("mx.dprovider.test", 3, 1, 1)
	b.Zone("mx.alias.test. 300 IN CNAME mx.dprovider.test.")
	b.MX("alias.test", "mx.alias.test")
	// DANE-TA: the certificate names only the recipient domain.
	b.Secure("nexthop.test")
	cert, err := b.CA().Issue(scantest.CertOptions{Names: []string{"nexthop.test"}, Chain: true})
	if err != nil {
		t.Fatal(err)
	}
	b.MailDomain("nexthop.test", scantest.SMTPHost{Name: "mx.nexthop.test", Certificate: &cert})
	b.DANE("mx.nexthop.test", 2, 0, 1)
	// The same host for another recipient domain: the name matches nothing.
	b.Secure("other.test")
	b.MX("other.test", "mx.nexthop.test")
	l := newLab(t, b, nil)
	l.scanCases(t, map[string]want{
		"alias.test":   {result.DANE, result.FlagMXCNAME},
		"nexthop.test": {result.DANE, ""},
		"other.test":   {result.Broken, result.FlagDANEMismatch},
	})
	if n := l.world.Counters().SNI["mx.dprovider.test"]; n == 0 {
		t.Errorf("SNI sent: %v; want the TLSA base domain mx.dprovider.test", l.world.Counters().SNI)
	}
	if n := l.world.Counters().SNI["mx.alias.test"]; n != 0 {
		t.Errorf("SNI mx.alias.test sent %d times; a DANE client sends the TLSA base domain", n)
	}
}
