package scantest

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// firstIP is the first address the Builder allocates (127.16.0.1); it allocates upwards
// through 127.16.0.0/12, skipping .0 and .255.
var firstIP = netip.AddrFrom4([4]byte{127, 16, 0, 1})

// TTL of the records the Builder writes.
const TTL = 300

// Builder writes scenarios: it allocates addresses (127.16.0.1 upwards, see
// IP), adds zone records and registers SMTP and HTTPS hosts. Its output is deterministic (addresses
// and records depend only on the calls made). It is not safe for concurrent use.
type Builder struct {
	ca     *CA
	zone   []string
	secure []string
	faults map[string]DNSFault
	smtp   map[netip.Addr]SMTPHost
	https  map[netip.Addr]map[string]HTTPSHost
	hosts  map[string][]netip.Addr // SMTP host name (canonical) -> its IPs
	next   netip.Addr
	err    error
}

// NewBuilder returns a Builder whose certificates come from ca; nil creates
// a new CA (Scenario.CA carries it to Start).
func NewBuilder(ca *CA) *Builder {
	b := &Builder{
		ca:     ca,
		faults: map[string]DNSFault{},
		smtp:   map[netip.Addr]SMTPHost{},
		https:  map[netip.Addr]map[string]HTTPSHost{},
		hosts:  map[string][]netip.Addr{},
		next:   firstIP,
	}
	if b.ca == nil {
		b.ca, b.err = NewCA("tlsready scantest CA")
	}
	return b
}

// CA is the builder's certificate authority.
func (b *Builder) CA() *CA { return b.ca }

// Scenario returns the scenario built so far, or the first error any call met.
// The scenario shares nothing mutable with the Builder.
func (b *Builder) Scenario() (Scenario, error) {
	if b.err != nil {
		return Scenario{}, b.err
	}
	sc := Scenario{
		CA:          b.ca,
		Zone:        append([]string(nil), b.zone...),
		SecureZones: append([]string(nil), b.secure...),
		DNSFaults:   make(map[string]DNSFault, len(b.faults)),
		SMTP:        make(map[netip.Addr]SMTPHost, len(b.smtp)),
		HTTPS:       make(map[netip.Addr]map[string]HTTPSHost, len(b.https)),
	}
	for k, v := range b.faults {
		sc.DNSFaults[k] = v
	}
	for k, v := range b.smtp {
		sc.SMTP[k] = v
	}
	for ip, m := range b.https {
		c := make(map[string]HTTPSHost, len(m))
		for k, v := range m {
			c[k] = v
		}
		sc.HTTPS[ip] = c
	}
	return sc, nil
}

// IP allocates a fresh address that has no server (connections to it are
// reset): an unreachable host.
func (b *Builder) IP() netip.Addr {
	ip := b.next
	for {
		b.next = b.next.Next()
		a := b.next.As4()
		if a[3] != 0 && a[3] != 255 {
			break
		}
	}
	if a := ip.As4(); a[1] >= 32 && b.err == nil {
		b.err = errors.New("scantest: builder: out of addresses in 127.16.0.0/12")
	}
	return ip
}

// Zone adds records in zone-file text ("name. 300 IN TYPE rdata"). Owner
// names must be absolute.
func (b *Builder) Zone(rr ...string) { b.zone = append(b.zone, rr...) }

// Grow makes room for n more zone records (a world of many domains).
func (b *Builder) Grow(n int) { b.zone = slices.Grow(b.zone, n) }

// Secure marks a zone (the name and everything under it) DNSSEC-secure.
func (b *Builder) Secure(zone string) { b.secure = append(b.secure, fqdn(zone)) }

// Fault makes the DNS server misbehave for a name.
func (b *Builder) Fault(name string, f DNSFault) { b.faults[fqdn(name)] = f }

// Host adds an SMTP server for name at a fresh IP with an A record, and
// returns the IP. Calling it again for the same name adds another IP.
// h.Name is set to name.
func (b *Builder) Host(name string, h SMTPHost) netip.Addr {
	h.Name = strings.TrimSuffix(strings.ToLower(name), ".")
	ip := b.IP()
	b.A(name, ip)
	b.smtp[ip] = h
	b.hosts[fqdn(name)] = append(b.hosts[fqdn(name)], ip)
	return ip
}

// A adds an A record.
func (b *Builder) A(name string, ip netip.Addr) {
	b.zone = append(b.zone, fmt.Sprintf("%s %d IN A %s", fqdn(name), TTL, ip))
}

// DeadHost adds an A record for name at a fresh IP with no server, and
// returns the IP.
func (b *Builder) DeadHost(name string) netip.Addr {
	ip := b.IP()
	b.A(name, ip)
	return ip
}

// MX adds MX records for domain, preferences 10, 20, ... in the order given.
func (b *Builder) MX(domain string, hosts ...string) {
	for i, h := range hosts {
		b.zone = append(b.zone, fmt.Sprintf("%s %d IN MX %d %s", fqdn(domain), TTL, 10*(i+1), fqdn(h)))
	}
}

// NullMX adds the null MX "MX 0 ." (RFC 7505).
func (b *Builder) NullMX(domain string) {
	b.zone = append(b.zone, fmt.Sprintf("%s %d IN MX 0 .", fqdn(domain), TTL))
}

// MailDomain adds a mail domain: one MX record per host (preferences 10, 20,
// ...), and for each host not yet known an SMTP server at a fresh IP with an
// A record (see Host). A host without a Name is called mx1.<domain>,
// mx2.<domain>, ...; a host whose Name is already known (a provider's MX
// host shared by many domains) only gets the MX record.
func (b *Builder) MailDomain(domain string, hosts ...SMTPHost) {
	names := make([]string, len(hosts))
	for i, h := range hosts {
		name := h.Name
		if name == "" {
			name = fmt.Sprintf("mx%d.%s", i+1, strings.TrimSuffix(domain, "."))
		}
		if _, known := b.hosts[fqdn(name)]; !known {
			b.Host(name, h)
		}
		names[i] = name
	}
	b.MX(domain, names...)
}

// HostCertificate fixes the certificate of every SMTP server of host
// (issuing one by the first server's CertKind if none is set) and returns
// it: for TLSA records.
func (b *Builder) HostCertificate(host string) (*tls.Certificate, error) {
	ips := b.hosts[fqdn(host)]
	if len(ips) == 0 {
		return nil, fmt.Errorf("scantest: builder: unknown host %s", host)
	}
	h := b.smtp[ips[0]]
	cert := h.Certificate
	if cert == nil {
		c, err := CertFor(b.ca, h.Cert, h.Name)
		if err != nil {
			return nil, err
		}
		cert = &c
	}
	for _, ip := range ips {
		h := b.smtp[ip]
		h.Certificate = cert
		b.smtp[ip] = h
	}
	return cert, nil
}

// DANE publishes a TLSA record for host's SMTP service at _25._tcp.<host>
// (RFC 7672 §2.2.1) that matches its certificate (see HostCertificate).
// Usage 3 and 1 match the leaf; usage 2 and 0 match the last certificate of
// the presented chain, or the CA when the chain is only the leaf (so use a
// CertChain host for DANE-TA). The zone must be Secure for the record to count.
func (b *Builder) DANE(host string, usage, selector, matching uint8) {
	cert, err := b.HostCertificate(host)
	if err != nil {
		if b.err == nil {
			b.err = err
		}
		return
	}
	target := cert.Leaf
	if usage == 0 || usage == 2 {
		target = b.ca.Cert
		if n := len(cert.Certificate); n > 1 {
			inter, err := x509.ParseCertificate(cert.Certificate[n-1])
			if err != nil {
				if b.err == nil {
					b.err = err
				}
				return
			}
			target = inter
		}
	}
	b.TLSA(host, TLSA(target, usage, selector, matching))
}

// TLSA adds a TLSA record with the given RDATA at _25._tcp.<host>.
func (b *Builder) TLSA(host, rdata string) {
	b.zone = append(b.zone, fmt.Sprintf("_25._tcp.%s %d IN TLSA %s", fqdn(host), TTL, rdata))
}

// BadTLSA adds a DANE-EE TLSA record (3 1 1) for host that matches no
// certificate.
func (b *Builder) BadTLSA(host string) {
	b.TLSA(host, "3 1 1 "+strings.Repeat("ab", 32))
}

// MTASTS publishes an MTA-STS policy for domain (RFC 8461): the TXT record
// "_mta-sts.<domain>" with "v=STSv1; id=<txtID>" (none when txtID is ""),
// and an HTTPS host "mta-sts.<domain>" at a fresh IP with an A record.
// It returns the IP.
func (b *Builder) MTASTS(domain string, policy HTTPSHost, txtID string) netip.Addr {
	domain = strings.TrimSuffix(strings.ToLower(domain), ".")
	if txtID != "" {
		b.zone = append(b.zone, fmt.Sprintf(`_mta-sts.%s. %d IN TXT "v=STSv1; id=%s"`, domain, TTL, txtID))
	}
	ip := b.IP()
	b.A("mta-sts."+domain, ip)
	b.HTTPSHost(ip, "mta-sts."+domain, policy)
	return ip
}

// HTTPSHost adds an HTTPS host name at ip (no DNS record).
func (b *Builder) HTTPSHost(ip netip.Addr, name string, h HTTPSHost) {
	m := b.https[ip]
	if m == nil {
		m = map[string]HTTPSHost{}
		b.https[ip] = m
	}
	m[strings.TrimSuffix(strings.ToLower(name), ".")] = h
}

// TLSRPT publishes a TLS reporting record "_smtp._tls.<domain>" (RFC 8460 §3).
func (b *Builder) TLSRPT(domain, rua string) {
	b.zone = append(b.zone, fmt.Sprintf(`_smtp._tls.%s %d IN TXT "v=TLSRPTv1; rua=%s"`, fqdn(domain), TTL, rua))
}

// Policy returns the text of an MTA-STS policy (RFC 8461 §3.2) with CRLF
// line endings.
func Policy(mode string, maxAge time.Duration, mx ...string) string {
	var s strings.Builder
	s.WriteString("version: STSv1\r\nmode: " + mode + "\r\n")
	for _, m := range mx {
		s.WriteString("mx: " + m + "\r\n")
	}
	fmt.Fprintf(&s, "max_age: %d\r\n", int64(maxAge/time.Second))
	return s.String()
}

// fqdn lower-cases a name and makes it absolute.
func fqdn(name string) string { return canonical(name) }
