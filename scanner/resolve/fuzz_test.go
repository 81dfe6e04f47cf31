package resolve

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func FuzzResolvConf(f *testing.F) {
	f.Add([]byte("nameserver 127.0.0.1\nnameserver ::1\n"))
	f.Add([]byte("# c\nsearch a.test\nnameserver fe80::1%eth0 ; x\noptions ndots:2\n"))
	f.Add([]byte("nameserver\nnameserver 999.1.1.1\n\x00nameserver 1.2.3.4"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, s := range parseResolvConf(data) {
			ap, err := netip.ParseAddrPort(s)
			if err != nil || ap.Port() != 53 {
				t.Fatalf("server %q not ip:53: %v", s, err)
			}
		}
	})
}

func packed(tb testing.TB, name string, qtype uint16, answer ...string) []byte {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.Response = true
	for _, s := range answer {
		rr, err := dns.NewRR(s)
		if err != nil {
			tb.Fatal(err)
		}
		m.Answer = append(m.Answer, rr)
	}
	b, err := m.Pack()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func FuzzAnswer(f *testing.F) {
	f.Add(packed(f, "example.test.", dns.TypeMX, "example.test. 1 IN MX 10 mx.example.test.", "example.test. 1 IN MX 0 ."))
	f.Add(packed(f, "a.test.", dns.TypeA, "a.test. 1 IN CNAME b.test.", "b.test. 1 IN CNAME a.test.", "b.test. 1 IN A 192.0.2.1"))
	f.Add(packed(f, "t.test.", dns.TypeTXT, `t.test. 1 IN TXT "a" "b"`))
	f.Add(packed(f, "_25._tcp.t.test.", dns.TypeTLSA, "_25._tcp.t.test. 1 IN TLSA 3 1 1 00ff"))
	f.Add(packed(f, "v6.test.", dns.TypeAAAA, "v6.test. 1 IN AAAA ::ffff:192.0.2.1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m := new(dns.Msg)
		if err := m.Unpack(data); err != nil {
			return
		}
		name := "example.test."
		if len(m.Question) > 0 {
			name = strings.ToLower(m.Question[0].Name)
		}
		for _, qtype := range []uint16{dns.TypeMX, dns.TypeTXT, dns.TypeTLSA, dns.TypeA, dns.TypeAAAA} {
			ch := followChain(m, name, qtype, map[string]bool{name: true}, DefaultMaxCNAME)
			if len(ch.targets) > DefaultMaxCNAME {
				t.Fatalf("chain of %d", len(ch.targets))
			}
			mx, null := mxFrom(ch.rrs)
			if null && len(mx) != 0 {
				t.Fatal("null MX with hosts")
			}
			for i := 1; i < len(mx); i++ {
				if mx[i-1].Preference > mx[i].Preference || mx[i].Host == "" {
					t.Fatalf("MX not sorted or null host: %v", mx)
				}
			}
			_ = txtFrom(ch.rrs)
			_ = tlsaFrom(ch.rrs)
			for _, a := range addrsFrom(ch.rrs) {
				if !a.IsValid() {
					t.Fatal("invalid address")
				}
			}
			_ = mergeAddrs(rrset{Answer: Answer{Status: rcodeStatus(m.Rcode)}, rrs: ch.rrs}, rrset{Answer: Answer{Status: StatusNoData}})
			_ = questionMatches(m, m)
		}
	})
}
