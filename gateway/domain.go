package gateway

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/net/idna"

	"github.com/tlsready/tlsready/scanner/register"
)

// Sentinel errors of the gateway's input parsers.
var (
	ErrInvalidDomain  = errors.New("gateway: invalid domain name")
	ErrInvalidAddress = errors.New("gateway: invalid recipient address") // never carries the address
)

// maxDomainLen is the longest domain name in presentation form without the
// trailing dot (RFC 1035 §2.3.4: 255 octets on the wire).
const maxDomainLen = 253

// NormalizeDomain returns the A-label form of a domain name exactly as the
// register (and so the store) keys it — register.NormalizeDomain: lower case,
// no trailing dot, IDNA (UTS #46 lookup profile) A-labels — and checks that
// the result is a host name (labels of 1..63 letters, digits and hyphens).
// Address literals, IP addresses and anything else fail with an error that
// wraps ErrInvalidDomain and never contains the input.
func NormalizeDomain(s string) (string, error) {
	a, _, err := register.NormalizeDomain(s)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidDomain, err)
	}
	if !ldhName(a) {
		return "", fmt.Errorf("%w: not a host name", ErrInvalidDomain)
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

// ldhName reports whether s is 1..253 characters of dot-separated labels of
// 1..63 lower-case ASCII letters, digits and hyphens, no label starting or
// ending with a hyphen.
func ldhName(s string) bool {
	if s == "" || len(s) > maxDomainLen {
		return false
	}
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != '.' {
			c := s[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
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
