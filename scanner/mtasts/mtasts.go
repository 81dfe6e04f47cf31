// Package mtasts implements the parts of SMTP MTA Strict Transport Security
// (MTA-STS, RFC 8461) a recipient-side scanner needs: the "_mta-sts" TXT
// record (§3.1), the policy file format (§3.2), fetching the policy over
// HTTPS (§3.3) and matching MX host names against the policy (§4.1).
//
// The package does no DNS itself: the caller looks up the TXT records at
// "_mta-sts.<domain>" and passes them to SelectRecord, and resolves
// "mta-sts.<domain>" through the FetchConfig.Dialer it hands to Fetch.
// It has no package-level mutable state and is safe for concurrent use.
package mtasts

import (
	"errors"
	"strings"

	"github.com/tlsready/tlsready/scanner/dnsname"
)

// Errors returned by this package. Parse errors wrap ErrRecordSyntax or
// ErrPolicySyntax; fetch errors are *FetchError values that also match
// ErrPolicyFetch (and ErrNoPolicy for HTTP 404) with errors.Is.
var (
	ErrNoRecord        = errors.New("mtasts: no mta-sts dns txt record")
	ErrMultipleRecords = errors.New("mtasts: multiple mta-sts dns txt records")
	ErrRecordSyntax    = errors.New("mtasts: malformed mta-sts dns txt record")
	ErrNoPolicy        = errors.New("mtasts: no policy served")
	ErrPolicySyntax    = errors.New("mtasts: malformed policy")
	ErrPolicyTooLarge  = errors.New("mtasts: policy larger than 64 KiB")
	ErrPolicyFetch     = errors.New("mtasts: policy fetch failed")
)

// MaxPolicySize is the largest policy body accepted, in bytes. RFC 8461 §3.3:
// senders MAY impose a limit, and 64 KiB is the figure it suggests.
const MaxPolicySize = 64 << 10

// MaxMaxAge is the largest valid max_age in seconds (RFC 8461 §3.2: about
// one year, 31557600).
const MaxMaxAge = 31557600

// Pair is an extension key/value pair (a field this package does not know),
// kept as written. RFC 8461 §3.1 and §3.2: unknown fields are ignored, not
// errors.
type Pair struct {
	Key   string
	Value string
}

// Record is a parsed "_mta-sts" TXT record, e.g. "v=STSv1; id=20160831085700Z;".
type Record struct {
	Version string // always "STSv1"
	ID      string // 1 to 32 letters and digits, identifies the policy instance
	// Extensions holds unknown fields in order of appearance.
	Extensions []Pair
}

// Mode is a policy mode (RFC 8461 §5).
type Mode string

// The three modes of RFC 8461 §5.
const (
	ModeEnforce Mode = "enforce"
	ModeTesting Mode = "testing"
	ModeNone    Mode = "none"
)

// Valid reports whether m is one of the three modes.
func (m Mode) Valid() bool {
	return m == ModeEnforce || m == ModeTesting || m == ModeNone
}

// Policy is a parsed MTA-STS policy file (RFC 8461 §3.2).
type Policy struct {
	Version string // always "STSv1"
	Mode    Mode
	// MX holds the mx patterns as written, in lower case, in order, e.g.
	// "mail.example.com" or "*.example.net". Empty only with mode "none".
	MX []string
	// MaxAge is the policy lifetime in seconds, 0 to MaxMaxAge.
	MaxAge int64
	// Extensions holds unknown fields in order of appearance.
	Extensions []Pair
}

// MatchMX reports whether the MX host name host is allowed by one of the
// policy's mx patterns.
//
// RFC 8461 §4.1: a pattern "*.example.net" matches exactly one additional
// left-most label: "a.example.net" matches, "a.b.example.net" and
// "example.net" do not. Other patterns match the host name exactly.
// Comparison is case-insensitive and a trailing dot on host is ignored.
// Host names are compared in A-label form; the caller converts U-labels.
func (p *Policy) MatchMX(host string) bool {
	host = dnsname.Key(host)
	if host == "" {
		return false
	}
	for _, pat := range p.MX {
		pat = dnsname.Key(pat)
		if suffix, ok := strings.CutPrefix(pat, "*"); ok {
			// suffix is ".example.net".
			if !strings.HasPrefix(suffix, ".") || len(suffix) < 2 {
				continue
			}
			label, ok := strings.CutSuffix(host, suffix)
			if ok && label != "" && !strings.Contains(label, ".") {
				return true
			}
			continue
		}
		if pat == host {
			return true
		}
	}
	return false
}
