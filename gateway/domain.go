package gateway

import (
	"errors"
	"fmt"
	"strings"

	"github.com/tlsready/tlsready/scanner/dnsname"
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
// register (and so the store) keys it — dnsname.Normalize: lower case,
// no trailing dot, IDNA (UTS #46 lookup profile) A-labels — and checks that
// the result is a host name (labels of 1..63 letters, digits and hyphens).
// Address literals, IP addresses and anything else fail with an error that
// wraps ErrInvalidDomain and never contains the input.
func NormalizeDomain(s string) (string, error) {
	a, _, err := dnsname.Normalize(s)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidDomain, err)
	}
	if !dnsname.HostName(a) {
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
