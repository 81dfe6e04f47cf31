package worlds

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/scanner/scantest"
)

// GenOptions sizes a generated world.
type GenOptions struct {
	Domains   int           // number of recipient domains (> 0)
	Addresses int           // number of register lines (>= 0)
	Seed      int64         // same seed, same world (except keys)
	RTT       time.Duration // Scenario.RTT
	Providers int           // 0: 10 hosting providers
	// Shape is the mix of domains; the zero value is GenMixed.
	Shape GenShape
	// Expected, when set, is called once per domain with its expected verdict.
	Expected func(domain string, v result.Verdict)
}

// GenShape is the mix of domains of a generated world.
type GenShape uint8

const (
	// GenMixed: mostly provider-hosted, some shared hosting and
	// self-hosted domains, a few without mail or with DNS errors (see
	// Generate).
	GenMixed GenShape = iota
	// GenOwnIP: every domain hosts itself, mx.<domain> at an IP of its own
	// with a self-signed ECDSA P-256 certificate, STARTTLS and TLS 1.3, and
	// publishes no policy records: one probe per domain, the shape of the
	// CPU comparison with zdns + zgrab2 (issue 10).
	GenOwnIP
)

// GenProvider is a hosting provider of a generated world.
type GenProvider struct {
	Name  string
	Kind  DomainKind // the kind of its customers' domains
	Hosts []int      // MX hosts mx1.<Name> ...: the number of IPs of each
	// First is the index of its first customer in the world's order (-1:
	// none): the domain that, scanned first, judges the provider's hosts.
	First int
}

// GenDomain is one domain of a generated world, as planned.
type GenDomain struct {
	Kind     DomainKind
	Provider int16 // index into WorldPlan.Providers; -1: none
	SharedIP int32 // KindShared: index of its shared hosting IP; else -1
}

// WorldPlan describes a generated world: its providers and what each
// domain is. Generate builds the world from it; Plan computes it alone (no
// zone, no servers: a few bytes per domain), for figures such as Bound.
type WorldPlan struct {
	Providers []GenProvider
	Domains   []GenDomain // domain i is GenDomainName(i)
	// SharedIPs is the number of customers of each shared hosting IP.
	SharedIPs []int
}

// sharedPerIP is the number of customers of a shared hosting IP.
const sharedPerIP = 40

// Plan returns the plan of the world Generate builds for o.
func Plan(o GenOptions) (*WorldPlan, error) {
	if o.Domains <= 0 || o.Addresses < 0 {
		return nil, errors.New("worlds: generate: need Domains > 0 and Addresses >= 0")
	}
	return plan(o, newGenRand(o)), nil
}

func newGenRand(o GenOptions) *rand.Rand { return rand.New(rand.NewPCG(uint64(o.Seed), 0x7e57)) }

// plan draws the world from rng (which writeRegister then goes on using).
func plan(o GenOptions, rng *rand.Rand) *WorldPlan {
	p := &WorldPlan{Domains: make([]GenDomain, o.Domains)}
	if o.Shape == GenOwnIP {
		for i := range p.Domains {
			p.Domains[i] = GenDomain{Kind: KindSelfSelfSigned, Provider: -1, SharedIP: -1}
		}
		return p
	}
	o.Providers = cmp.Or(o.Providers, 10)
	weights := make([]float64, o.Providers)
	var total float64
	for i := range o.Providers {
		pr := GenProvider{Name: fmt.Sprintf("provider%02d.test", i+1), Kind: KindProvider, First: -1}
		switch {
		case i == o.Providers-1 && o.Providers > 3:
			pr.Kind = KindProviderSelfSigned
		case i == 1:
			pr.Kind = KindProviderDANE
		case i == 2:
			pr.Kind = KindProviderSTS
		}
		for range 2 + rng.IntN(3) {
			pr.Hosts = append(pr.Hosts, 1+rng.IntN(2))
		}
		p.Providers = append(p.Providers, pr)
		weights[i] = 1 / float64(i+1)
		total += weights[i]
	}
	pick := func() int {
		x := rng.Float64() * total
		for i, w := range weights {
			if x < w {
				return i
			}
			x -= w
		}
		return len(weights) - 1
	}
	sharedN := 0
	for i := range p.Domains {
		d := GenDomain{Provider: -1, SharedIP: -1}
		r := rng.Float64()
		switch {
		case r < 0.005:
			d.Kind = KindNXDomain
		case r < 0.010:
			d.Kind = KindNullMX
		case r < 0.015:
			d.Kind = KindServfail // MX names provider 0's hosts, but SERVFAIL
		case r < 0.815:
			d.Provider = int16(pick())
			pr := &p.Providers[d.Provider]
			d.Kind = pr.Kind
			if pr.First < 0 {
				pr.First = i
			}
		case r < 0.86:
			if sharedN%sharedPerIP == 0 {
				p.SharedIPs = append(p.SharedIPs, 0)
			}
			sharedN++
			d.Kind, d.SharedIP = KindShared, int32(len(p.SharedIPs)-1)
			p.SharedIPs[d.SharedIP]++
		default:
			switch s := rng.Float64(); {
			case s < 0.04:
				d.Kind = KindSelfPlaintext
			case s < 0.08:
				d.Kind = KindSelfSelfSigned
			case s < 0.10:
				d.Kind = KindSelfExpired
			case s < 0.12:
				d.Kind = KindSelfDown
			default:
				d.Kind = KindSelfValid
			}
		}
		p.Domains[i] = d
	}
	return p
}

// Generate builds a large world for benchmarks. Domains are named
// "d000001.test" and so on (GenDomainName). With the GenMixed shape, about
// 80% of them are hosted by a few providers ("provider01.test" ... with 2-4
// MX hosts of 1-2 IPs each) chosen with a Zipf-like skew; provider 2 (when
// there are at least 3) is DANE-signed, provider 3 publishes MTA-STS for its
// customers through one shared policy server, the last one has self-signed
// certificates. The rest host themselves (mx.<domain> at its own IP), mostly
// with valid certificates and a few percent plaintext, self-signed, expired
// or unreachable; a quarter of those are on shared hosting instead:
// mx.<domain> on a hoster's IP shared with up to 40 other customers, which
// picks each customer's certificate by SNI. About 1.5% are NXDOMAIN, null MX
// or SERVFAIL. GenOwnIP is one self-hosted domain per IP instead. IPs are
// allocated in 127.16.0.0/12. Plan describes the same world without building
// it.
//
// The register ("citizenNNNNNNN@domain" lines) is written to register, never
// held in memory: the first addresses cover every domain once, the rest
// follow a Zipf distribution over domains. Certificates are issued lazily by
// the running world, so 100,000 domains build in well under a second.
func Generate(ca *scantest.CA, o GenOptions, register io.Writer) (scantest.Scenario, error) {
	if o.Domains <= 0 || o.Addresses < 0 {
		return scantest.Scenario{}, errors.New("worlds: generate: need Domains > 0 and Addresses >= 0")
	}
	rng := newGenRand(o)
	p := plan(o, rng)
	b := scantest.NewBuilder(ca)
	b.Grow(3 * o.Domains)

	stsIPs := make([]netip.Addr, len(p.Providers))
	for i, pr := range p.Providers {
		if pr.Kind == KindProviderDANE {
			b.Secure(pr.Name)
		}
		cert := scantest.CertValid
		if pr.Kind == KindProviderSelfSigned {
			cert = scantest.CertSelfSigned
		}
		for h, ips := range pr.Hosts {
			host := fmt.Sprintf("mx%d.%s", h+1, pr.Name)
			for range ips {
				b.Host(host, scantest.SMTPHost{Cert: cert})
			}
			if pr.Kind == KindProviderDANE {
				b.DANE(host, 3, 1, 1)
			}
		}
		if pr.Kind == KindProviderSTS {
			stsIPs[i] = b.IP()
			b.A("mta-sts."+pr.Name, stsIPs[i])
		}
	}

	// Shared hosting: the current hoster IP and its SNI map.
	sharedIP, sharedCerts, sharedAt := netip.Addr{}, map[string]scantest.CertKind(nil), int32(-1)
	for i, gd := range p.Domains {
		d := GenDomainName(i)
		switch gd.Kind {
		case KindNullMX:
			b.NullMX(d)
		case KindServfail:
			b.MX(d, p.Providers[0].hostNames()...)
			b.Fault(d, scantest.FaultServfail)
		case KindProvider, KindProviderDANE, KindProviderSTS, KindProviderSelfSigned:
			pr := p.Providers[gd.Provider]
			b.MX(d, pr.hostNames()...)
			switch gd.Kind {
			case KindProviderDANE:
				b.Secure(d)
			case KindProviderSTS:
				b.Zone(fmt.Sprintf("mta-sts.%s. %d IN CNAME mta-sts.%s.", d, scantest.TTL, pr.Name),
					fmt.Sprintf(`_mta-sts.%s. %d IN TXT "v=STSv1; id=1"`, d, scantest.TTL))
				b.HTTPSHost(stsIPs[gd.Provider], "mta-sts."+d, scantest.HTTPSHost{Body: scantest.Policy("enforce", policyMaxAge, "*."+pr.Name)})
			}
		case KindShared:
			if gd.SharedIP != sharedAt {
				sharedAt, sharedCerts = gd.SharedIP, map[string]scantest.CertKind{}
				sharedIP = b.Host(fmt.Sprintf("smtp%d.sharedhost.test", sharedAt+1), scantest.SMTPHost{SNICerts: sharedCerts})
			}
			sharedCerts["mx."+d] = scantest.CertValid
			b.A("mx."+d, sharedIP)
			b.MX(d, "mx."+d)
		case KindSelfValid, KindSelfPlaintext, KindSelfSelfSigned, KindSelfExpired, KindSelfDown:
			h := scantest.SMTPHost{Name: "mx." + d}
			switch gd.Kind {
			case KindSelfPlaintext:
				h.NoSTARTTLS = true
			case KindSelfSelfSigned:
				h.Cert = scantest.CertSelfSigned
			case KindSelfExpired:
				h.Cert = scantest.CertExpired
			case KindSelfDown:
				h.Down = true
			}
			b.MailDomain(d, h)
		}
		if o.Expected != nil {
			o.Expected(d, gd.Kind.Verdict())
		}
	}
	sc, err := b.Scenario()
	if err != nil {
		return scantest.Scenario{}, err
	}
	sc.RTT = o.RTT
	if err := writeRegister(register, o, rng); err != nil {
		return scantest.Scenario{}, err
	}
	return sc, nil
}

func (pr GenProvider) hostNames() []string {
	names := make([]string, len(pr.Hosts))
	for h := range pr.Hosts {
		names[h] = fmt.Sprintf("mx%d.%s", h+1, pr.Name)
	}
	return names
}

// GenDomainName is the name of the i-th (from 0) domain of a generated world.
func GenDomainName(i int) string { return fmt.Sprintf("d%06d.test", i+1) }

func genDomain(i int) string { return GenDomainName(i) }

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
