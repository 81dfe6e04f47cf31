package scanner

import (
	"fmt"

	"github.com/tlsready/tlsready/scanner/dane"
	"github.com/tlsready/tlsready/scanner/mtasts"
	"github.com/tlsready/tlsready/scanner/resolve"
	"github.com/tlsready/tlsready/scanner/result"
)

// Classify derives the verdict, flags and reason of a domain from the facts
// the scan gathered (DNS, probes, policies), by the rules of VERDICTS.md.
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

	// Gather per-IP facts over all MX hosts.
	var reachable, completed, hostDNSTemp, hostsResolved int
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
			if a.Probe == nil || !a.Probe.Reachable {
				continue
			}
			reachable++
			if a.Probe.TLS != nil {
				completed++
			}
		}
	}
	if reachable == 0 {
		if hostDNSTemp > 0 {
			set(result.DNSError, "address lookup of %d MX host(s) failed and no MX IP answered", hostDNSTemp)
			return
		}
		if hostsResolved == 0 {
			set(result.Unreachable, "no MX host has an address (dangling MX)")
			return
		}
		set(result.Unreachable, "no MX IP answered SMTP with a 220 banner")
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

	// DANE (RFC 7672). Hosts with usable, DNSSEC-secure TLSA records bind
	// senders that do DANE: every reachable IP of such a host must complete
	// STARTTLS with a matching certificate, or those senders defer the mail.
	daneHosts, daneOK := 0, true
	for _, h := range r.MX {
		if !hasUsableSecureTLSA(h) {
			continue
		}
		daneHosts++
		for _, a := range h.Addrs {
			if a.Probe == nil || !a.Probe.Reachable {
				continue
			}
			if a.Probe.TLS == nil || a.DANEMatch == nil || !*a.DANEMatch {
				daneOK = false
			}
		}
	}
	if daneHosts > 0 && !daneOK {
		flags = result.AddFlag(flags, result.FlagDANEMismatch)
		set(result.Broken, "secure TLSA records that a presented certificate (or a missing STARTTLS) does not match")
		return
	}
	if daneHosts > 0 && daneHosts == len(r.MX) && r.MXSecure {
		set(result.DANE, "every MX host has secure, usable TLSA records matched on every reachable IP")
		return
	}

	// MTA-STS (RFC 8461) in enforce mode.
	if p := r.MTASTS; p != nil && p.Mode == "enforce" {
		pol := mtasts.Policy{Mode: mtasts.Mode(p.Mode), MX: p.MX}
		var unmatched, invalid int
		for _, h := range r.MX {
			if !pol.MatchMX(h.Name) {
				unmatched++
				continue
			}
			for _, a := range h.Addrs {
				if a.Probe != nil && a.Probe.Reachable && !a.PKIXValid {
					invalid++
				}
			}
		}
		switch {
		case unmatched > 0:
			flags = result.AddFlag(flags, result.FlagSTSMXMismatch)
			set(result.Broken, "MTA-STS enforce policy does not cover %d MX host(s)", unmatched)
			return
		case invalid > 0:
			flags = result.AddFlag(flags, result.FlagSTSCertInvalid)
			set(result.Broken, "MTA-STS enforce policy, but %d reachable MX IP(s) lack a valid certificate", invalid)
			return
		}
		set(result.MTASTS, "MTA-STS enforce policy covers every MX host, all certificates valid")
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
				if a.Probe != nil && a.Probe.Reachable && !a.PKIXValid {
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
