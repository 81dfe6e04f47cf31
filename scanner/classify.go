package scanner

import (
	"fmt"

	"github.com/tlsready/tlsready/scanner/dane"
	"github.com/tlsready/tlsready/scanner/mtasts"
	"github.com/tlsready/tlsready/scanner/resolve"
	"github.com/tlsready/tlsready/scanner/result"
)

// Classify derives the verdict, flags and reason of a domain from the facts
// the scan gathered (DNS, probes, policies), by the rules of docs/verdicts.md.
// It is a pure function of r: it changes only r.Verdict, r.Flags and r.Reason.
//
// Order of the rules: DNS outcomes that leave no mail servers (no-mail,
// dns-error), then reachability (unreachable), then the enforcement policies
// (dane, then mta-sts; a failing policy is broken), then opportunistic TLS
// (verified, encrypted, partial, plaintext).
func Classify(r *result.Result) {
	flags := r.Flags
	set := func(v result.Verdict, reason string, a ...any) {
		r.Verdict = v
		r.Reason = fmt.Sprintf(reason, a...)
		r.Flags = flags
		if r.Flags == nil {
			r.Flags = []string{} // "flags": [] in JSON, never null
		}
	}

	switch {
	case r.NullMX:
		flags = result.AddFlag(flags, result.FlagNullMX)
		set(result.NoMail, "null MX (RFC 7505): the domain accepts no mail")
		return
	case r.DNSStatus == string(resolve.StatusNXDomain):
		flags = result.AddFlag(flags, result.FlagNXDomain)
		set(result.NoMail, "the domain does not exist (NXDOMAIN)")
		return
	case resolve.Status(r.DNSStatus).Temporary():
		set(result.DNSError, "MX lookup failed: %s", r.DNSStatus)
		return
	case len(r.MX) == 0:
		set(result.NoMail, "no MX and no A/AAAA records")
		return
	}

	// Gather per-IP facts over all MX hosts. "Reachable" is as a sender
	// sees it: a 250 to EHLO/HELO after a 220 banner (docs/verdicts.md). An IP
	// whose TLS neither stack could judge counts as not judged, like one
	// not reached: never as plaintext.
	var reachable, completed, notJudged, hostDNSTemp, hostsResolved, v6Only int
	for _, h := range r.MX {
		flags = result.AddFlag(flags, h.Flags...)
		if resolve.Status(h.DNSStatus).Temporary() {
			hostDNSTemp++
		}
		if len(h.Addrs) > 0 {
			hostsResolved++
		}
		for _, a := range h.Addrs {
			flags = result.AddFlag(flags, a.Flags...)
			if a.Skipped == "ipv6-off" {
				v6Only++
			}
			if !counts(a) {
				if a.Probe != nil && a.Probe.Reachable {
					notJudged++
				}
				continue
			}
			reachable++
			if a.Probe.TLS != nil {
				completed++
			}
		}
	}
	if reachable == 0 {
		switch {
		case notJudged > 0:
			set(result.Unreachable, "%d MX IP(s) answered, but whether an OpenSSL-based sender completes their TLS handshake could not be judged", notJudged)
		case hostDNSTemp > 0:
			set(result.DNSError, "address lookup of %d MX host(s) failed and no MX IP answered", hostDNSTemp)
		case hostsResolved == 0:
			set(result.Unreachable, "no MX host has an address (dangling MX)")
		case v6Only > 0:
			set(result.Unreachable, "no MX IP answered; %d IPv6 address(es) not probed (IPv6 probing is off)", v6Only)
		default:
			set(result.Unreachable, "no MX IP answered EHLO with 250 after a 220 banner")
		}
		return
	}

	// A TLSA lookup that failed for an otherwise secure host is not "no
	// DANE": DANE senders defer that mail (FIELD-NOTES), so we cannot say.
	for _, h := range r.MX {
		if h.TLSA != nil && resolve.Status(h.TLSA.Status).Temporary() {
			flags = result.AddFlag(flags, result.FlagTLSAServfail)
			set(result.DNSError, "TLSA lookup for %s failed: %s", h.Name, h.TLSA.Status)
			return
		}
		if h.TLSA != nil && !h.TLSA.Secure && len(h.TLSA.Records) > 0 {
			flags = result.AddFlag(flags, result.FlagTLSAInsecure)
		}
	}

	// DANE (RFC 7672). A DANE sender delivers to an IP of a host with
	// usable, secure TLSA records only when its certificate matches them,
	// and to the other hosts opportunistically. IPs that fail are skipped
	// (flagged dane-mismatch on the IP); the domain is broken only when a
	// DANE sender can deliver nowhere, and dane when every MX host has
	// TLSA records and at least one IP passes.
	daneHosts, danePass, deliverable := 0, 0, 0
	for _, h := range r.MX {
		tlsa := hasUsableSecureTLSA(h)
		if tlsa {
			daneHosts++
		}
		for _, a := range h.Addrs {
			if !counts(a) {
				continue
			}
			switch {
			case !tlsa:
				deliverable++
			case a.Probe.TLS != nil && a.DANEMatch != nil && *a.DANEMatch:
				danePass++
				deliverable++
			}
		}
	}
	if daneHosts > 0 && deliverable == 0 {
		flags = result.AddFlag(flags, result.FlagDANEMismatch)
		set(result.Broken, "secure TLSA records that no presented certificate (or a missing STARTTLS) matches on any reachable MX IP")
		return
	}
	if daneHosts > 0 && daneHosts == len(r.MX) && r.MXSecure && danePass > 0 {
		if danePass < reachable {
			set(result.DANE, "every MX host has secure, usable TLSA records; %d of %d reachable MX IP(s) match them (DANE senders skip the others)", danePass, reachable)
			return
		}
		set(result.DANE, "every MX host has secure, usable TLSA records matched on every reachable MX IP")
		return
	}

	// MTA-STS (RFC 8461) in enforce mode: a policy-honouring sender
	// delivers only to MX hosts matching an mx pattern, over STARTTLS with a
	// PKIX-valid certificate for that host; it skips the rest (flagged) and
	// defers only when nothing is left (broken).
	if p := r.MTASTS; p != nil && p.Mode == "enforce" {
		pol := mtasts.Policy{Mode: mtasts.Mode(p.Mode), MX: p.MX}
		var unmatched, invalid, valid int
		for _, h := range r.MX {
			if !pol.MatchMX(h.Name) {
				unmatched++
				continue
			}
			for _, a := range h.Addrs {
				if !counts(a) {
					continue
				}
				if a.PKIXValid {
					valid++
				} else {
					invalid++
				}
			}
		}
		if unmatched > 0 {
			flags = result.AddFlag(flags, result.FlagSTSMXMismatch)
		}
		if invalid > 0 {
			flags = result.AddFlag(flags, result.FlagSTSCertInvalid)
		}
		switch {
		case valid == 0 && unmatched == len(r.MX):
			set(result.Broken, "MTA-STS enforce policy covers none of the %d MX host(s)", unmatched)
		case valid == 0:
			set(result.Broken, "MTA-STS enforce policy, but no reachable MX IP of a covered host presents a valid certificate")
		case unmatched > 0 || invalid > 0:
			set(result.MTASTS, "MTA-STS enforce policy: %d reachable MX IP(s) pass; senders skip %d host(s) outside the policy and %d IP(s) without a valid certificate", valid, unmatched, invalid)
		default:
			set(result.MTASTS, "MTA-STS enforce policy covers every MX host, all certificates valid")
		}
		return
	}

	// Opportunistic TLS.
	switch {
	case completed == 0:
		set(result.Plaintext, "none of %d reachable MX IP(s) completed STARTTLS", reachable)
	case completed < reachable:
		set(result.Partial, "%d of %d reachable MX IP(s) completed STARTTLS", completed, reachable)
	default:
		invalid := 0
		for _, h := range r.MX {
			for _, a := range h.Addrs {
				if counts(a) && !a.PKIXValid {
					invalid++
				}
			}
		}
		if invalid > 0 {
			set(result.Encrypted, "every reachable MX IP completed STARTTLS; %d certificate(s) not PKIX-valid", invalid)
			return
		}
		set(result.Verified, "every reachable MX IP completed STARTTLS with a PKIX-valid certificate")
	}
}

// counts reports whether an IP counts for the TLS verdicts: it was reached
// as a sender reaches it, and its STARTTLS outcome was judged.
func counts(a result.Addr) bool {
	return a.Probe != nil && a.Probe.Reachable && a.Probe.Status != result.ProbeNotJudged
}

// hasUsableSecureTLSA reports whether a host has a DNSSEC-secure TLSA RRset
// with at least one record of usage 2 or 3 (RFC 7672 §3.1.3).
func hasUsableSecureTLSA(h result.Host) bool {
	if h.TLSA == nil || !h.TLSA.Secure {
		return false
	}
	for _, t := range h.TLSA.Records {
		if dane.Usable(dane.Record{Usage: t.Usage, Selector: t.Selector, MatchingType: t.MatchingType, Data: unhex(t.Data)}) {
			return true
		}
	}
	return false
}
