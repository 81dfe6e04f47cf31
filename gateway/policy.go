package gateway

import (
	"strings"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/store"
)

// Postfix TLS security levels the socketmap answers (postconf(5),
// smtp_tls_policy_maps).
const (
	PolicyDANEOnly = "dane-only"
	PolicySecure   = "secure"
	PolicyVerify   = "verify"
	PolicyEncrypt  = "encrypt"
	PolicyMay      = "may"
)

// stsMatch converts the mx patterns of an enforced MTA-STS policy into a
// Postfix "match=" list (colon-separated). RFC 8461 §4.1: "*.example.net"
// matches exactly one extra label; Postfix's nearest form is ".example.net"
// (any subdomain), the mapping postfix-mta-sts-resolver also uses. A policy
// that is not in enforce mode, has no patterns, or has any pattern that is not
// a host name yields "" (no policy), so that nothing we did not validate can
// reach Postfix's policy syntax.
func stsMatch(p *result.STSPolicy) string {
	if p == nil {
		return ""
	}
	return stsMatchOf(p.Mode, p.MX)
}

// stsMatchOf is stsMatch of a policy's mode and mx patterns.
func stsMatchOf(mode string, patterns []string) string {
	if mode != "enforce" || len(patterns) == 0 {
		return ""
	}
	out := make([]string, 0, len(patterns))
	n := 0
	for _, pat := range patterns {
		wild := strings.HasPrefix(pat, "*.")
		name := pat
		if wild {
			name = pat[2:]
		}
		d, err := NormalizeDomain(name)
		if err != nil {
			return ""
		}
		if wild {
			d = "." + d
		}
		if !containsString(out, d) {
			out = append(out, d)
			n += len(d) + 1
		}
	}
	if n > 8192 { // far beyond any real policy; do not truncate a match list
		return ""
	}
	return strings.Join(out, ":")
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// policy is the Postfix TLS policy for a record, "" for none (the socketmap
// answers NOTFOUND and Postfix applies its default level).
//
//   - dane      -> dane-only (RFC 7672; never replaced by MTA-STS, RFC 8461 §2)
//   - mta-sts   -> secure match=<patterns> servername=hostname
//   - verified  -> Config.VerifiedPolicy (verify or may)
//   - encrypted -> Config.EncryptedPolicy (encrypt or may)
//   - any other verdict, unknown and stale records -> none
//
// A policy stricter (PolicyLevel) than the previous observation's waits
// for confirmation (see pins.go): the previous observation's applies.
// Pins are not a record's: see pinnedPolicy.
func (s *Server) policy(rec record, stale bool) string {
	p, _ := s.policyPending(rec, stale)
	return p
}

// policyPending is policy, and the stricter policy the latest observation
// calls for while it waits for confirmation ("" when none waits).
func (s *Server) policyPending(rec record, stale bool) (policy, pending string) {
	if stale {
		return "", ""
	}
	cur := s.classPolicy(classOf(rec.Verdict, rec.STSMatch), rec.STSMatch)
	if rec.Prev == 0 {
		return cur, ""
	}
	if prev := s.classPolicy(rec.Prev-1, rec.STSMatch); PolicyLevel(cur) > PolicyLevel(prev) {
		return prev, cur
	}
	return cur, ""
}

// pinnedPolicy is the policy answered for domain d with record rec (found:
// the cache has one) at now: an active pin's, else the record's. pin is
// the pin applied, nil for none.
func (s *Server) pinnedPolicy(d string, rec record, found bool, now time.Time) (policy string, pin *store.Pin) {
	if p, ok := s.pin(d, now); ok {
		return p.Policy, &p
	}
	if !found {
		return "", nil
	}
	return s.policy(rec, s.stale(rec.ScannedAt, now)), nil
}
