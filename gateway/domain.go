package gateway

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Sentinel errors of the gateway's input parsers.
var (
	ErrInvalidDomain  = errors.New("gateway: invalid domain name")
	ErrInvalidAddress = errors.New("gateway: invalid recipient address") // never carries the address
)

// maxDomainLen is the longest domain name in presentation form without the
// trailing dot (RFC 1035 §2.3.4: 255 octets on the wire).
const maxDomainLen = 253

// NormalizeDomain returns the A-label form of a domain name as the store keys
// it: lower case, no trailing dot, IDNA (UTS #46 lookup profile) converted to
// A-labels, every label 1..63 letters, digits and hyphens, at most 253
// characters in all. The error wraps ErrInvalidDomain.
func NormalizeDomain(s string) (string, error) {
	if d, ok := fastDomain(s); ok {
		return d, nil
	}
	if len(s) > 4*maxDomainLen { // bound the IDNA work on garbage
		return "", fmt.Errorf("%w: too long", ErrInvalidDomain)
	}
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("%w: not UTF-8", ErrInvalidDomain)
	}
	s = strings.TrimSuffix(s, ".")
	a, err := idna.Lookup.ToASCII(s)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidDomain, err)
	}
	a = strings.ToLower(a)
	if !ldhName(a) {
		return "", fmt.Errorf("%w: not a host name", ErrInvalidDomain)
	}
	if a != s && strings.Contains(a, "xn--") {
		// The A-labels IDNA produced must themselves be valid (a stable key).
		if again, err := idna.Lookup.ToASCII(a); err != nil || again != a {
			return "", fmt.Errorf("%w: unstable IDNA conversion", ErrInvalidDomain)
		}
	}
	return a, nil
}

// DomainOfAddress returns the normalised domain of a recipient address: the
// part after the last '@'. Its errors never contain the address.
func DomainOfAddress(addr string) (string, error) {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 || i == len(addr)-1 {
		return "", ErrInvalidAddress
	}
	d, err := NormalizeDomain(addr[i+1:])
	if err != nil {
		return "", ErrInvalidAddress
	}
	return d, nil
}

// fastDomain accepts, without allocating, the common case that IDNA would
// leave unchanged: a lower-case LDH name with no A-label ("xn--") that IDNA
// would have to verify. A single trailing dot is stripped.
func fastDomain(s string) (string, bool) {
	s = strings.TrimSuffix(s, ".")
	if !ldhName(s) {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			return "", false
		}
		// A label whose 3rd and 4th characters are "--" is either an
		// A-label (IDNA must decode it) or invalid (IDNA CheckHyphens).
		if (i == 0 || s[i-1] == '.') && i+3 < len(s) && s[i+2] == '-' && s[i+3] == '-' {
			return "", false
		}
	}
	return s, true
}

// ldhName reports whether s is 1..253 characters of dot-separated labels of
// 1..63 ASCII letters, digits and hyphens, no label starting or ending with a
// hyphen.
func ldhName(s string) bool {
	if s == "" || len(s) > maxDomainLen {
		return false
	}
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != '.' {
			c := s[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || 'A' <= c && c <= 'Z') {
				return false
			}
			continue
		}
		n := i - start
		if n == 0 || n > 63 || s[start] == '-' || s[i-1] == '-' {
			return false
		}
		start = i + 1
	}
	return true
}

// unicodeName returns the U-label form of an A-label name when it differs.
func unicodeName(a string) string {
	if !strings.Contains(a, "xn--") {
		return ""
	}
	u, err := idna.Lookup.ToUnicode(a)
	if err != nil || u == a {
		return ""
	}
	return u
}
