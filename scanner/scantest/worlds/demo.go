package worlds

import (
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/idna"

	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/scanner/scantest"
)

// policyMaxAge is the max_age of the demo's MTA-STS policies (one week).
const policyMaxAge = 7 * 24 * time.Hour

// demoDomain is one domain of the demo world.
type demoDomain struct {
	name     string // as citizens write it (U-label for IDN)
	verdict  result.Verdict
	citizens int
	build    func(b *scantest.Builder, d string) // d is the A-label
}

// Demo returns the built-in demo world: a few dozen domains covering every
// verdict of docs/verdicts.md and its edge cases, a big provider shared by many
// municipal domains, a DANE provider, implicit MX, CNAMEd MX hosts and
// Japanese IDN domains; the register of 3,000-odd fake citizens
// ("citizen0001@domain" lines, most of them at the big providers, IDN
// domains in Unicode form, a few domains in mixed case); and the expected
// verdict of every domain, keyed by lower-case A-label without trailing dot.
// Everything except the keys and certificates is deterministic.
//
// Certificates come from ca (nil: a new CA, in sc.CA).
func Demo(ca *scantest.CA) (sc scantest.Scenario, register []string, expected map[string]result.Verdict, err error) {
	b := scantest.NewBuilder(ca) // an error making the CA comes from b.Scenario
	var issueErr error
	enforce := func(mx ...string) scantest.HTTPSHost {
		return scantest.HTTPSHost{Body: scantest.Policy("enforce", policyMaxAge, mx...)}
	}

	// The big provider: two MX hosts with two IPs each.
	for _, h := range []string{"mx1.bigmail.test", "mx2.bigmail.test"} {
		b.Host(h, scantest.SMTPHost{})
		b.Host(h, scantest.SMTPHost{})
	}
	big := func(b *scantest.Builder, d string) {
		b.MX(d, "mx1.bigmail.test", "mx2.bigmail.test")
		b.TLSRPT(d, "mailto:tlsrpt@bigmail.test")
	}
	bigSTS := func(b *scantest.Builder, d string) {
		big(b, d)
		b.MTASTS(d, enforce("*.bigmail.test"), "20240401T000000")
	}
	// The DANE provider: a signed zone, TLSA 3 1 1 for each MX host.
	b.Secure("securepost.test")
	for _, h := range []string{"mx1.securepost.test", "mx2.securepost.test"} {
		b.Host(h, scantest.SMTPHost{})
		b.DANE(h, 3, 1, 1)
	}
	securePost := func(b *scantest.Builder, d string) {
		b.Secure(d)
		b.MX(d, "mx1.securepost.test", "mx2.securepost.test")
	}
	// A small provider with self-signed certificates.
	b.Host("mail.oldhost.test", scantest.SMTPHost{Cert: scantest.CertSelfSigned})
	oldHost := func(b *scantest.Builder, d string) { b.MX(d, "mail.oldhost.test") }

	own := func(hosts ...scantest.SMTPHost) func(*scantest.Builder, string) {
		return func(b *scantest.Builder, d string) { b.MailDomain(d, hosts...) }
	}
	mail := func(d string) string { return "mail." + d }
	// A shared-hosting IP that picks each customer's certificate by SNI
	// (Postfix tls_server_sni_maps, cPanel/Exim); names it does not know get
	// the hoster's own certificate.
	sniCerts := map[string]scantest.CertKind{}
	sniIP := b.Host("smtp.sharedhost.test", scantest.SMTPHost{SNICerts: sniCerts})
	hosted := func(inMap bool) func(*scantest.Builder, string) {
		return func(b *scantest.Builder, d string) {
			if inMap {
				sniCerts[mail(d)] = scantest.CertValid
			}
			b.A(mail(d), sniIP)
			b.MX(d, mail(d))
		}
	}

	domains := []demoDomain{
		// Big provider customers.
		{"bigmail.test", result.Verified, 900, big},
		{"kita-city.test", result.Verified, 300, big},
		{"minami-town.test", result.Verified, 200, big},
		{"nishi-city.test", result.Verified, 150, big},
		{"higashi-village.test", result.Verified, 120, big},
		{"chuo-ward.test", result.Verified, 100, big},
		{"umi-city.test", result.Verified, 80, big},
		{"yama-town.test", result.Verified, 60, big},
		{"kawa-village.test", result.Verified, 40, big},
		{"さくら市.test", result.Verified, 50, big},
		{"みどり町.test", result.Verified, 30, big},
		{"hoshi-city.test", result.MTASTS, 120, bigSTS},
		{"tsuki-town.test", result.MTASTS, 60, bigSTS},
		// DANE provider customers.
		{"dane-city.test", result.DANE, 250, securePost},
		{"dane-village.test", result.DANE, 80, securePost},
		// Self-signed provider customers.
		{"old-town.test", result.Encrypted, 60, oldHost},
		{"furui-village.test", result.Encrypted, 25, oldHost},

		// dane: TLSA 3 1 1; 2 1 1 via the intermediate; 3 1 1 on a
		// self-signed certificate (DANE-EE ignores names and issuer); DANE
		// and MTA-STS together.
		{"dane.test", result.DANE, 20, func(b *scantest.Builder, d string) {
			b.Secure(d)
			own(scantest.SMTPHost{Name: mail(d)})(b, d)
			b.DANE(mail(d), 3, 1, 1)
		}},
		{"dane-ta.test", result.DANE, 10, func(b *scantest.Builder, d string) {
			b.Secure(d)
			own(scantest.SMTPHost{Name: mail(d), Cert: scantest.CertChain})(b, d)
			b.DANE(mail(d), 2, 1, 1)
		}},
		{"dane-selfsigned.test", result.DANE, 5, func(b *scantest.Builder, d string) {
			b.Secure(d)
			own(scantest.SMTPHost{Name: mail(d), Cert: scantest.CertSelfSigned})(b, d)
			b.DANE(mail(d), 3, 1, 1)
		}},
		{"dane-sts.test", result.DANE, 8, func(b *scantest.Builder, d string) {
			b.Secure(d)
			own(scantest.SMTPHost{Name: mail(d)})(b, d)
			b.DANE(mail(d), 3, 1, 1)
			b.MTASTS(d, enforce(mail(d)), "1")
		}},
		// A matching TLSA RRset in an unsigned zone does not count.
		{"dane-insecure.test", result.Verified, 6, func(b *scantest.Builder, d string) {
			own(scantest.SMTPHost{Name: mail(d)})(b, d)
			b.DANE(mail(d), 3, 1, 1)
		}},

		// One MX host fails its TLSA records: DANE senders use the other.
		{"dane-partial.test", result.DANE, 6, func(b *scantest.Builder, d string) {
			b.Secure(d)
			own(scantest.SMTPHost{}, scantest.SMTPHost{})(b, d)
			b.DANE("mx1."+d, 3, 1, 1)
			b.BadTLSA("mx2." + d)
		}},

		// mta-sts.
		// One MX host outside the policy: senders skip it.
		{"sts-partial.test", result.MTASTS, 5, func(b *scantest.Builder, d string) {
			own(scantest.SMTPHost{}, scantest.SMTPHost{Cert: scantest.CertExpired})(b, d)
			b.MTASTS(d, enforce("*."+d), "p1")
		}},
		{"sts.test", result.MTASTS, 15, func(b *scantest.Builder, d string) {
			own(scantest.SMTPHost{Name: mail(d)})(b, d)
			b.MTASTS(d, enforce(mail(d)), "20240101")
		}},
		{"sts-wildcard.test", result.MTASTS, 12, func(b *scantest.Builder, d string) {
			own(scantest.SMTPHost{}, scantest.SMTPHost{})(b, d)
			b.MTASTS(d, enforce("*."+d), "2024a")
		}},
		{"sts-lf.test", result.MTASTS, 7, func(b *scantest.Builder, d string) {
			own(scantest.SMTPHost{Name: mail(d)})(b, d)
			p := strings.ReplaceAll(scantest.Policy("enforce", policyMaxAge, mail(d)), "\r\n", "\n")
			b.MTASTS(d, scantest.HTTPSHost{Body: p, ContentType: "text/plain; charset=utf-8"}, "lf1")
		}},
		{"sts-testing.test", result.Verified, 9, func(b *scantest.Builder, d string) {
			own(scantest.SMTPHost{Name: mail(d)})(b, d)
			b.MTASTS(d, scantest.HTTPSHost{Body: scantest.Policy("testing", policyMaxAge, mail(d))}, "t1")
		}},
		// An unfetchable policy is absent, never broken.
		{"sts-badcert.test", result.Verified, 4, func(b *scantest.Builder, d string) {
			own(scantest.SMTPHost{Name: mail(d)})(b, d)
			b.MTASTS(d, scantest.HTTPSHost{Body: scantest.Policy("enforce", policyMaxAge, mail(d)), Cert: scantest.CertSelfSigned}, "b1")
		}},

		// verified.
		{"verified.test", result.Verified, 25, own(scantest.SMTPHost{})},
		{"chain.test", result.Verified, 12, own(scantest.SMTPHost{Cert: scantest.CertChain})},
		{"tls12.test", result.Verified, 6, own(scantest.SMTPHost{MaxVersion: tls.VersionTLS12})},
		{"implicit.test", result.Verified, 10, func(b *scantest.Builder, d string) { b.Host(d, scantest.SMTPHost{}) }},
		{"mx-cname.test", result.Verified, 8, func(b *scantest.Builder, d string) {
			target := "smtp.hosting-cname.test"
			cert, err := b.CA().Issue(scantest.CertOptions{Names: []string{mail(d), target}})
			if err != nil {
				issueErr = err
			}
			b.Host(target, scantest.SMTPHost{Certificate: &cert})
			b.Zone(fmt.Sprintf("%s %d IN CNAME %s", dns.CanonicalName(mail(d)), scantest.TTL, dns.CanonicalName(target)))
			b.MX(d, mail(d))
		}},
		{"ふじ村.test", result.Verified, 20, func(b *scantest.Builder, d string) { own(scantest.SMTPHost{Name: mail(d)})(b, d) }},

		// Shared hosting: each customer judged on its own certificate.
		{"hosted-a.test", result.Verified, 9, hosted(true)},
		{"hosted-b.test", result.Verified, 6, hosted(true)},
		// Greylisted at the first connection, served later in the run.
		{"greylisted.test", result.Verified, 5, own(scantest.SMTPHost{TempFailFirst: 1})},

		// encrypted.
		{"hosted-unknown.test", result.Encrypted, 3, hosted(false)},
		{"selfsigned.test", result.Encrypted, 15, own(scantest.SMTPHost{Cert: scantest.CertSelfSigned})},
		{"expired.test", result.Encrypted, 12, own(scantest.SMTPHost{Cert: scantest.CertExpired})},
		{"wrongname.test", result.Encrypted, 9, own(scantest.SMTPHost{Cert: scantest.CertWrongName})},
		{"untrusted.test", result.Encrypted, 7, own(scantest.SMTPHost{Cert: scantest.CertUntrusted})},

		// partial.
		{"partial.test", result.Partial, 14, own(scantest.SMTPHost{}, scantest.SMTPHost{NoSTARTTLS: true})},
		{"partial-454.test", result.Partial, 6, own(scantest.SMTPHost{}, scantest.SMTPHost{STARTTLSReply: "454 4.7.0 TLS not available due to local problem"})},

		// plaintext (an unreachable MX does not count).
		{"plaintext.test", result.Plaintext, 18, own(scantest.SMTPHost{NoSTARTTLS: true})},
		{"plaintext-dead.test", result.Plaintext, 5, own(scantest.SMTPHost{NoSTARTTLS: true}, scantest.SMTPHost{Down: true})},

		// broken.
		{"broken-dane.test", result.Broken, 6, func(b *scantest.Builder, d string) {
			b.Secure(d)
			own(scantest.SMTPHost{Name: mail(d)})(b, d)
			b.BadTLSA(mail(d))
		}},
		{"broken-sts.test", result.Broken, 5, func(b *scantest.Builder, d string) {
			own(scantest.SMTPHost{Name: mail(d)})(b, d)
			b.MTASTS(d, enforce("mail.elsewhere.test"), "x1")
		}},
		{"broken-sts-cert.test", result.Broken, 4, func(b *scantest.Builder, d string) {
			own(scantest.SMTPHost{Name: mail(d), Cert: scantest.CertSelfSigned})(b, d)
			b.MTASTS(d, enforce(mail(d)), "x2")
		}},

		// no-mail.
		{"nxdomain.test", result.NoMail, 6, func(*scantest.Builder, string) {}},
		{"nullmx.test", result.NoMail, 3, func(b *scantest.Builder, d string) { b.NullMX(d) }},
		{"nomx.test", result.NoMail, 3, func(b *scantest.Builder, d string) {
			b.Zone(fmt.Sprintf(`%s %d IN TXT "v=spf1 -all"`, dns.CanonicalName(d), scantest.TTL))
		}},

		// unreachable.
		{"unreachable.test", result.Unreachable, 8, own(scantest.SMTPHost{Down: true})},
		{"banner554.test", result.Unreachable, 4, own(scantest.SMTPHost{BannerCode: 554, Banner: "5.3.2 No SMTP service here"})},
		{"dangling.test", result.Unreachable, 3, func(b *scantest.Builder, d string) { b.MX(d, mail(d)) }},
		// 421 to EHLO after the banner: a sender defers, never plaintext.
		{"ehlo-refused.test", result.Unreachable, 4, own(scantest.SMTPHost{EHLOCode: 421})},
		// IPv6-only while IPv6 probing is off.
		{"ipv6-only.test", result.Unreachable, 2, func(b *scantest.Builder, d string) {
			b.Zone(fmt.Sprintf("%s %d IN AAAA 2001:db8::25", dns.CanonicalName(mail(d)), scantest.TTL))
			b.MX(d, mail(d))
		}},

		// dns-error.
		{"servfail.test", result.DNSError, 7, func(b *scantest.Builder, d string) {
			b.MX(d, "mx1.bigmail.test")
			b.Fault(d, scantest.FaultServfail)
		}},
		{"refused.test", result.DNSError, 3, func(b *scantest.Builder, d string) {
			b.MX(d, "mx1.bigmail.test")
			b.Fault(d, scantest.FaultRefused)
		}},
		// A TLSA SERVFAIL for an otherwise secure domain (RFC 7672 §2.2).
		{"tlsa-servfail.test", result.DNSError, 3, func(b *scantest.Builder, d string) {
			b.Secure(d)
			own(scantest.SMTPHost{Name: mail(d)})(b, d)
			b.Fault("_25._tcp."+mail(d), scantest.FaultServfail)
		}},
	}

	expected = make(map[string]result.Verdict, len(domains))
	rng := rand.New(rand.NewPCG(2024, 1))
	var n int
	for _, dd := range domains {
		a, err := idna.Lookup.ToASCII(dd.name)
		if err != nil {
			return scantest.Scenario{}, nil, nil, fmt.Errorf("scantest: demo domain %d: %w", len(expected), err)
		}
		dd.build(b, a)
		expected[a] = dd.verdict
		for range dd.citizens {
			n++
			domain := dd.name
			if rng.IntN(40) == 0 && domain == a {
				domain = mixedCase(domain)
			}
			register = append(register, fmt.Sprintf("citizen%04d@%s", n, domain))
		}
	}
	rng.Shuffle(len(register), func(i, j int) { register[i], register[j] = register[j], register[i] })
	if sc, err = b.Scenario(); err != nil {
		return scantest.Scenario{}, nil, nil, err
	}
	if issueErr != nil {
		return scantest.Scenario{}, nil, nil, issueErr
	}
	return sc, register, expected, nil
}

// mixedCase upper-cases the first letter of each label: "Kita-city.Test".
func mixedCase(domain string) string {
	labels := strings.Split(domain, ".")
	for i, l := range labels {
		if l != "" {
			labels[i] = strings.ToUpper(l[:1]) + l[1:]
		}
	}
	return strings.Join(labels, ".")
}
