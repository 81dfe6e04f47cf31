package resolve

import (
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/tlsready/tlsready/scanner/dnsname"

	"github.com/miekg/dns"
)

// rrset is a lookup's answer with the records of the asked type owned by the
// canonical name.
type rrset struct {
	Answer
	rrs []dns.RR
}

// normalize returns name as a lower-case FQDN.
func normalize(name string) string {
	return strings.ToLower(dns.Fqdn(strings.TrimSpace(name)))
}

// trimDot returns a lower-case FQDN without its trailing dot ("" for the root).
func trimDot(name string) string {
	return dnsname.Key(name)
}

// lookup resolves name/qtype, following CNAME chains in the answer and
// re-querying the final target when the resolver stopped at it.
func (c *Client) lookup(ctx context.Context, name string, qtype uint16) rrset {
	qname := normalize(name)
	res := rrset{Answer: Answer{Canonical: trimDot(qname)}}
	tname := dns.TypeToString[qtype]
	if _, ok := dns.IsDomainName(qname); !ok || qname == "." {
		res.Status, res.Err = StatusError, fmt.Errorf("%w: %q", ErrBadName, name)
		return res
	}
	if c.closed() {
		res.Status, res.Err = StatusError, ErrClosed
		return res
	}
	seen := map[string]bool{qname: true}
	secure := true
	cur := qname
	for requery := 0; ; requery++ {
		r, err := c.query(ctx, cur, qtype)
		if err != nil {
			res.Status, res.Err = errStatus(err), fmt.Errorf("%s %s: %w", trimDot(cur), tname, err)
			return res
		}
		secure = secure && r.AuthenticatedData && c.trustAD
		ch := followChain(r, cur, qtype, seen, c.maxCNAME-len(res.CNAMEs))
		for _, t := range ch.targets {
			res.CNAMEs = append(res.CNAMEs, trimDot(t))
		}
		cur = ch.final
		res.Canonical = trimDot(cur)
		if ch.err != nil {
			res.Status, res.Err = StatusError, fmt.Errorf("%s %s: %w", trimDot(qname), tname, ch.err)
			return res
		}
		switch r.Rcode {
		case dns.RcodeSuccess:
			if len(ch.rrs) > 0 {
				res.Status, res.Secure, res.rrs = StatusOK, secure, ch.rrs
				return res
			}
			if len(ch.targets) > 0 {
				// The chain ended at a name the resolver gave no answer
				// for: ask for the final target itself.
				if requery >= c.maxCNAME {
					res.Status, res.Err = StatusError, fmt.Errorf("%w: %s %s", ErrCNAMELong, trimDot(qname), tname)
					return res
				}
				continue
			}
			res.Status, res.Secure = StatusNoData, secure
			res.Err = fmt.Errorf("%w: %s %s", ErrNoData, res.Canonical, tname)
		case dns.RcodeNameError:
			// RFC 6604 §3: the rcode is about the last name of the chain.
			res.Status, res.Secure = StatusNXDomain, secure
			res.Err = fmt.Errorf("%w: %s", ErrNXDomain, res.Canonical)
		default:
			res.Status = rcodeStatus(r.Rcode)
			res.Err = fmt.Errorf("%w: %s for %s %s", ErrRcode, rcodeName(r.Rcode), res.Canonical, tname)
		}
		return res
	}
}

func rcodeName(rc int) string {
	if s, ok := dns.RcodeToString[rc]; ok {
		return s
	}
	return fmt.Sprintf("RCODE%d", rc)
}

// rcodeStatus maps a reply code to a Status (records aside).
func rcodeStatus(rc int) Status {
	switch rc {
	case dns.RcodeSuccess:
		return StatusOK
	case dns.RcodeNameError:
		return StatusNXDomain
	case dns.RcodeServerFailure:
		return StatusServfail
	case dns.RcodeRefused:
		return StatusRefused
	default:
		return StatusError
	}
}

// errStatus maps the error of a query that got no usable reply.
func errStatus(err error) Status {
	switch {
	case errors.Is(err, ErrMismatch), errors.Is(err, ErrMalformed), errors.Is(err, ErrClosed):
		return StatusError
	case errors.Is(err, ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return StatusTimeout
	default:
		return StatusError // network errors, cancellation
	}
}

// chain is the result of following CNAMEs inside one reply's answer section.
type chain struct {
	final   string   // lower-case FQDN at the end of the chain
	targets []string // CNAME targets followed, in order
	rrs     []dns.RR // records of the asked type owned by final
	err     error    // ErrCNAMELoop or ErrCNAMELong
}

// followChain follows the CNAMEs of r's answer from start (a lower-case
// FQDN). seen holds names already on the chain and is updated; budget is the
// number of CNAMEs that may still be followed.
func followChain(r *dns.Msg, start string, qtype uint16, seen map[string]bool, budget int) chain {
	cnames := map[string]string{}
	has := map[string]bool{}
	for _, rr := range r.Answer {
		h := rr.Header()
		if h.Class != dns.ClassINET {
			continue
		}
		owner := strings.ToLower(h.Name)
		if h.Rrtype == qtype {
			has[owner] = true
		}
		if cn, ok := rr.(*dns.CNAME); ok {
			if _, dup := cnames[owner]; !dup {
				cnames[owner] = normalize(cn.Target)
			}
		}
	}
	ch := chain{final: start}
	for qtype != dns.TypeCNAME && !has[ch.final] {
		t, ok := cnames[ch.final]
		if !ok {
			break
		}
		if seen[t] {
			ch.err = fmt.Errorf("%w at %s", ErrCNAMELoop, trimDot(t))
			return ch
		}
		if len(ch.targets) >= budget {
			ch.err = ErrCNAMELong
			return ch
		}
		seen[t] = true
		ch.targets = append(ch.targets, t)
		ch.final = t
	}
	for _, rr := range r.Answer {
		h := rr.Header()
		if h.Class == dns.ClassINET && h.Rrtype == qtype && strings.EqualFold(h.Name, ch.final) {
			ch.rrs = append(ch.rrs, rr)
		}
	}
	return ch
}

// MX looks up the MX RRset of domain.
func (c *Client) MX(ctx context.Context, domain string) MXAnswer {
	res := c.lookup(ctx, domain, dns.TypeMX)
	a := MXAnswer{Answer: res.Answer}
	if res.Status == StatusOK {
		a.MX, a.Null = mxFrom(res.rrs)
	}
	return a
}

// mxFrom turns MX records into the sorted, deduplicated list of MXAnswer.
func mxFrom(rrs []dns.RR) (mx []MX, null bool) {
	best := map[string]uint16{}
	for _, rr := range rrs {
		m, ok := rr.(*dns.MX)
		if !ok {
			continue
		}
		host := trimDot(m.Mx)
		if p, ok := best[host]; !ok || m.Preference < p {
			best[host] = m.Preference
		}
	}
	// RFC 7505 §3: a null MX is the only record of its RRset; alongside
	// other MX records the "." entry is ignored.
	if _, ok := best[""]; ok {
		if len(best) == 1 {
			return nil, true
		}
		delete(best, "")
	}
	for host, pref := range best {
		mx = append(mx, MX{Host: host, Preference: pref})
	}
	slices.SortFunc(mx, func(a, b MX) int {
		return cmp.Or(cmp.Compare(a.Preference, b.Preference), strings.Compare(a.Host, b.Host))
	})
	return mx, false
}

// TXT looks up the TXT records of name.
func (c *Client) TXT(ctx context.Context, name string) TXTAnswer {
	res := c.lookup(ctx, name, dns.TypeTXT)
	a := TXTAnswer{Answer: res.Answer}
	if res.Status == StatusOK {
		a.TXT = txtFrom(res.rrs)
	}
	return a
}

// txtFrom concatenates each record's character-strings (RFC 7208 §3.3).
func txtFrom(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		if t, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(t.Txt, ""))
		}
	}
	return out
}

// TLSA looks up the TLSA records of name (e.g. "_25._tcp.mx.example.com").
func (c *Client) TLSA(ctx context.Context, name string) TLSAAnswer {
	res := c.lookup(ctx, name, dns.TypeTLSA)
	a := TLSAAnswer{Answer: res.Answer}
	if res.Status == StatusOK {
		a.Records = tlsaFrom(res.rrs)
	}
	return a
}

// tlsaFrom converts TLSA records; one whose data is not hex is skipped.
func tlsaFrom(rrs []dns.RR) []TLSARecord {
	var out []TLSARecord
	for _, rr := range rrs {
		t, ok := rr.(*dns.TLSA)
		if !ok {
			continue
		}
		data, err := hex.DecodeString(t.Certificate)
		if err != nil {
			continue
		}
		out = append(out, TLSARecord{Usage: t.Usage, Selector: t.Selector, MatchingType: t.MatchingType, Data: data})
	}
	return out
}

// addrsFrom returns the sorted, deduplicated addresses of A or AAAA records.
func addrsFrom(rrs []dns.RR) []netip.Addr {
	var out []netip.Addr
	for _, rr := range rrs {
		var ip []byte
		switch r := rr.(type) {
		case *dns.A:
			ip = r.A.To4()
		case *dns.AAAA:
			ip = r.AAAA.To16()
		}
		if a, ok := netip.AddrFromSlice(ip); ok {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

// Addrs looks up the A records of host, and its AAAA records too when ipv6.
func (c *Client) Addrs(ctx context.Context, host string, ipv6 bool) AddrAnswer {
	v4 := c.lookup(ctx, host, dns.TypeA)
	v6 := rrset{Answer: Answer{Status: StatusNoData, Secure: true}} // not asked
	if ipv6 {
		v6 = c.lookup(ctx, host, dns.TypeAAAA)
		return mergeAddrs(v4, v6)
	}
	if v4.Status == StatusNoData {
		// No A records: an IPv6-only host accepts mail from senders with
		// IPv6; it is not a dangling name (docs/verdicts.md).
		v6 = c.lookup(ctx, host, dns.TypeAAAA)
		if v6.Status.Temporary() {
			return AddrAnswer{Answer: v6.Answer}
		}
		if only := addrsFrom(v6.rrs); v6.Status == StatusOK && len(only) > 0 {
			a := AddrAnswer{Answer: v6.Answer, IPv6Only: only}
			a.Secure = v4.Secure && v6.Secure
			return a
		}
	}
	return mergeAddrs(v4, rrset{Answer: Answer{Status: StatusNoData, Secure: true}})
}

// mergeAddrs combines the A and AAAA lookups: OK if any address was found;
// otherwise a temporary failure of either wins, then NXDOMAIN over NODATA.
// Secure only if every lookup that gave an answer (not a failure) was secure.
func mergeAddrs(v4, v6 rrset) AddrAnswer {
	addrs := append(addrsFrom(v4.rrs), addrsFrom(v6.rrs)...)
	secure := true
	for _, r := range []rrset{v4, v6} {
		if !r.Status.Temporary() {
			secure = secure && r.Secure
		}
	}
	base := v4.Answer
	if v4.Status != StatusOK && v6.Status == StatusOK {
		base = v6.Answer
	}
	a := AddrAnswer{Answer: base, Addrs: addrs}
	switch {
	case len(addrs) > 0:
		a.Status, a.Err = StatusOK, nil
	case v4.Status.Temporary():
		a.Answer = v4.Answer
	case v6.Status.Temporary():
		a.Answer = v6.Answer
	case v4.Status == StatusNXDomain || v6.Status != StatusNXDomain:
		a.Answer = v4.Answer
	default:
		a.Answer = v6.Answer
	}
	if len(addrs) == 0 && a.Status == StatusOK {
		// Records whose data held no address.
		a.Status, a.Err = StatusNoData, fmt.Errorf("%w: %s A/AAAA", ErrNoData, a.Canonical)
	}
	a.Secure = secure && !a.Status.Temporary()
	return a
}
