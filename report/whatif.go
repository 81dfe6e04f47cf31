package report

import "github.com/tlsready/tlsready/scanner/result"

// Scenario is a sender policy of the what-if analysis.
type Scenario string

// The sender policies, from today's default to the strictest.
const (
	// Opportunistic: STARTTLS when offered, any certificate, plaintext
	// otherwise; DANE and MTA-STS ignored (today's default).
	Opportunistic Scenario = "opportunistic"
	// TLSRequired: deliver only over STARTTLS, any certificate (a delivery
	// service's "enforce TLS"); otherwise the message bounces.
	TLSRequired Scenario = "tls-required"
	// VerifiedRequired: deliver only over STARTTLS with a PKIX-valid
	// certificate for the MX host name; otherwise the message bounces.
	VerifiedRequired Scenario = "verified-required"
	// PolicyHonoured: opportunistic, but DANE (RFC 7672) and MTA-STS
	// (RFC 8461) policies are honoured, as a modern MTA does.
	PolicyHonoured Scenario = "policy-honoured"
)

// Scenarios lists the scenarios in report order.
var Scenarios = []Scenario{Opportunistic, TLSRequired, VerifiedRequired, PolicyHonoured}

// Outcome is the citizens' count per outcome of one scenario. Every citizen
// of the run is in exactly one outcome.
type Outcome struct {
	Scenario Scenario `json:"scenario"`
	// Protected: delivered over TLS that an active attacker can neither
	// strip nor intercept (a DNSSEC- or MTA-STS-authenticated policy).
	Protected int64 `json:"protected"`
	// Encrypted: delivered over TLS, safe against passive eavesdroppers only.
	Encrypted int64 `json:"encrypted"`
	// Plaintext: delivered without TLS.
	Plaintext int64 `json:"plaintext"`
	// Partial: depends on which MX host the sender reaches: plaintext under
	// opportunistic policies, bounced or delayed under required TLS.
	Partial int64 `json:"partial"`
	// Bounced: not delivered because of the sender's policy.
	Bounced int64 `json:"bounced"`
	// BrokenPolicy: the domain's own policy fails; a sender that does not
	// honour policies delivers, but the TLS state is not judged.
	BrokenPolicy int64 `json:"broken_policy"`
	// NoMail: the domain accepts no mail under any policy.
	NoMail int64 `json:"no_mail"`
	// Unknown: TLS state unknown (unreachable, dns-error, no verdict).
	Unknown int64 `json:"unknown"`
}

// WhatIf is the outcome of each scenario and the four headline numbers.
type WhatIf struct {
	Outcomes []Outcome `json:"outcomes"` // Scenarios order
	// PlaintextToday: citizens whose mail crosses the internet in plaintext
	// with opportunistic TLS; PlaintextMaybe: and those at partial domains.
	PlaintextToday int64 `json:"plaintext_today"`
	PlaintextMaybe int64 `json:"plaintext_maybe"`
	// BounceTLS: citizens whose mail would bounce with TLS required
	// (BounceTLSMaybe: partial domains, which may bounce or be delayed).
	BounceTLS      int64 `json:"bounce_tls_required"`
	BounceTLSMaybe int64 `json:"bounce_tls_required_maybe"`
	// BounceVerifiedMore: citizens that would bounce with verified TLS
	// required in addition to BounceTLS (encrypted domains).
	BounceVerifiedMore int64 `json:"bounce_verified_more"`
	// SafeActive: citizens safe against an active attacker when the sender
	// honours DANE and MTA-STS (dane + mta-sts domains).
	SafeActive int64 `json:"safe_active"`
	// BrokenBounce: citizens whose mail fails when the sender honours the
	// domain's broken policy.
	BrokenBounce int64 `json:"broken_bounce"`
}

// Outcome returns the outcome of one scenario.
func (w WhatIf) Outcome(s Scenario) Outcome {
	for _, o := range w.Outcomes {
		if o.Scenario == s {
			return o
		}
	}
	return Outcome{Scenario: s}
}

// computeWhatIf derives the scenarios from citizens per verdict bucket.
func computeWhatIf(counts []Count) WhatIf {
	c := func(v result.Verdict) int64 { return counts[bucket(v)].Citizens }
	dane, sts, ver, enc := c(result.DANE), c(result.MTASTS), c(result.Verified), c(result.Encrypted)
	partial, plain, broken := c(result.Partial), c(result.Plaintext), c(result.Broken)
	noMail := c(result.NoMail)
	unknown := c(result.Unreachable) + c(result.DNSError) + c(result.Unknown)

	opp := Outcome{Scenario: Opportunistic, Encrypted: dane + sts + ver + enc, Plaintext: plain, Partial: partial,
		BrokenPolicy: broken, NoMail: noMail, Unknown: unknown}
	req := Outcome{Scenario: TLSRequired, Encrypted: dane + sts + ver + enc, Partial: partial, Bounced: plain,
		BrokenPolicy: broken, NoMail: noMail, Unknown: unknown}
	verReq := Outcome{Scenario: VerifiedRequired, Encrypted: dane + sts + ver, Partial: partial, Bounced: plain + enc,
		BrokenPolicy: broken, NoMail: noMail, Unknown: unknown}
	pol := Outcome{Scenario: PolicyHonoured, Protected: dane + sts, Encrypted: ver + enc, Plaintext: plain, Partial: partial,
		Bounced: broken, NoMail: noMail, Unknown: unknown}
	return WhatIf{
		Outcomes:           []Outcome{opp, req, verReq, pol},
		PlaintextToday:     plain,
		PlaintextMaybe:     partial,
		BounceTLS:          plain,
		BounceTLSMaybe:     partial,
		BounceVerifiedMore: enc,
		SafeActive:         dane + sts,
		BrokenBounce:       broken,
	}
}
