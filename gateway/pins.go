package gateway

import (
	"context"
	"strings"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/store"
)

// Pins and the confirmation rule.
//
// A pin (store.Pin, set with `tlsready pin set`) is an administrator's
// policy for a domain: while it is active (no expiry, or before its Until
// by Config.Now) every answer path — socketmap, HTTP, export policy, the
// cache file — answers the pinned policy, whatever the scan results say,
// for a stale result or a domain never scanned too.
//
// Confirmation rule: a scan that calls for a stricter policy than the
// observation before it (the result it replaced in the store) is not
// enough to tighten the gateway: until a second consecutive observation
// also calls for at least that level the gateway answers the previous
// observation's policy, the tightening is "pending". A looser policy
// applies at once (a server that broke must not defer mail), and a
// domain's first observation applies as it is. The previous observation is
// kept in the store (store.Answer.PrevVerdict), so every node answers the
// same and a restart changes nothing.

// PinPolicies are the policies a pin can set, loosest first: the Postfix
// levels the gateway answers, and "none" (no TLS).
var PinPolicies = []string{"none", PolicyMay, PolicyEncrypt, PolicyVerify, PolicySecure, PolicyDANEOnly}

// ValidPinPolicy reports whether p is one of PinPolicies.
func ValidPinPolicy(p string) bool {
	for _, x := range PinPolicies {
		if p == x {
			return true
		}
	}
	return false
}

// PolicyLevel orders policies by strictness: 0 for none (NOTFOUND, "" or
// "none"), then may, encrypt, verify, secure, dane-only (1 to 5). Only a
// policy's first word counts ("secure match=..." is secure).
func PolicyLevel(p string) int {
	w, _, _ := strings.Cut(p, " ")
	switch w {
	case PolicyMay:
		return 1
	case PolicyEncrypt:
		return 2
	case PolicyVerify:
		return 3
	case PolicySecure:
		return 4
	case PolicyDANEOnly:
		return 5
	}
	return 0
}

// Observation classes: what a result calls for, whatever the gateway's
// configuration maps verified and encrypted to. A record's Prev is the
// class of the previous observation plus one (0: none).
const (
	classNone      = iota // no policy: other verdicts, an unusable MTA-STS policy
	classEncrypted        // Config.EncryptedPolicy
	classVerified         // Config.VerifiedPolicy
	classMTASTS           // secure match=...
	classDANE             // dane-only
)

// classOf is the class of a verdict whose MTA-STS match list is stsMatch.
func classOf(v result.Verdict, stsMatch string) uint8 {
	switch v {
	case result.DANE:
		return classDANE
	case result.MTASTS:
		if stsMatch == "" {
			return classNone
		}
		return classMTASTS
	case result.Verified:
		return classVerified
	case result.Encrypted:
		return classEncrypted
	}
	return classNone
}

// prevOf returns the Prev of a stored answer and the MTA-STS match list its
// record keeps: the latest result's, except when the previous observation
// was MTA-STS and the latest is DANE — a tightening the gateway holds back
// at the previous observation's secure policy, which needs that
// observation's list (a DANE verdict's policy needs none).
func prevOf(a *store.Answer, cur string) (prev uint8, stsMatch string) {
	if a.PrevVerdict == "" {
		return 0, cur
	}
	pm := stsMatchOf(a.PrevSTSMode, stsPatterns(a.PrevSTSMX))
	pc := classOf(a.PrevVerdict, pm)
	if pc == classMTASTS && a.Verdict == result.DANE {
		return pc + 1, pm
	}
	return pc + 1, cur
}

// classPolicy is the Postfix policy of an observation class.
func (s *Server) classPolicy(c uint8, stsMatch string) string {
	switch c {
	case classDANE:
		return PolicyDANEOnly
	case classMTASTS:
		return PolicySecure + " match=" + stsMatch + " servername=hostname"
	case classVerified:
		return s.cfg.VerifiedPolicy
	case classEncrypted:
		return s.cfg.EncryptedPolicy
	}
	return ""
}

// PinInfo is the pin an answer comes from (the HTTP API's "pin").
type PinInfo struct {
	Policy string    `json:"policy"`
	Reason string    `json:"reason"`
	Until  time.Time `json:"until,omitzero"` // zero: until removed
	SetAt  time.Time `json:"set_at"`
	SetBy  string    `json:"set_by"` // operating-system user
	Host   string    `json:"host"`
}

// pinInfo is the PinInfo of a pin.
func pinInfo(p store.Pin) *PinInfo {
	return &PinInfo{Policy: p.Policy, Reason: p.Reason, Until: p.Until, SetAt: p.At, SetBy: p.OSUser, Host: p.Host}
}

// pin returns the active pin of an A-label domain at now: from the
// snapshot, or before the first load from one bounded store read (as
// lookups then read the result; a failed read is no pin).
func (s *Server) pin(domain string, now time.Time) (store.Pin, bool) {
	sn := s.snap.Load()
	if sn == nil {
		st := s.store()
		if st == nil {
			return store.Pin{}, false
		}
		ctx, cancel := context.WithTimeout(context.Background(), storeLookupTimeout)
		defer cancel()
		p, err := st.LookupPin(ctx, domain)
		if err != nil || !p.Active(now) {
			return store.Pin{}, false
		}
		return p, true
	}
	if len(sn.pins) == 0 {
		return store.Pin{}, false
	}
	p, ok := sn.pins[domain]
	if !ok || !p.Active(now) {
		return store.Pin{}, false
	}
	return p, true
}

// loadPins reads the store's pins, by A-label domain; pins of names that
// are not one, or of policies the gateway does not know, are left out
// (counted in skipped): `pin set` writes neither.
func loadPins(ctx context.Context, st *store.Store) (map[string]store.Pin, int, error) {
	ps, err := st.Pins(ctx)
	if err != nil {
		return nil, 0, err
	}
	skipped := 0
	out := make(map[string]store.Pin, len(ps))
	for _, p := range ps {
		if d, err := NormalizeDomain(p.Domain); err != nil || d != p.Domain || !ValidPinPolicy(p.Policy) {
			skipped++
			continue
		}
		out[p.Domain] = p
	}
	return out, skipped, nil
}

// VerdictPolicy is the policy word a verdict calls for under the mapping
// of Config.VerifiedPolicy and Config.EncryptedPolicy (verified and
// encrypted): dane-only, secure (mta-sts, whose match list is the
// result's), verify or may, encrypt or may, "none" for the other verdicts.
// `tlsready diff` compares runs with it.
func VerdictPolicy(v result.Verdict, verified, encrypted string) string {
	switch v {
	case result.DANE:
		return PolicyDANEOnly
	case result.MTASTS:
		return PolicySecure
	case result.Verified:
		return verified
	case result.Encrypted:
		return encrypted
	}
	return "none"
}
