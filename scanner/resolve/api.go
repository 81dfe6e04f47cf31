// Package resolve looks up the DNS records a mail TLS verdict needs (MX, A,
// AAAA, TXT, TLSA) with miekg/dns against a configured recursive resolver,
// with EDNS0 and the DO bit so the AD flag of a validating resolver can be
// read (RFC 4035 §3.2.3, RFC 6840 §5.7).
//
// It owns the DNS wire: queries, retries over UDP and TCP, the rate of
// queries and their bounds. It must not know what a verdict is: it returns
// each lookup's records and Status as data, and the scanner judges them.
package resolve

import (
	"context"
	"net/netip"
)

// Status is the outcome of one lookup, as data (zdns style).
type Status string

const (
	StatusOK       Status = "ok"
	StatusNXDomain Status = "nxdomain"
	StatusNoData   Status = "nodata"   // the name exists, no records of the type
	StatusServfail Status = "servfail" // includes DNSSEC validation failure reported by the resolver
	StatusRefused  Status = "refused"
	StatusTimeout  Status = "timeout" // no answer after all attempts
	StatusError    Status = "error"   // anything else (FORMERR, bad reply, CNAME loop, ...)
)

// Temporary reports whether the status means "could not find out" (retry next run).
func (s Status) Temporary() bool {
	return s == StatusServfail || s == StatusRefused || s == StatusTimeout || s == StatusError
}

// Answer is the common part of every lookup result.
type Answer struct {
	Status Status
	// Secure is true when the answer carried the AD bit AND the resolver is
	// trusted to set it (Config.TrustAD).
	Secure bool
	// Canonical is the final name after following CNAMEs (lower case, no
	// trailing dot); equal to the queried name when there was no CNAME.
	Canonical string
	// CNAMEs lists the alias chain followed, in order (empty if none).
	CNAMEs []string
	// Err describes a non-OK status for humans (never contains addresses).
	Err error
}

// MX is one MX record.
type MX struct {
	Host       string // lower case, no trailing dot; "" for the null MX "."
	Preference uint16
}

// MXAnswer is the result of an MX lookup. MX is sorted by preference, then
// host name, deduplicated.
type MXAnswer struct {
	Answer
	MX []MX
	// Null is true for a null MX (RFC 7505): a single MX with target ".".
	Null bool
}

// AddrAnswer is the result of the A (and, if asked, AAAA) lookups of a host.
// Status is OK when at least one address was found.
type AddrAnswer struct {
	Answer
	Addrs []netip.Addr // A first, then AAAA, each sorted, deduplicated
	// IPv6Only holds the AAAA addresses of a name that has no A records,
	// looked up although IPv6 was not asked for, so that an IPv6-only mail
	// host is told apart from a dangling name. Status is then StatusOK with
	// Addrs empty.
	IPv6Only []netip.Addr
}

// TXTAnswer holds TXT records, each record's character-strings concatenated.
type TXTAnswer struct {
	Answer
	TXT []string
}

// TLSARecord is one TLSA record (RFC 6698).
type TLSARecord struct {
	Usage, Selector, MatchingType uint8
	Data                          []byte
}

// TLSAAnswer is the result of a TLSA lookup.
type TLSAAnswer struct {
	Answer
	Records []TLSARecord
}

// Resolver is what the scanner needs from DNS. Implementations are safe for
// concurrent use, honour ctx, and never return a Go error: failures are
// reported in Answer.Status and Answer.Err.
type Resolver interface {
	MX(ctx context.Context, domain string) MXAnswer
	// Addrs looks up A, and AAAA too when ipv6 is true. When ipv6 is false
	// and the name has no A records (NODATA), it looks up AAAA all the same
	// and reports those addresses in IPv6Only, never in Addrs.
	Addrs(ctx context.Context, host string, ipv6 bool) AddrAnswer
	TXT(ctx context.Context, name string) TXTAnswer
	TLSA(ctx context.Context, name string) TLSAAnswer
}
