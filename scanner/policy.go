package scanner

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/tlsready/tlsready/scanner/dane"
	"github.com/tlsready/tlsready/scanner/dnsname"
	"github.com/tlsready/tlsready/scanner/mtasts"
	"github.com/tlsready/tlsready/scanner/resolve"
	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/scanner/smtpprobe"
	"github.com/tlsready/tlsready/scanner/tlsrpt"
)

// STSCache keeps fetched MTA-STS policies between runs (RFC 8461 §5.1):
// a policy is refetched only when the TXT id changes or max_age has passed.
// The scanner owns this interface; the store implements it (store.Store and
// store.STSIndex). GetSTSPolicy returns an error for a domain with no cached
// policy (the store's ErrNotFound): any error is a miss.
type STSCache interface {
	GetSTSPolicy(ctx context.Context, domain string) (mtasts.CachedPolicy, error)
	PutSTSPolicy(ctx context.Context, p mtasts.CachedPolicy) error
}

// policyFacts are the DNS records of the policy layer for one domain.
type policyFacts struct {
	sts resolve.TXTAnswer // _mta-sts.<domain>
	rpt resolve.TXTAnswer // _smtp._tls.<domain>
}

func (s *Scanner) lookupPolicies(ctx context.Context, domain string) policyFacts {
	var f policyFacts
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.rpt = s.cfg.Resolver.TXT(ctx, "_smtp._tls."+domain)
	}()
	f.sts = s.cfg.Resolver.TXT(ctx, "_mta-sts."+domain)
	<-done
	return f
}

// applyPolicies evaluates MTA-STS and TLSRPT for a domain that has mail hosts.
func (s *Scanner) applyPolicies(ctx context.Context, r *result.Result, f policyFacts) {
	if r.NullMX || len(r.MX) == 0 {
		return
	}
	// TLSRPT (RFC 8460 §3). A failed lookup is not an absent record.
	switch {
	case f.rpt.Status == resolve.StatusOK:
		if rec, err := tlsrpt.SelectRecord(f.rpt.TXT); err == nil {
			r.TLSRPT = &result.TLSRPT{RUA: rec.RUA}
		} else {
			r.TLSRPT = &result.TLSRPT{Error: err.Error()}
			r.Flags = result.AddFlag(r.Flags, result.FlagNoTLSRPT)
		}
	case f.rpt.Status.Temporary():
		r.Flags = result.AddFlag(r.Flags, result.FlagTLSRPTLookupFail)
	default:
		r.Flags = result.AddFlag(r.Flags, result.FlagNoTLSRPT)
	}

	// MTA-STS (RFC 8461 §3.1): exactly one valid v=STSv1 record. RFC 8461
	// §5.1: when no live policy can be discovered (no record, an invalid
	// one, a failed lookup or fetch), a cached policy within its max_age
	// still applies.
	useCached := func(why string) {
		if p := s.cachedPolicy(ctx, r.Domain, ""); p != nil {
			p.Error = why
			r.MTASTS = p
			r.Flags = result.AddFlag(r.Flags, result.FlagSTSCached)
			s.stsModeFlags(r)
		}
	}
	switch {
	case f.sts.Status == resolve.StatusOK:
	case f.sts.Status.Temporary():
		r.Flags = result.AddFlag(r.Flags, result.FlagSTSLookupFailed)
		useCached("_mta-sts lookup failed: " + string(f.sts.Status))
		return
	default: // NXDOMAIN, NODATA: no record now
		useCached("no _mta-sts record")
		return
	}
	rec, err := mtasts.SelectRecord(f.sts.TXT)
	if err != nil {
		if errors.Is(err, mtasts.ErrNoRecord) {
			useCached("no _mta-sts record")
			return
		}
		r.MTASTS = &result.STSPolicy{Error: err.Error()}
		r.Flags = result.AddFlag(r.Flags, result.FlagSTSRecordInvalid)
		useCached(err.Error())
		return
	}
	if p := s.cachedPolicy(ctx, r.Domain, rec.ID); p != nil {
		r.MTASTS = p
		s.stsModeFlags(r)
		return
	}
	fc := mtasts.FetchConfig{
		RootCAs: s.cfg.RootCAs,
		Port:    s.cfg.HTTPSPort,
		Dialer:  dialer{s},
		Now:     s.cfg.Now,
		Timeout: s.cfg.STSTimeout,
	}
	pol, body, err := mtasts.Fetch(ctx, fc, r.Domain)
	if err != nil {
		r.MTASTS = &result.STSPolicy{RecordID: rec.ID, Error: err.Error()}
		var fe *mtasts.FetchError
		if errors.As(err, &fe) && fe.Reason == mtasts.ReasonSyntax {
			r.Flags = result.AddFlag(r.Flags, result.FlagSTSInvalid)
		} else {
			r.Flags = result.AddFlag(r.Flags, result.FlagSTSFetchFailed)
		}
		// §5.1: a cached, unexpired policy survives a failed refresh.
		useCached(err.Error())
		return
	}
	now := s.cfg.Now().UTC()
	r.MTASTS = &result.STSPolicy{RecordID: rec.ID, Mode: string(pol.Mode), MX: pol.MX, MaxAge: pol.MaxAge, FetchedAt: now}
	if s.cfg.STSCache != nil {
		err := s.cfg.STSCache.PutSTSPolicy(ctx, mtasts.CachedPolicy{
			Domain: r.Domain, RecordID: rec.ID, Policy: string(body), FetchedAt: now,
			MaxAge: time.Duration(pol.MaxAge) * time.Second,
		})
		if err != nil {
			s.log.Debug("mta-sts cache write failed", "err", err)
		}
	}
	s.stsModeFlags(r)
}

func (s *Scanner) stsModeFlags(r *result.Result) {
	switch r.MTASTS.Mode {
	case "testing":
		r.Flags = result.AddFlag(r.Flags, result.FlagSTSTesting)
	case "none":
		r.Flags = result.AddFlag(r.Flags, result.FlagSTSNone)
	}
}

// cachedPolicy returns the cached policy for domain when it is still within
// its max_age and, if id is not empty, was fetched under that TXT id.
func (s *Scanner) cachedPolicy(ctx context.Context, domain, id string) *result.STSPolicy {
	if s.cfg.STSCache == nil {
		return nil
	}
	c, err := s.cfg.STSCache.GetSTSPolicy(ctx, domain)
	if err != nil {
		return nil
	}
	if !c.Fresh(id, s.cfg.Now()) {
		return nil
	}
	pol, err := mtasts.ParsePolicy([]byte(c.Policy))
	if err != nil {
		return nil
	}
	return &result.STSPolicy{RecordID: c.RecordID, Mode: string(pol.Mode), MX: pol.MX, MaxAge: pol.MaxAge, FetchedAt: c.FetchedAt.UTC()}
}

// lookupTLSA finds the TLSA RRset of an MX host whose MX and address records
// are DNSSEC-secure (RFC 7672 §2.2). When the host name is an alias, the
// expanded name is the TLSA base domain first, then the original name
// (RFC 7672 §2.2.2, RFC 7671 §7).
func (s *Scanner) lookupTLSA(ctx context.Context, h result.Host) *result.TLSA {
	const port = 25 // TLSA names use the SMTP port even when a lab overrides the dial port
	bases := []string{h.Name}
	if h.CNAME != "" && h.CNAME != h.Name {
		bases = []string{h.CNAME, h.Name}
	}
	var t *result.TLSA
	for _, base := range bases {
		name := dane.TLSAName(base, port)
		t = s.tlsaOnce(ctx, name)
		if t.Status == string(resolve.StatusOK) && t.Secure {
			return t
		}
		if resolve.Status(t.Status).Temporary() {
			return t
		}
	}
	return t
}

func (s *Scanner) tlsaOnce(ctx context.Context, name string) *result.TLSA {
	t, ok := s.tlsa.do(ctx, name, func() *result.TLSA {
		ans := s.cfg.Resolver.TLSA(ctx, name)
		s.noteDNS(ans.Answer)
		t := &result.TLSA{Name: dnsname.Key(name), Secure: ans.Secure, Status: string(ans.Status)}
		for _, rr := range ans.Records {
			t.Records = append(t.Records, result.TLSARecord{
				Usage: rr.Usage, Selector: rr.Selector, MatchingType: rr.MatchingType, Data: hexString(rr.Data),
			})
		}
		return t
	})
	if !ok {
		return &result.TLSA{Name: dnsname.Key(name), Status: string(resolve.StatusTimeout)}
	}
	return t
}

// judgeDANE checks the presented chain of one address against the host's
// TLSA records (RFC 7672 §3). Only secure, usable records count. The
// recipient domain, also a DANE-TA reference identifier (RFC 7672 §3.2.2),
// differs between the domains sharing this host: daneNextHop applies it.
func (s *Scanner) judgeDANE(ctx context.Context, a *result.Addr, h result.Host, sni string) {
	t := h.TLSA
	if t.Status != string(resolve.StatusOK) || len(t.Records) == 0 {
		return
	}
	if !t.Secure {
		a.Flags = result.AddFlag(a.Flags, result.FlagTLSAInsecure)
		return
	}
	var recs []dane.Record
	for _, r := range t.Records {
		dr := dane.Record{Usage: r.Usage, Selector: r.Selector, MatchingType: r.MatchingType, Data: unhex(r.Data)}
		if dane.Usable(dr) {
			recs = append(recs, dr)
		}
	}
	if len(recs) == 0 {
		a.Flags = result.AddFlag(a.Flags, result.FlagTLSAUnusable)
		return
	}
	names := []string{h.Name}
	if h.CNAME != "" {
		names = append(names, h.CNAME)
	}
	ok := false
	if t := a.Probe.TLS; t != nil {
		raw := t.Raw
		if raw == nil { // the shared probe dropped its chain: fetch it again
			if p := s.probeForDANE(ctx, sni, a.IP); p != nil && p.TLS != nil {
				raw = p.TLS.Raw
			}
		}
		v := dane.Verify(raw, recs, names, s.cfg.Now())
		ok = v.Match
		a.DANENameOnly = !ok && v.Reason == dane.ReasonNameMismatch
	}
	a.DANEMatch = &ok
	if !ok {
		a.Flags = result.AddFlag(a.Flags, result.FlagDANEMismatch)
	}
}

// daneNextHop completes the DANE judgement of a shared host for one
// recipient domain: a certificate that chains to a DANE-TA record but names
// only the recipient (next-hop) domain matches (RFC 7672 §3.2.2). The host
// is shared between domains, so a changed one is a copy.
func daneNextHop(h result.Host, domain string) result.Host {
	copied := false
	for i, a := range h.Addrs {
		if !a.DANENameOnly || !smtpprobe.NameMatch(a.Probe, domain) {
			continue
		}
		if !copied {
			h.Addrs = slices.Clone(h.Addrs)
			copied = true
		}
		ok := true
		a.DANEMatch = &ok
		a.DANENameOnly = false
		a.Flags = slices.DeleteFunc(slices.Clone(a.Flags), func(f string) bool { return f == result.FlagDANEMismatch })
		h.Addrs[i] = a
	}
	return h
}
