package register

import (
	"errors"
	"net/netip"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Errors of NormalizeDomain. They never contain the domain itself.
var (
	ErrEmptyDomain    = errors.New("register: empty domain")
	ErrDomainTooLong  = errors.New("register: domain longer than 253 octets")
	ErrInvalidDomain  = errors.New("register: invalid domain")
	ErrAddressLiteral = errors.New("register: address literal instead of a domain")
	ErrInvalidUTF8    = errors.New("register: invalid utf-8")
)

// RFC 5321 §4.5.3.1.1 and §4.5.3.1.2 limits, and RFC 1035 §2.3.4 for labels.
const (
	maxLocalOctets  = 64
	maxDomainOctets = 253 // without the root label's trailing dot
	maxLabelOctets  = 63

	// maxInputOctets bounds the text given to IDNA. A valid domain's
	// U-label form is under 1000 octets: 253 octets of A-labels, each
	// code point at least one octet of punycode and at most four of UTF-8.
	maxInputOctets = 1024
)

// NormalizeDomain returns the A-label (punycode, lower case, no trailing dot)
// form of a domain, used for DNS, and its U-label form for display; unicode is
// "" when it equals ascii.
//
// It trims surrounding white space and strips one trailing dot, then maps and
// validates with the IDNA Lookup profile (UTS #46 mapping and lower-casing,
// STD3 rules, hyphen and joiner checks, the bidi rule; RFC 5891 §5). It then
// requires 1–63 octets per A-label and at most 253 octets in all (and at
// most 1024 octets of input, before IDNA processing). Address
// literals ("[192.0.2.1]", "[IPv6:…]") and bare IP addresses fail with
// ErrAddressLiteral; a top-level label of digits only fails with
// ErrInvalidDomain (RFC 3696 §2). Errors are the package's sentinels and never
// contain the input.
func NormalizeDomain(s string) (ascii, unicode string, err error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "." {
		return "", "", ErrEmptyDomain
	}
	if !utf8.ValidString(s) {
		return "", "", ErrInvalidUTF8
	}
	if len(s) > maxInputOctets {
		return "", "", ErrDomainTooLong
	}
	if s[0] == '[' {
		return "", "", ErrAddressLiteral // RFC 5321 §4.1.3
	}
	if a, ok := fastASCII(strings.TrimSuffix(s, ".")); ok {
		return a, "", nil
	}
	return slowNormalize(s)
}

// fastASCII accepts what needs no IDNA processing: letters, digits and
// hyphens in labels of 1–63 octets that neither start nor end with a hyphen
// nor carry "--" in positions 3–4 (A-labels and reserved labels), at most 253
// octets, and a top-level label that is not all digits. It returns the lower
// case form. Everything it does not accept goes to slowNormalize, which gives
// the same answer for what fastASCII accepts (FuzzNormalizeDomain checks).
func fastASCII(s string) (string, bool) {
	if len(s) == 0 || len(s) > maxDomainOctets {
		return "", false
	}
	upper := false
	start := 0     // start of the current label
	digits := true // current label is all digits so far
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			n := i - start
			if n == 0 || n > maxLabelOctets || s[start] == '-' || s[i-1] == '-' ||
				(n >= 4 && s[start+2] == '-' && s[start+3] == '-') {
				return "", false
			}
			if i == len(s) && digits {
				return "", false
			}
			start, digits = i+1, true
			continue
		}
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', c == '-':
			digits = false
		case '0' <= c && c <= '9':
		case 'A' <= c && c <= 'Z':
			upper, digits = true, false
		default:
			return "", false
		}
	}
	if upper {
		s = strings.ToLower(s)
	}
	return s, true
}

// slowNormalize runs s (trimmed, valid UTF-8, maybe with its trailing dot)
// through the IDNA Lookup profile and checks the lengths of the result.
func slowNormalize(s string) (ascii, unicode string, err error) {
	a, err := idna.Lookup.ToASCII(s)
	if err != nil {
		return "", "", ErrInvalidDomain // idna's error names the label: not passed on
	}
	a = strings.TrimSuffix(a, ".") // also a mapped trailing U+3002 and friends
	if a == "" {
		return "", "", ErrEmptyDomain
	}
	if len(a) > maxDomainOctets {
		return "", "", ErrDomainTooLong
	}
	if _, err := netip.ParseAddr(a); err == nil {
		return "", "", ErrAddressLiteral
	}
	last := a
	for {
		label, rest, more := strings.Cut(last, ".")
		if label == "" || len(label) > maxLabelOctets {
			return "", "", ErrInvalidDomain
		}
		if !more {
			break
		}
		last = rest
	}
	if strings.Trim(last, "0123456789") == "" {
		return "", "", ErrInvalidDomain
	}
	for i := 0; i < len(a); i++ {
		if a[i] >= utf8.RuneSelf || ('A' <= a[i] && a[i] <= 'Z') {
			return "", "", ErrInvalidDomain // not expected from ToASCII; be sure
		}
	}
	u, err := idna.Lookup.ToUnicode(a)
	if err != nil {
		return "", "", ErrInvalidDomain
	}
	if u == a {
		u = ""
	}
	return a, u, nil
}

// domainReason maps a NormalizeDomain error to a bad-line reason.
func domainReason(err error) string {
	switch {
	case errors.Is(err, ErrEmptyDomain):
		return ReasonEmptyDomain
	case errors.Is(err, ErrAddressLiteral):
		return ReasonAddressLiteral
	case errors.Is(err, ErrInvalidUTF8):
		return ReasonInvalidUTF8
	default:
		return ReasonInvalidDomain
	}
}

// ParseAddress splits an address at its last '@' (a quoted local part may
// contain '@', a domain never does), checks that the local part is not empty
// and at most 64 octets (RFC 5321 §4.5.3.1.1), and normalises the domain with
// NormalizeDomain. On failure local, ascii and unicode are empty and reason is
// one of the Reason constants; on success reason is "". The local part is
// returned unchanged (local parts are case-sensitive, RFC 5321 §2.4).
func ParseAddress(s string) (local, ascii, unicode string, reason string) {
	if !utf8.ValidString(s) {
		return "", "", "", ReasonInvalidUTF8
	}
	local, dom, reason := splitAddress(strings.TrimSpace(s))
	if reason != "" {
		return "", "", "", reason
	}
	ascii, unicode, err := NormalizeDomain(dom)
	if err != nil {
		return "", "", "", domainReason(err)
	}
	return local, ascii, unicode, ""
}

// splitAddress splits at the last '@' and checks the local part and that a
// domain is present.
func splitAddress[T string | []byte](s T) (local, domain T, reason string) {
	at := -1
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '@' {
			at = i
			break
		}
	}
	switch {
	case at < 0:
		return local, domain, ReasonNoAt
	case at == 0:
		return local, domain, ReasonEmptyLocal
	case at > maxLocalOctets:
		return local, domain, ReasonLocalTooLong
	case at == len(s)-1:
		return local, domain, ReasonEmptyDomain
	}
	return s[:at], s[at+1:], ""
}

// domainResult is a cached NormalizeDomain outcome.
type domainResult struct {
	ascii, unicode string
	reason         string
}

// domainCache memoises NormalizeDomain per Reader. It holds at most max
// entries and is emptied when full: cheap, and the few very common domains
// are back after one miss each.
type domainCache struct {
	m   map[string]domainResult
	max int
}

const (
	cacheEntries   = 1 << 15
	cacheMaxKeyLen = 256 // longer inputs are rare (and mostly invalid): not cached
)

func newDomainCache() *domainCache {
	return &domainCache{m: make(map[string]domainResult, 1024), max: cacheEntries}
}

// cachedDomain normalises dom through the cache. A hit allocates nothing, and
// every entry of the same domain shares one ascii string.
func cachedDomain[T string | []byte](c *domainCache, dom T) domainResult {
	if v, ok := c.m[string(dom)]; ok {
		return v
	}
	key := string(dom)
	var v domainResult
	a, u, err := NormalizeDomain(key)
	if err != nil {
		v.reason = domainReason(err)
	} else {
		v.ascii, v.unicode = a, u
	}
	if len(key) <= cacheMaxKeyLen {
		if len(c.m) >= c.max {
			clear(c.m)
		}
		c.m[key] = v
	}
	return v
}
