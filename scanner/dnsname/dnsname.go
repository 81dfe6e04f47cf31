// Package dnsname is the one normaliser of domain names: the register, the
// scanner, the store, the gateway and the commands key a domain by the form
// Normalize gives (lower-case A-labels, no trailing dot) and show it by its
// U-label form.
//
// It owns IDNA (golang.org/x/net/idna, the UTS #46 Lookup profile) and the
// length rules of DNS names. It must not know where a name comes from (a
// register line, an HTTP path, a socketmap query): callers wrap its errors,
// which never contain the name.
package dnsname

import (
	"errors"
	"net/netip"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Errors of Normalize. They never contain the domain itself.
var (
	ErrEmpty          = errors.New("dnsname: empty domain")
	ErrTooLong        = errors.New("dnsname: domain longer than 253 octets")
	ErrInvalid        = errors.New("dnsname: invalid domain")
	ErrAddressLiteral = errors.New("dnsname: address literal instead of a domain")
	ErrInvalidUTF8    = errors.New("dnsname: invalid utf-8")
)

// RFC 5321 §4.5.3.1.2 and RFC 1035 §2.3.4 limits.
const (
	maxDomainOctets = 253 // without the root label's trailing dot
	maxLabelOctets  = 63

	// maxInputOctets bounds the text given to IDNA. A valid domain's
	// U-label form is under 1000 octets: 253 octets of A-labels, each
	// code point at least one octet of punycode and at most four of UTF-8.
	maxInputOctets = 1024
)

// Normalize returns the A-label (punycode, lower case, no trailing dot)
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
// ErrInvalid (RFC 3696 §2). Errors are the package's sentinels and never
// contain the input.
func Normalize(s string) (ascii, unicode string, err error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "." {
		return "", "", ErrEmpty
	}
	if !utf8.ValidString(s) {
		return "", "", ErrInvalidUTF8
	}
	if len(s) > maxInputOctets {
		return "", "", ErrTooLong
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
		return "", "", ErrInvalid // idna's error names the label: not passed on
	}
	a = strings.TrimSuffix(a, ".") // also a mapped trailing U+3002 and friends
	if a == "" {
		return "", "", ErrEmpty
	}
	if len(a) > maxDomainOctets {
		return "", "", ErrTooLong
	}
	if _, err := netip.ParseAddr(a); err == nil {
		return "", "", ErrAddressLiteral
	}
	last := a
	for {
		label, rest, more := strings.Cut(last, ".")
		if label == "" || len(label) > maxLabelOctets {
			return "", "", ErrInvalid
		}
		if !more {
			break
		}
		last = rest
	}
	if strings.Trim(last, "0123456789") == "" {
		return "", "", ErrInvalid
	}
	for i := 0; i < len(a); i++ {
		if a[i] >= utf8.RuneSelf || ('A' <= a[i] && a[i] <= 'Z') {
			return "", "", ErrInvalid // not expected from ToASCII; be sure
		}
	}
	u, err := idna.Lookup.ToUnicode(a)
	if err != nil {
		return "", "", ErrInvalid
	}
	if u == a {
		u = ""
	}
	return a, u, nil
}

// HostName reports whether an A-label name (as Normalize returns it) is a
// host name: 1..253 characters of dot-separated labels of 1..63 lower-case
// ASCII letters, digits and hyphens, no label starting or ending with a
// hyphen (RFC 952, RFC 1123 §2.1). Normalize accepts a few names that are
// not (an underscore label, for one); an MX target or a gateway key must be.
func HostName(s string) bool {
	if s == "" || len(s) > maxDomainOctets {
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
		if n == 0 || n > maxLabelOctets || s[start] == '-' || s[i-1] == '-' {
			return false
		}
		start = i + 1
	}
	return true
}

// Unicode returns the U-label form of a name in normal form (as Normalize
// returns it), for display ("さくら市.test" for "xn--y8jl1ny40p.test"), or ""
// when it has none: no "xn--" label (then without the IDNA round trip: one
// substring search), labels that do not decode, or a name not in normal
// form.
func Unicode(a string) string {
	if !strings.Contains(a, "xn--") {
		return ""
	}
	a2, u, err := Normalize(a)
	if err != nil || a2 != a {
		return ""
	}
	return u
}

// Key is the stored and compared form of a name that is already in A-label
// form (normalised by Normalize, possibly in another program, or read from
// DNS, a certificate or an MTA-STS policy): lower case, no trailing dot. It
// is cheap, and it does no IDNA: a name a person typed must go through
// Normalize.
func Key(d string) string {
	return strings.ToLower(strings.TrimSuffix(d, "."))
}
