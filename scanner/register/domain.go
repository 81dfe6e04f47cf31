package register

import (
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/tlsready/tlsready/scanner/dnsname"
)

// maxLocalOctets is the longest local part (RFC 5321 §4.5.3.1.1).
const maxLocalOctets = 64

// domainReason maps a dnsname.Normalize error to a bad-line reason.
func domainReason(err error) string {
	switch {
	case errors.Is(err, dnsname.ErrEmpty):
		return ReasonEmptyDomain
	case errors.Is(err, dnsname.ErrAddressLiteral):
		return ReasonAddressLiteral
	case errors.Is(err, dnsname.ErrInvalidUTF8):
		return ReasonInvalidUTF8
	default:
		return ReasonInvalidDomain
	}
}

// ParseAddress splits an address at its last '@' (a quoted local part may
// contain '@', a domain never does), checks that the local part is not empty
// and at most 64 octets (RFC 5321 §4.5.3.1.1), and normalises the domain with
// dnsname.Normalize. On failure local, ascii and unicode are empty and reason is
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
	ascii, unicode, err := dnsname.Normalize(dom)
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

// domainResult is a cached dnsname.Normalize outcome.
type domainResult struct {
	ascii, unicode string
	reason         string
}

// domainCache memoises dnsname.Normalize per Reader. It holds at most max
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
	a, u, err := dnsname.Normalize(key)
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
