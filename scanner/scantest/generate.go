package scantest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
)

// GenOptions sizes a generated world.
type GenOptions struct {
	Domains   int           // number of recipient domains (> 0)
	Addresses int           // number of register lines (>= 0)
	Seed      int64         // same seed, same world (except keys)
	RTT       time.Duration // Scenario.RTT
	Providers int           // 0: 10 hosting providers
	// Expected, when set, is called once per domain with its expected verdict.
	Expected func(domain string, v result.Verdict)
}

// provider kinds of a generated world.
const (
	provValid      = iota // STARTTLS with valid certificates: verified
	provDANE              // signed zones, TLSA 3 1 1: dane
	provSTS               // publishes MTA-STS enforce for its customers: mta-sts
	provSelfSigned        // self-signed certificates: encrypted
)

type genProvider struct {
	name  string
	kind  int
	hosts []string
	stsIP netip.Addr // the shared policy server (provSTS)
}

// Generate builds a large world for benchmarks. Domains are named
// "d000001.test" and so on. About 80% of them are hosted by a few providers
// ("provider01.test" ... with 2-4 MX hosts of 1-2 IPs each) chosen with a
// Zipf-like skew; provider 2 (when there are at least 3) is DANE-signed,
// provider 3 publishes MTA-STS for its customers through one shared policy
// server, the last one has self-signed certificates. The rest host
// themselves (mx.<domain> at its own IP), mostly with valid certificates and
// a few percent plaintext, self-signed, expired or unreachable; a quarter of
// those are on shared hosting instead: mx.<domain> on a hoster's IP shared
// with up to 40 other customers, which picks each customer's certificate by
// SNI. About 1.5% are NXDOMAIN, null MX or SERVFAIL. IPs are allocated in
// 127.16.0.0/12.
//
// The register ("citizenNNNNNNN@domain" lines) is written to register, never
// held in memory: the first addresses cover every domain once, the rest
// follow a Zipf distribution over domains. Certificates are issued lazily by
// the running world, so 100,000 domains build in well under a second.
func Generate(ca *CA, o GenOptions, register io.Writer) (Scenario, error) {
	if o.Domains <= 0 || o.Addresses < 0 {
		return Scenario{}, errors.New("scantest: generate: need Domains > 0 and Addresses >= 0")
	}
	if o.Providers == 0 {
		o.Providers = 10
	}
	rng := rand.New(rand.NewPCG(uint64(o.Seed), 0x7e57))
	b := NewBuilder(ca)
	b.zone = make([]string, 0, 3*o.Domains)

	provs := make([]*genProvider, o.Providers)
	weights := make([]float64, o.Providers)
	var total float64
	for i := range provs {
		p := &genProvider{name: fmt.Sprintf("provider%02d.test", i+1), kind: provValid}
		switch {
		case i == o.Providers-1 && o.Providers > 3:
			p.kind = provSelfSigned
		case i == 1:
			p.kind = provDANE
		case i == 2:
			p.kind = provSTS
		}
		if p.kind == provDANE {
			b.Secure(p.name)
		}
		cert := CertValid
		if p.kind == provSelfSigned {
			cert = CertSelfSigned
		}
		for h := range 2 + rng.IntN(3) {
			host := fmt.Sprintf("mx%d.%s", h+1, p.name)
			for range 1 + rng.IntN(2) {
				b.Host(host, SMTPHost{Cert: cert})
			}
			if p.kind == provDANE {
				b.DANE(host, 3, 1, 1)
			}
			p.hosts = append(p.hosts, host)
		}
		if p.kind == provSTS {
			p.stsIP = b.IP()
			b.A("mta-sts."+p.name, p.stsIP)
		}
		provs[i] = p
		weights[i] = 1 / float64(i+1)
		total += weights[i]
	}
	pick := func() *genProvider {
		x := rng.Float64() * total
		for i, w := range weights {
			if x < w {
				return provs[i]
			}
			x -= w
		}
		return provs[len(provs)-1]
	}

	// Shared hosting: the current hoster IP and its SNI map, a new one every
	// sharedPerIP customers.
	const sharedPerIP = 40
	var sharedIP netip.Addr
	var sharedCerts map[string]CertKind
	sharedN := 0

	expect := func(d string, v result.Verdict) {
		if o.Expected != nil {
			o.Expected(d, v)
		}
	}
	for i := range o.Domains {
		d := genDomain(i)
		r := rng.Float64()
		switch {
		case r < 0.005:
			expect(d, result.NoMail) // NXDOMAIN
		case r < 0.010:
			b.NullMX(d)
			expect(d, result.NoMail)
		case r < 0.015:
			b.MX(d, provs[0].hosts...)
			b.Fault(d, FaultServfail)
			expect(d, result.DNSError)
		case r < 0.815:
			p := pick()
			b.MX(d, p.hosts...)
			switch p.kind {
			case provValid:
				expect(d, result.Verified)
			case provDANE:
				b.Secure(d)
				expect(d, result.DANE)
			case provSTS:
				b.Zone(fmt.Sprintf("mta-sts.%s. %d IN CNAME mta-sts.%s.", d, TTL, p.name),
					fmt.Sprintf(`_mta-sts.%s. %d IN TXT "v=STSv1; id=1"`, d, TTL))
				b.HTTPSHost(p.stsIP, "mta-sts."+d, HTTPSHost{Body: Policy("enforce", policyMaxAge, "*."+p.name)})
				expect(d, result.MTASTS)
			case provSelfSigned:
				expect(d, result.Encrypted)
			}
		case r < 0.86:
			if sharedN%sharedPerIP == 0 {
				sharedCerts = map[string]CertKind{}
				sharedIP = b.Host(fmt.Sprintf("smtp%d.sharedhost.test", sharedN/sharedPerIP+1), SMTPHost{SNICerts: sharedCerts})
			}
			sharedN++
			sharedCerts["mx."+d] = CertValid
			b.A("mx."+d, sharedIP)
			b.MX(d, "mx."+d)
			expect(d, result.Verified)
		default:
			h := SMTPHost{}
			v := result.Verified
			switch s := rng.Float64(); {
			case s < 0.04:
				h.NoSTARTTLS, v = true, result.Plaintext
			case s < 0.08:
				h.Cert, v = CertSelfSigned, result.Encrypted
			case s < 0.10:
				h.Cert, v = CertExpired, result.Encrypted
			case s < 0.12:
				h.Down, v = true, result.Unreachable
			}
			b.MailDomain(d, SMTPHost{Name: "mx." + d, NoSTARTTLS: h.NoSTARTTLS, Cert: h.Cert, Down: h.Down})
			expect(d, v)
		}
	}
	sc, err := b.Scenario()
	if err != nil {
		return Scenario{}, err
	}
	sc.RTT = o.RTT
	if err := writeRegister(register, o, rng); err != nil {
		return Scenario{}, err
	}
	return sc, nil
}

func genDomain(i int) string { return fmt.Sprintf("d%06d.test", i+1) }

// writeRegister streams the register: every domain once, then Zipf.
func writeRegister(w io.Writer, o GenOptions, rng *rand.Rand) error {
	if w == nil || o.Addresses == 0 {
		return nil
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	var zipf *rand.Zipf
	if o.Domains > 1 {
		zipf = rand.NewZipf(rng, 1.1, 1, uint64(o.Domains-1))
	}
	for i := range o.Addresses {
		d := i
		if i >= o.Domains {
			d = 0
			if zipf != nil {
				d = int(zipf.Uint64())
			}
		}
		if _, err := fmt.Fprintf(bw, "citizen%07d@%s\n", i+1, genDomain(d)); err != nil {
			return fmt.Errorf("scantest: register: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("scantest: register: %w", err)
	}
	return nil
}
