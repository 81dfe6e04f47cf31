package worlds

import (
	"fmt"
	"strings"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
)

// DomainKind is what a generated domain is, as far as the work of scanning
// it goes (see ScanChain).
type DomainKind uint8

// The kinds of generated domains.
const (
	KindNXDomain           DomainKind = iota // the MX lookup says NXDOMAIN
	KindNullMX                               // MX 0 . (RFC 7505)
	KindServfail                             // every lookup of the domain name gets SERVFAIL
	KindProvider                             // MX at a provider's hosts, valid certificates
	KindProviderDANE                         // at the DNSSEC-signed provider, TLSA 3 1 1
	KindProviderSTS                          // at the provider that serves its customers' MTA-STS policies
	KindProviderSelfSigned                   // at the provider with self-signed certificates
	KindShared                               // mx.<domain> on a shared hosting IP that picks certificates by SNI
	KindSelfValid                            // mx.<domain> at its own IP, valid certificate
	KindSelfSelfSigned                       // mx.<domain> at its own IP, self-signed certificate
	KindSelfExpired                          // mx.<domain> at its own IP, expired certificate
	KindSelfPlaintext                        // mx.<domain> at its own IP, no STARTTLS
	KindSelfDown                             // mx.<domain> at its own IP, connections reset
	numKinds
)

var kindNames = [numKinds]string{
	"nxdomain", "null-mx", "servfail", "provider", "provider-dane", "provider-sts", "provider-self-signed",
	"shared-sni", "self-valid", "self-self-signed", "self-expired", "self-plaintext", "self-down",
}

func (k DomainKind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return fmt.Sprintf("kind-%d", uint8(k))
}

// Kinds lists every DomainKind.
func Kinds() []DomainKind {
	ks := make([]DomainKind, numKinds)
	for i := range ks {
		ks[i] = DomainKind(i)
	}
	return ks
}

// Verdict is the verdict a domain of kind k is expected to get.
func (k DomainKind) Verdict() result.Verdict {
	switch k {
	case KindNXDomain, KindNullMX:
		return result.NoMail
	case KindServfail:
		return result.DNSError
	case KindProviderDANE:
		return result.DANE
	case KindProviderSTS:
		return result.MTASTS
	case KindProviderSelfSigned, KindSelfSelfSigned, KindSelfExpired:
		return result.Encrypted
	case KindSelfPlaintext:
		return result.Plaintext
	case KindSelfDown:
		return result.Unreachable
	}
	return result.Verified
}

// Step is one simulated round trip of a scan (see Scenario.RTT: a DNS
// answer, an SMTP reply, a TLS server flight, an HTTP response), a wait of
// the scanner's own (Wait), or a group of branches that run at once (Par).
type Step struct {
	What string
	Wait time.Duration // a wait that is no round trip (the DNS client's retry back-off)
	Par  []Chain       // branches that run at once; What names the group
}

// Chain is steps that depend on each other, in order.
type Chain []Step

func rt(what string) Step               { return Step{What: what} }
func par(what string, cs ...Chain) Step { return Step{What: what, Par: cs} }

// RoundTrips is the number of round trips of every branch: what the
// simulated servers count (Counters.RoundTrips) for a scan of this chain.
func (c Chain) RoundTrips() int {
	n := 0
	for _, s := range c {
		switch {
		case s.Par != nil:
			for _, b := range s.Par {
				n += b.RoundTrips()
			}
		case s.Wait == 0:
			n++
		}
	}
	return n
}

// String shows the chain as "MX, {A, TLS ...} | {...}, QUIT": steps in
// order, parallel branches in braces.
func (c Chain) String() string {
	var b strings.Builder
	for i, s := range c {
		if i > 0 {
			b.WriteString(", ")
		}
		if s.Par == nil {
			b.WriteString(s.What)
			continue
		}
		for j, br := range s.Par {
			if j > 0 {
				b.WriteString(" | ")
			}
			b.WriteString("{" + br.String() + "}")
		}
	}
	return b.String()
}

// Critical returns the longest dependent path of c at the given RTT: its
// time, and the number of round trips on it.
func (c Chain) Critical(rtt time.Duration) (time.Duration, int) {
	var t time.Duration
	n := 0
	for _, s := range c {
		switch {
		case s.Par != nil:
			var bt time.Duration
			bn := 0
			for _, b := range s.Par {
				if t1, n1 := b.Critical(rtt); t1 > bt || t1 == bt && n1 > bn {
					bt, bn = t1, n1
				}
			}
			t += bt
			n += bn
		case s.Wait > 0:
			t += s.Wait
		default:
			t += rtt
			n++
		}
	}
	return t, n
}

// What the scanner does, as chains of round trips (scanner.Scanner.domain):
// the MX lookup and the _mta-sts and _smtp._tls TXT lookups at once; then
// every MX host at once, each an address lookup (A), a TLSA lookup when
// the MX and address answers are DNSSEC-secure, and every IP of the host at
// once, each one probe (smtpprobe.Probe: banner, EHLO, STARTTLS, the TLS
// server flight, EHLO again, QUIT; reading each reply); last, for a domain
// with an _mta-sts record, the policy fetch (the A lookup of
// mta-sts.<domain>, the TLS server flight, the HTTP response). An MX host
// already judged in the run costs nothing more. The DNS client retries a
// SERVFAIL once after 100 ms (resolve.Client).

// probeSTARTTLS is one probe of a server that completes STARTTLS.
func probeSTARTTLS() Chain {
	return Chain{rt("banner"), rt("EHLO"), rt("STARTTLS"), rt("TLS server flight"), rt("EHLO over TLS"), rt("QUIT")}
}

func probeOf(k DomainKind) Chain {
	switch k {
	case KindSelfPlaintext:
		return Chain{rt("banner"), rt("EHLO"), rt("QUIT")}
	case KindSelfDown:
		return nil // reset at once: no reply
	}
	return probeSTARTTLS()
}

// judgeHost is the work of judging one MX host with ips addresses.
func judgeHost(ips int, tlsa bool, probe Chain) Chain {
	c := Chain{rt("A")}
	if tlsa {
		c = append(c, rt("TLSA"))
	}
	if ips == 1 {
		return append(c, probe...)
	}
	branches := make([]Chain, ips)
	for i := range branches {
		branches[i] = probe
	}
	return append(c, par("probes", branches...))
}

// ScanChain is the work of scanning domain i of the plan alone, as the
// scanner does it. judged says that its MX hosts were already judged earlier
// in the run (provider-hosted domains share them); it changes nothing for
// the other kinds, whose MX host is their own.
func (p *WorldPlan) ScanChain(i int, judged bool) Chain {
	d := p.Domains[i]
	lookups := func(mx Chain) Step {
		return par("MX and policy records", mx, Chain{rt("TXT _mta-sts")}, Chain{rt("TXT _smtp._tls")})
	}
	switch d.Kind {
	case KindNXDomain, KindNullMX:
		return Chain{lookups(Chain{rt("MX")})}
	case KindServfail:
		return Chain{lookups(Chain{rt("MX"), {What: "retry back-off", Wait: 100 * time.Millisecond}, rt("MX again")})}
	case KindShared, KindSelfValid, KindSelfSelfSigned, KindSelfExpired, KindSelfPlaintext, KindSelfDown:
		return Chain{lookups(Chain{rt("MX")}), par("MX hosts", judgeHost(1, false, probeOf(d.Kind)))}
	}
	c := Chain{lookups(Chain{rt("MX")})}
	if !judged {
		pr := p.Providers[d.Provider]
		hosts := make([]Chain, len(pr.Hosts))
		for h, ips := range pr.Hosts {
			hosts[h] = judgeHost(ips, d.Kind == KindProviderDANE, probeSTARTTLS())
		}
		c = append(c, par("MX hosts", hosts...))
	}
	if d.Kind == KindProviderSTS {
		c = append(c, rt("A mta-sts"), rt("TLS server flight (policy)"), rt("HTTP response"))
	}
	return c
}

// First reports whether domain i judges MX hosts no earlier domain of the
// world's order shares: a self-hosted domain, or the first customer of its
// provider.
func (p *WorldPlan) First(i int) bool {
	d := p.Domains[i]
	return d.Provider < 0 || p.Providers[d.Provider].First == i
}

// Bound is an upper bound on the scan rate of a world, from the critical
// paths of its domains (see WorldPlan.Bound).
type Bound struct {
	Domains     int
	RTT         time.Duration
	Concurrency int
	// MeanRoundTrips and MeanCritical are the mean over domains of the
	// critical path, in round trips and in time (with the waits).
	MeanRoundTrips float64
	MeanCritical   time.Duration
	// LatencyRate is Concurrency / MeanCritical, in domains/s.
	LatencyRate float64
	// SerialChain is the longest chain no concurrency shortens: the probes
	// of the busiest shared hosting IP, one connection at a time, after the
	// first customer's MX and A lookups.
	SerialChain time.Duration
	// Rate is the bound: min(LatencyRate, Domains / SerialChain).
	Rate float64
	// ByKind is the number of domains and their summed critical-path time,
	// by kind.
	ByKind map[DomainKind]KindTotal
}

// KindTotal is what a world's domains of one kind add up to.
type KindTotal struct {
	Domains  int
	Critical time.Duration
}

// Bound is the upper bound on the rate at which a scanner running
// concurrency domains at a time can scan the world at round-trip time rtt.
//
// Each domain holds one of the concurrency slots for at least its critical
// path: ScanChain, with its MX hosts judged unless it is the first of its
// provider (First). Some domain of each provider waits for the provider's
// hosts to be judged, whichever it is, so the sum of the domains' durations
// is at least the sum of these critical paths, and the run takes at least
// that sum / concurrency. It also takes at least SerialChain. Queueing,
// CPU and the connection rate limit only add to both.
func (p *WorldPlan) Bound(rtt time.Duration, concurrency int) Bound {
	b := Bound{Domains: len(p.Domains), RTT: rtt, Concurrency: concurrency, ByKind: map[DomainKind]KindTotal{}}
	var sum time.Duration
	rts := 0
	for i, d := range p.Domains {
		t, n := p.ScanChain(i, !p.First(i)).Critical(rtt)
		sum += t
		rts += n
		k := b.ByKind[d.Kind]
		k.Domains++
		k.Critical += t
		b.ByKind[d.Kind] = k
	}
	if b.Domains == 0 {
		return b
	}
	b.MeanRoundTrips = float64(rts) / float64(b.Domains)
	b.MeanCritical = sum / time.Duration(b.Domains)
	if sum > 0 {
		b.LatencyRate = float64(concurrency) * float64(b.Domains) / sum.Seconds()
	}
	b.Rate = b.LatencyRate
	most := 0
	for _, n := range p.SharedIPs {
		most = max(most, n)
	}
	if most > 0 {
		// Every customer's probe is a full STARTTLS probe: the first, the
		// one that finds out that certificates depend on SNI, and one per
		// further name.
		probe, _ := probeSTARTTLS().Critical(rtt)
		b.SerialChain = 2*rtt + time.Duration(most)*probe
		if r := float64(b.Domains) / b.SerialChain.Seconds(); r < b.Rate || b.Rate == 0 {
			b.Rate = r
		}
	}
	return b
}
