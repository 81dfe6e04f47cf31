package worlds

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"io"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/scanner/scantest"

	"github.com/miekg/dns"
	"golang.org/x/net/idna"
)

// The checker below is a deliberately small re-statement of docs/verdicts.md,
// independent of the scanner: it proves that the worlds the builders make
// really have the verdicts they claim.

type ipFacts struct {
	reachable bool
	tls       bool
	certs     []*x509.Certificate
}

// probeIP probes like a sender: reachable means a 250 to EHLO after a 220
// banner; a 4xx is tried again (greylisting lifts), a few times.
func probeIP(t *testing.T, n *scantest.Internet, ip netip.Addr, host string) ipFacts {
	t.Helper()
	for range 3 {
		f, temp := probeOnce(n, ip, host)
		if !temp {
			return f
		}
	}
	return ipFacts{}
}

func probeOnce(n *scantest.Internet, ip netip.Addr, host string) (f ipFacts, temp bool) {
	c, err := scantest.DialSMTP(n, ip)
	if err != nil {
		return f, false
	}
	defer c.Close()
	code, _, err := c.Reply()
	if err != nil || code != 220 {
		return f, code >= 400 && code < 500
	}
	if err := c.Text.PrintfLine("EHLO checker.test"); err != nil {
		return f, false
	}
	code, ehlo, err := c.Reply()
	if err != nil || code != 250 {
		return f, code >= 400 && code < 500
	}
	f.reachable = true
	return starttlsFacts(c, f, ehlo, host), false
}

func starttlsFacts(c *scantest.SMTPClient, f ipFacts, ehlo []string, host string) ipFacts {
	if !slices.ContainsFunc(ehlo, func(l string) bool { return strings.EqualFold(strings.Fields(l + " x")[0], "STARTTLS") }) {
		return f
	}
	if c.Text.PrintfLine("STARTTLS") != nil {
		return f
	}
	if code, _, err := c.Reply(); err != nil || code != 220 {
		return f
	}
	tc, err := c.StartTLS(host)
	if err != nil {
		return f
	}
	f.tls, f.certs = true, tc.ConnectionState().PeerCertificates
	_ = c.Text.PrintfLine("QUIT")
	return f
}

func tlsaMatches(recs []*dns.TLSA, certs []*x509.Certificate) bool {
	for _, r := range recs {
		cands := certs[:1]
		if r.Usage == 2 {
			cands = certs[1:]
		}
		for _, c := range cands {
			data := c.Raw
			if r.Selector == 1 {
				data = c.RawSubjectPublicKeyInfo
			}
			sum := sha256.Sum256(data)
			if r.MatchingType == 1 && strings.EqualFold(hex.EncodeToString(sum[:]), r.Certificate) {
				return true
			}
		}
	}
	return false
}

// stsPolicy fetches an enforce policy; ok is false when there is none.
func stsPolicy(t *testing.T, n *scantest.Internet, domain string) (mx []string, ok bool) {
	t.Helper()
	txt := mustQuery(t, n, "_mta-sts."+domain, dns.TypeTXT, scantest.QueryOptions{})
	if len(txt.Answer) == 0 {
		return nil, false
	}
	addr := mustQuery(t, n, "mta-sts."+domain, dns.TypeA, scantest.QueryOptions{})
	var ip netip.Addr
	for _, rr := range addr.Answer {
		if a, isA := rr.(*dns.A); isA {
			ip, _ = netip.AddrFromSlice(a.A.To4())
		}
	}
	c := scantest.HTTPClient(n, map[string]netip.Addr{"mta-sts." + domain: ip})
	resp, err := c.Get("https://mta-sts." + domain + scantest.PolicyPath)
	if err != nil {
		return nil, false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != 200 {
		return nil, false
	}
	enforce := false
	for _, l := range strings.Split(string(body), "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(l), ":")
		switch strings.TrimSpace(k) {
		case "mode":
			enforce = strings.TrimSpace(v) == "enforce"
		case "mx":
			mx = append(mx, strings.TrimSpace(v))
		}
	}
	return mx, enforce
}

func mxMatch(patterns []string, host string) bool {
	for _, p := range patterns {
		if p == host {
			return true
		}
		if rest, ok := strings.CutPrefix(p, "*."); ok {
			if label, parent, ok := strings.Cut(host, "."); ok && label != "" && parent == rest {
				return true
			}
		}
	}
	return false
}

// checkVerdict computes a domain's verdict from the running world.
func checkVerdict(t *testing.T, n *scantest.Internet, domain string) result.Verdict {
	t.Helper()
	mx := mustQuery(t, n, domain, dns.TypeMX, scantest.QueryOptions{DO: true})
	switch mx.Rcode {
	case dns.RcodeNameError:
		return result.NoMail
	case dns.RcodeSuccess:
	default:
		return result.DNSError
	}
	var hosts []string
	for _, rr := range mx.Answer {
		if m, ok := rr.(*dns.MX); ok {
			if m.Mx == "." {
				return result.NoMail
			}
			hosts = append(hosts, strings.TrimSuffix(m.Mx, "."))
		}
	}
	if len(hosts) == 0 {
		a := mustQuery(t, n, domain, dns.TypeA, scantest.QueryOptions{})
		if len(a.Answer) == 0 {
			return result.NoMail
		}
		hosts = []string{domain}
	}
	// DANE and MTA-STS pass when at least one IP passes (senders skip the
	// others); broken when none does.
	daneAll, tlsaServfail := mx.AuthenticatedData, false
	var reachable, withTLS, danePass int
	pkixOK := true
	type ipResult struct {
		host string
		pkix bool
	}
	var ips []ipResult
	for _, h := range hosts {
		a := mustQuery(t, n, h, dns.TypeA, scantest.QueryOptions{DO: true})
		tlsa := mustQuery(t, n, "_25._tcp."+h, dns.TypeTLSA, scantest.QueryOptions{DO: true})
		var recs []*dns.TLSA
		for _, rr := range tlsa.Answer {
			if r, ok := rr.(*dns.TLSA); ok && (r.Usage == 2 || r.Usage == 3) {
				recs = append(recs, r)
			}
		}
		if tlsa.Rcode == dns.RcodeServerFailure {
			tlsaServfail = true
		}
		if !a.AuthenticatedData || !tlsa.AuthenticatedData || len(recs) == 0 {
			daneAll = false
		}
		for _, rr := range a.Answer {
			ar, ok := rr.(*dns.A)
			if !ok {
				continue
			}
			ip, _ := netip.AddrFromSlice(ar.A.To4())
			f := probeIP(t, n, ip, h)
			if !f.reachable {
				continue
			}
			reachable++
			if !f.tls {
				pkixOK = false
				ips = append(ips, ipResult{h, false})
				continue
			}
			withTLS++
			valid := n.CA.Verify(f.certs, h) == nil
			pkixOK = pkixOK && valid
			ips = append(ips, ipResult{h, valid})
			if tlsaMatches(recs, f.certs) {
				danePass++
			}
		}
	}
	if mx.AuthenticatedData && tlsaServfail {
		return result.DNSError
	}
	if reachable == 0 {
		return result.Unreachable
	}
	if daneAll {
		if danePass > 0 {
			return result.DANE
		}
		return result.Broken
	}
	if patterns, enforce := stsPolicy(t, n, domain); enforce {
		for _, ip := range ips {
			if ip.pkix && mxMatch(patterns, ip.host) {
				return result.MTASTS
			}
		}
		return result.Broken
	}
	switch {
	case withTLS == 0:
		return result.Plaintext
	case withTLS < reachable:
		return result.Partial
	case pkixOK:
		return result.Verified
	}
	return result.Encrypted
}

func TestDemo(t *testing.T) {
	t.Parallel()
	sc, register, expected, err := Demo(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range result.Verdicts {
		if !slices.Contains(slices.Collect(mapValues(expected)), v) {
			t.Errorf("no demo domain has verdict %s", v)
		}
	}
	// The register: every line's domain is expected, every domain has citizens.
	perDomain := map[string]int{}
	for _, line := range register {
		local, domain, ok := strings.Cut(line, "@")
		if !ok || !strings.HasPrefix(local, "citizen") {
			t.Fatalf("register line %q", line)
		}
		a, err := idna.Lookup.ToASCII(domain)
		if err != nil {
			t.Fatalf("register domain %q: %v", domain, err)
		}
		if _, ok := expected[a]; !ok {
			t.Errorf("register domain %q (%s) has no expected verdict", domain, a)
		}
		perDomain[a]++
	}
	for d := range expected {
		if perDomain[d] == 0 {
			t.Errorf("no citizen at %s", d)
		}
	}
	if len(register) < 2000 || len(register) > 5000 {
		t.Errorf("%d citizens", len(register))
	}
	big := 0
	for d, c := range perDomain {
		if verdictHostedBy(sc, d, "bigmail.test") {
			big += c
		}
	}
	if big*2 < len(register) {
		t.Errorf("the big provider holds %d of %d citizens, want most", big, len(register))
	}

	n := scantest.StartT(t, sc)
	for d, want := range expected {
		if got := checkVerdict(t, n, d); got != want {
			t.Errorf("%s: checked %s, expected %s", d, got, want)
		}
	}
	if c := n.Counters(); c.Commands["MAIL"] != 0 || c.TLSHandshakes == 0 {
		t.Errorf("counters %+v", c)
	}
}

// verdictHostedBy reports whether domain's MX records point into provider.
func verdictHostedBy(sc scantest.Scenario, domain, provider string) bool {
	prefix := domain + ". "
	for _, rr := range sc.Zone {
		if strings.HasPrefix(rr, prefix) && strings.Contains(rr, " MX ") && strings.HasSuffix(rr, "."+provider+".") {
			return true
		}
	}
	return false
}

func mapValues[K comparable, V any](m map[K]V) func(func(V) bool) {
	return func(yield func(V) bool) {
		for _, v := range m {
			if !yield(v) {
				return
			}
		}
	}
}

func TestGenerate(t *testing.T) {
	t.Parallel()
	ca, err := scantest.NewCA("gen CA")
	if err != nil {
		t.Fatal(err)
	}
	gen := func() (scantest.Scenario, map[string]result.Verdict, []byte) {
		var reg bytes.Buffer
		expected := map[string]result.Verdict{}
		sc, err := Generate(ca, GenOptions{Domains: 3000, Addresses: 10000, Seed: 7, RTT: time.Millisecond,
			Expected: func(d string, v result.Verdict) { expected[d] = v }}, &reg)
		if err != nil {
			t.Fatal(err)
		}
		return sc, expected, reg.Bytes()
	}
	sc, expected, reg := gen()
	sc2, expected2, reg2 := gen()

	// Deterministic, except the keys behind TLSA records.
	noTLSA := func(zone []string) []string {
		return slices.DeleteFunc(slices.Clone(zone), func(s string) bool { return strings.Contains(s, " TLSA ") })
	}
	if !bytes.Equal(reg, reg2) || !slices.Equal(noTLSA(sc.Zone), noTLSA(sc2.Zone)) || len(expected) != len(expected2) {
		t.Error("same seed, different world")
	}
	if len(expected) != 3000 || sc.RTT != time.Millisecond {
		t.Errorf("%d domains, RTT %v", len(expected), sc.RTT)
	}
	hist := map[result.Verdict]int{}
	for _, v := range expected {
		hist[v]++
	}
	for _, v := range []result.Verdict{result.Verified, result.DANE, result.MTASTS, result.Encrypted, result.Plaintext, result.Unreachable, result.NoMail, result.DNSError} {
		if hist[v] == 0 {
			t.Errorf("no %s domain in %v", v, hist)
		}
	}
	if hist[result.Verified] < 1500 {
		t.Errorf("verdicts %v: want mostly verified", hist)
	}
	lines, seen := 0, map[string]bool{}
	sc3 := bufio.NewScanner(bytes.NewReader(reg))
	for sc3.Scan() {
		_, d, _ := strings.Cut(sc3.Text(), "@")
		seen[d] = true
		lines++
	}
	if lines != 10000 || len(seen) != 3000 {
		t.Errorf("register: %d lines, %d domains", lines, len(seen))
	}

	// The world runs and a sample of each verdict checks out.
	sc.RTT = 0
	n := scantest.StartT(t, sc)
	checked := map[result.Verdict]int{}
	for i := range 3000 {
		d := genDomain(i)
		want := expected[d]
		if checked[want] >= 3 {
			continue
		}
		checked[want]++
		if got := checkVerdict(t, n, d); got != want {
			t.Errorf("%s: checked %s, expected %s", d, got, want)
		}
	}
}

func BenchmarkGenerate100k(b *testing.B) {
	ca, err := scantest.NewCA("bench CA")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := Generate(ca, GenOptions{Domains: 100_000, Addresses: 300_000, Seed: 1}, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStart100k(b *testing.B) {
	ca, err := scantest.NewCA("bench CA")
	if err != nil {
		b.Fatal(err)
	}
	sc, err := Generate(ca, GenOptions{Domains: 100_000, Seed: 1}, nil)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		n, err := scantest.Start(sc)
		if err != nil {
			b.Fatal(err)
		}
		n.Close()
	}
	b.ReportMetric(float64(len(sc.Zone)), "records")
	b.ReportMetric(float64(len(sc.SMTP)), "smtp-ips")
}

func mustQuery(t *testing.T, n *scantest.Internet, name string, qtype uint16, o scantest.QueryOptions) *dns.Msg {
	t.Helper()
	r, err := scantest.Query(n, name, qtype, o)
	if err != nil {
		t.Fatalf("query %s %s: %v", name, dns.TypeToString[qtype], err)
	}
	return r
}
