package scantest

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// dnsWorld is a small zone exercising every DNS behaviour.
func dnsWorld(t *testing.T) *Internet {
	t.Helper()
	b := NewBuilder(nil)
	b.MailDomain("example.test", SMTPHost{}, SMTPHost{})
	b.Zone(
		`example.test. 300 IN TXT "v=spf1 -all"`,
		`example.test. 300 IN SOA ns.example.test. hostmaster.example.test. 1 3600 600 86400 300`,
		"alias.example.test. 300 IN CNAME alias2.example.test.",
		"alias2.example.test. 300 IN CNAME mx1.example.test.",
		"dangling.example.test. 300 IN CNAME nowhere.example.test.",
		"loop1.example.test. 300 IN CNAME loop2.example.test.",
		"loop2.example.test. 300 IN CNAME loop1.example.test.",
		"deep.ent.example.test. 300 IN A 127.0.0.9",
		"MixedCase.Example.Test. 300 IN A 127.0.0.10",
		"secure.test. 300 IN MX 10 mail.secure.test.",
		"mail.secure.test. 300 IN A 127.0.0.11",
		"_25._tcp.mail.secure.test. 300 IN TLSA 3 1 1 "+strings.Repeat("ab", 32),
		"insecure-alias.secure.test. 300 IN CNAME www.unsigned.test.",
		"www.unsigned.test. 300 IN A 127.0.0.12",
		"to-secure.unsigned.test. 300 IN CNAME mail.secure.test.",
	)
	for i := range 100 {
		b.Zone(fmt.Sprintf(`big.example.test. 300 IN TXT "record %03d %s"`, i, strings.Repeat("x", 40)))
	}
	b.Secure("secure.test")
	for name, f := range map[string]DNSFault{
		"servfail.example.test":  FaultServfail,
		"refused.example.test":   FaultRefused,
		"timeout.example.test":   FaultTimeout,
		"truncate.example.test.": FaultTruncate,
		"wrongid.example.test":   FaultWrongID,
		"wrongq.example.test":    FaultWrongQuestion,
		"faulty.unsigned.test":   FaultServfail,
	} {
		b.Fault(name, f)
		b.Zone(fmt.Sprintf("%s 300 IN A 127.0.0.13", fqdn(name)))
	}
	b.Zone("via-fault.example.test. 300 IN CNAME faulty.unsigned.test.")
	sc, err := b.Scenario()
	if err != nil {
		t.Fatal(err)
	}
	return StartT(t, sc)
}

func query(t *testing.T, n *Internet, name string, qtype uint16, o QueryOptions) (*dns.Msg, error) {
	t.Helper()
	return Query(n, name, qtype, o)
}

func mustQuery(t *testing.T, n *Internet, name string, qtype uint16, o QueryOptions) *dns.Msg {
	t.Helper()
	r, err := query(t, n, name, qtype, o)
	if err != nil {
		t.Fatalf("query %s %s: %v", name, dns.TypeToString[qtype], err)
	}
	return r
}

func TestDNSAnswers(t *testing.T) {
	t.Parallel()
	n := dnsWorld(t)
	tests := []struct {
		name    string
		qtype   uint16
		rcode   int
		answers []string // types of the answer section, in order
	}{
		{"example.test", dns.TypeMX, dns.RcodeSuccess, []string{"MX", "MX"}},
		{"EXAMPLE.test", dns.TypeMX, dns.RcodeSuccess, []string{"MX", "MX"}},
		{"mx1.example.test", dns.TypeA, dns.RcodeSuccess, []string{"A"}},
		{"mx1.example.test", dns.TypeAAAA, dns.RcodeSuccess, nil}, // NODATA
		{"example.test", dns.TypeTXT, dns.RcodeSuccess, []string{"TXT"}},
		{"_25._tcp.mail.secure.test", dns.TypeTLSA, dns.RcodeSuccess, []string{"TLSA"}},
		{"alias.example.test", dns.TypeA, dns.RcodeSuccess, []string{"CNAME", "CNAME", "A"}},
		{"alias.example.test", dns.TypeCNAME, dns.RcodeSuccess, []string{"CNAME"}},
		{"dangling.example.test", dns.TypeA, dns.RcodeNameError, []string{"CNAME"}},
		{"loop1.example.test", dns.TypeA, dns.RcodeServerFailure, nil},
		{"nothing.example.test", dns.TypeA, dns.RcodeNameError, nil},
		{"nothing.test", dns.TypeMX, dns.RcodeNameError, nil},
		{"ent.example.test", dns.TypeA, dns.RcodeSuccess, nil}, // empty non-terminal
		{"below.deep.ent.example.test", dns.TypeA, dns.RcodeNameError, nil},
		{"mixedcase.example.test", dns.TypeA, dns.RcodeSuccess, []string{"A"}},
		{"servfail.example.test", dns.TypeMX, dns.RcodeServerFailure, nil},
		{"refused.example.test", dns.TypeA, dns.RcodeRefused, nil},
		{"via-fault.example.test", dns.TypeA, dns.RcodeServerFailure, nil},
	}
	for _, tc := range tests {
		r := mustQuery(t, n, tc.name, tc.qtype, QueryOptions{})
		if r.Rcode != tc.rcode {
			t.Errorf("%s %s: rcode %s, want %s", tc.name, dns.TypeToString[tc.qtype], dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode])
		}
		var got []string
		for _, rr := range r.Answer {
			got = append(got, dns.TypeToString[rr.Header().Rrtype])
		}
		if strings.Join(got, ",") != strings.Join(tc.answers, ",") {
			t.Errorf("%s %s: answer %v, want %v", tc.name, dns.TypeToString[tc.qtype], got, tc.answers)
		}
		if !r.RecursionAvailable || !r.Response || r.Authoritative {
			t.Errorf("%s: flags RA=%v QR=%v AA=%v", tc.name, r.RecursionAvailable, r.Response, r.Authoritative)
		}
	}
	// Negative answers carry the enclosing SOA.
	r := mustQuery(t, n, "nothing.example.test", dns.TypeA, QueryOptions{})
	if len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != dns.TypeSOA {
		t.Errorf("NXDOMAIN authority = %v, want the SOA", r.Ns)
	}
	// Answer content.
	r = mustQuery(t, n, "example.test", dns.TypeMX, QueryOptions{})
	if mx := r.Answer[0].(*dns.MX); mx.Preference != 10 || mx.Mx != "mx1.example.test." {
		t.Errorf("first MX = %v", mx)
	}
	r = mustQuery(t, n, "mx1.example.test", dns.TypeA, QueryOptions{Net: "tcp"})
	if a := r.Answer[0].(*dns.A); a.A.String() != firstIP.String() {
		t.Errorf("mx1 A over TCP = %v, want %v", a.A, firstIP)
	}
	if c := n.Counters(); c.DNSQueries != int64(len(tests))+3 || c.DNSQueriesByType["MX"] < 5 || c.RoundTrips != c.DNSQueries {
		t.Errorf("counters = %+v", c)
	}
}

func TestDNSADBit(t *testing.T) {
	t.Parallel()
	n := dnsWorld(t)
	tests := []struct {
		name  string
		qtype uint16
		do    bool
		ad    bool
	}{
		{"secure.test", dns.TypeMX, true, true},
		{"secure.test", dns.TypeMX, false, false},
		{"mail.secure.test", dns.TypeA, true, true},
		{"_25._tcp.mail.secure.test", dns.TypeTLSA, true, true},
		{"nothing.secure.test", dns.TypeA, true, true}, // authenticated denial
		{"mail.secure.test", dns.TypeAAAA, true, true},
		{"example.test", dns.TypeMX, true, false},
		{"insecure-alias.secure.test", dns.TypeA, true, false}, // chain leaves the secure zone
		{"to-secure.unsigned.test", dns.TypeA, true, false},    // chain starts outside it
	}
	for _, tc := range tests {
		r := mustQuery(t, n, tc.name, tc.qtype, QueryOptions{DO: tc.do})
		if r.AuthenticatedData != tc.ad {
			t.Errorf("%s %s DO=%v: AD=%v, want %v", tc.name, dns.TypeToString[tc.qtype], tc.do, r.AuthenticatedData, tc.ad)
		}
		if opt := r.IsEdns0(); tc.do && (opt == nil || !opt.Do()) {
			t.Errorf("%s: reply lacks OPT with DO", tc.name)
		}
	}
}

func TestDNSFaults(t *testing.T) {
	t.Parallel()
	n := dnsWorld(t)

	_, err := query(t, n, "timeout.example.test", dns.TypeA, QueryOptions{Timeout: 150 * time.Millisecond})
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("timeout fault: err = %v, want a timeout", err)
	}

	// miekg's client skips replies with another ID over UDP (they may be
	// late answers to earlier queries) and rejects them over TCP.
	_, err = query(t, n, "wrongid.example.test", dns.TypeA, QueryOptions{Timeout: 150 * time.Millisecond})
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("wrong-id fault over UDP: err = %v, want a timeout", err)
	}
	_, err = query(t, n, "wrongid.example.test", dns.TypeA, QueryOptions{Net: "tcp"})
	if !errors.Is(err, dns.ErrId) {
		t.Errorf("wrong-id fault over TCP: err = %v, want dns.ErrId", err)
	}

	r := mustQuery(t, n, "wrongq.example.test", dns.TypeA, QueryOptions{})
	if len(r.Question) != 1 || r.Question[0].Name != wrongQuestion {
		t.Errorf("wrong-question fault: question %v", r.Question)
	}

	r = mustQuery(t, n, "truncate.example.test", dns.TypeA, QueryOptions{})
	if !r.Truncated || len(r.Answer) != 0 {
		t.Errorf("truncate fault over UDP: TC=%v answers=%d", r.Truncated, len(r.Answer))
	}
	r = mustQuery(t, n, "truncate.example.test", dns.TypeA, QueryOptions{Net: "tcp"})
	if r.Truncated || len(r.Answer) != 1 {
		t.Errorf("truncate fault over TCP: TC=%v answers=%d", r.Truncated, len(r.Answer))
	}
	if got := n.Counters().DNSQueries; got != 6 {
		t.Errorf("DNSQueries = %d, want 6", got)
	}
}

func TestDNSTruncation(t *testing.T) {
	t.Parallel()
	n := dnsWorld(t)
	// 100 TXT records of ~60 bytes: > 512, > 1232, < 65535.
	r := mustQuery(t, n, "big.example.test", dns.TypeTXT, QueryOptions{})
	if !r.Truncated || len(r.Answer) >= 100 {
		t.Errorf("UDP without EDNS: TC=%v answers=%d, want TC and fewer", r.Truncated, len(r.Answer))
	}
	r.Compress = true // as sent
	if l := r.Len(); l > 512 {
		t.Errorf("UDP without EDNS: %d bytes > 512", l)
	}
	r = mustQuery(t, n, "big.example.test", dns.TypeTXT, QueryOptions{EDNS: 1232})
	r.Compress = true
	if !r.Truncated || r.Len() > 1232 {
		t.Errorf("UDP with EDNS 1232: TC=%v len=%d", r.Truncated, r.Len())
	}
	r = mustQuery(t, n, "big.example.test", dns.TypeTXT, QueryOptions{EDNS: 65000})
	if r.Truncated || len(r.Answer) != 100 {
		t.Errorf("UDP with EDNS 65000: TC=%v answers=%d", r.Truncated, len(r.Answer))
	}
	r = mustQuery(t, n, "big.example.test", dns.TypeTXT, QueryOptions{Net: "tcp"})
	if r.Truncated || len(r.Answer) != 100 {
		t.Errorf("TCP: TC=%v answers=%d, want all 100", r.Truncated, len(r.Answer))
	}
}

func TestDNSBadQueries(t *testing.T) {
	t.Parallel()
	n := dnsWorld(t)
	m := new(dns.Msg)
	m.SetQuestion("example.test.", dns.TypeMX)
	m.Question = append(m.Question, m.Question[0])
	r, _, err := (&dns.Client{Timeout: 5 * time.Second}).Exchange(m, n.DNSAddr)
	if err != nil || r.Rcode != dns.RcodeFormatError {
		t.Errorf("two questions: %v, %v; want FORMERR", r, err)
	}
	m = new(dns.Msg)
	m.SetNotify("example.test.")
	r, _, err = (&dns.Client{Timeout: 5 * time.Second}).Exchange(m, n.DNSAddr)
	if err != nil || r.Rcode != dns.RcodeNotImplemented {
		t.Errorf("NOTIFY: %v, %v; want NOTIMP", r, err)
	}
}

func TestZoneErrors(t *testing.T) {
	t.Parallel()
	for _, sc := range []Scenario{
		{Zone: []string{"example.test. 300 IN MX not-a-number mx."}},
		{DNSFaults: map[string]DNSFault{"x.test": "explode"}},
		{SMTP: map[netip.Addr]SMTPHost{netip.MustParseAddr("10.0.0.1"): {Name: "x"}}},
		{SMTP: map[netip.Addr]SMTPHost{netip.MustParseAddr("127.0.0.2"): {Name: "x", Cert: "bogus"}}},
	} {
		if n, err := Start(sc); !errors.Is(err, ErrScenario) {
			t.Errorf("Start(%+v) = %v, want ErrScenario", sc, err)
			if n != nil {
				n.Close()
			}
		}
	}
}

func TestBigZone(t *testing.T) {
	t.Parallel()
	// 60,000 records: the parallel parse path; BenchmarkStart100k measures
	// the 300,000-record scale.
	lines := make([]string, 0, 60_000)
	for i := range 20_000 {
		d := fmt.Sprintf("d%06d.test.", i)
		lines = append(lines,
			fmt.Sprintf("%s 300 IN MX 10 mx1.provider.test.", d),
			fmt.Sprintf("%s 300 IN MX 20 mx2.provider.test.", d),
			fmt.Sprintf(`%s 300 IN TXT "v=spf1 -all"`, d))
	}
	start := time.Now()
	z, err := buildZone(lines, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("indexed %d records in %v", len(lines), time.Since(start))
	ans, rcode, _ := z.lookup("D019999.test.", dns.TypeMX)
	if rcode != dns.RcodeSuccess || len(ans) != 2 {
		t.Errorf("lookup in big zone: %v %v", rcode, ans)
	}
}
