// Package tlsrpt parses the SMTP TLS Reporting DNS record (RFC 8460 §3), the
// TXT record at "_smtp._tls.<domain>" that says where sending MTAs deliver
// aggregate TLS failure reports.
//
// The package does no DNS itself: the caller looks up the TXT records and
// passes them to SelectRecord. Error messages never contain the reporting
// addresses. It has no package-level mutable state.
package tlsrpt

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/tlsready/tlsready/scanner/internal/txtfield"
)

// Errors returned by this package.
var (
	ErrNoRecord        = errors.New("tlsrpt: no tlsrpt dns txt record")
	ErrMultipleRecords = errors.New("tlsrpt: multiple tlsrpt dns txt records")
	ErrRecordSyntax    = errors.New("tlsrpt: malformed tlsrpt dns txt record")
)

// Pair is an extension key/value pair (an unknown field), kept as written.
// RFC 8460 §3: unknown fields SHALL be ignored.
type Pair struct {
	Key   string
	Value string
}

// Record is a parsed TLSRPT record, e.g.
// "v=TLSRPTv1; rua=mailto:tlsrpt@example.com,https://reports.example.com/v1".
type Record struct {
	Version string // always "TLSRPTv1"
	// RUA lists the aggregate report URIs in order, as written (still
	// percent-encoded). Every entry is an absolute URI; at least one is a
	// usable mailto: or https: URI (RFC 8460 §3: the two schemes defined).
	// They are role addresses of the domain, not personal data of citizens,
	// but still never appear in this package's errors.
	RUA []string
	// Extensions holds unknown fields in order of appearance.
	Extensions []Pair
}

const recordVersion = "v=TLSRPTv1"

// SelectRecord picks the TLSRPT record from the TXT records found at
// "_smtp._tls.<domain>" (each entry one record, its character-strings
// already concatenated) and parses it.
//
// RFC 8460 §3: records that do not begin with "v=TLSRPTv1" are discarded; if
// the number of remaining records is not one, the domain does not implement
// TLSRPT: ErrNoRecord for none, ErrMultipleRecords for more. The remaining
// record must parse (else ErrRecordSyntax). "Begins with" means those exact
// bytes followed by ";", a space, a tab or the end.
func SelectRecord(txts []string) (*Record, error) {
	var found []string
	for _, txt := range txts {
		rest, ok := strings.CutPrefix(txt, recordVersion)
		if ok && (rest == "" || rest[0] == ';' || rest[0] == ' ' || rest[0] == '\t') {
			found = append(found, txt)
		}
	}
	switch len(found) {
	case 0:
		return nil, ErrNoRecord
	case 1:
		return ParseRecord(found[0])
	default:
		return nil, fmt.Errorf("%w: %d records start with %s", ErrMultipleRecords, len(found), recordVersion)
	}
}

// ParseRecord parses one TLSRPT TXT record.
//
// RFC 8460 §3 ABNF:
//
//	tlsrpt-record    = tlsrpt-version 1*(field-delim tlsrpt-field) [field-delim]
//	field-delim      = *WSP ";" *WSP
//	tlsrpt-field     = tlsrpt-rua / tlsrpt-extension
//	tlsrpt-version   = %s"v=TLSRPTv1"
//	tlsrpt-rua       = %s"rua=" tlsrpt-uri *(*WSP "," *WSP tlsrpt-uri)
//	tlsrpt-uri       = URI   ; RFC 3986; "," and "!" MUST be percent-encoded
//	tlsrpt-extension = tlsrpt-ext-name "=" tlsrpt-ext-value
//	tlsrpt-ext-name  = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
//	tlsrpt-ext-value = 1*(%x21-3A / %x3C / %x3E-7E)
//
// Choices where the RFC is silent: the version must come first and names are
// case-sensitive; rua is required; several rua fields are allowed and their
// URIs concatenated (the ABNF does not forbid it); a URI ends at ",", ";" or
// whitespace and must be an absolute URI of RFC 3986 characters; a record
// whose URIs include no usable mailto: (with an address) or https: (with a
// host) URI is a syntax error, since a sender could not report to it.
func ParseRecord(txt string) (*Record, error) {
	rest, ok := strings.CutPrefix(txt, recordVersion)
	if !ok {
		return nil, fmt.Errorf("%w: does not start with %s", ErrRecordSyntax, recordVersion)
	}
	r := &Record{Version: "TLSRPTv1"}
	p := &txtfield.Lexer{S: rest, Base: len(recordVersion)}
	haveRUA := false
	err := p.Fields(func(key string) error {
		if key == "rua" {
			uris, err := uris(p)
			if err != nil {
				return fmt.Errorf("rua: %w", err)
			}
			r.RUA = append(r.RUA, uris...)
			haveRUA = true
			return nil
		}
		v, err := p.Value()
		if err != nil {
			return err
		}
		r.Extensions = append(r.Extensions, Pair{Key: key, Value: v})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRecordSyntax, err)
	}
	if !haveRUA {
		return nil, fmt.Errorf("%w: missing rua", ErrRecordSyntax)
	}
	usable := false
	for _, u := range r.RUA {
		if usableURI(u) {
			usable = true
			break
		}
	}
	if !usable {
		return nil, fmt.Errorf("%w: no mailto: or https: reporting uri", ErrRecordSyntax)
	}
	return r, nil
}

// usableURI reports whether u is a mailto: URI with an address or an https:
// URI with a host (RFC 8460 §3: the two schemes reports are sent to).
func usableURI(s string) bool {
	u, err := url.Parse(s)
	if err != nil {
		return false
	}
	switch strings.ToLower(u.Scheme) {
	case "mailto":
		addr := u.Opaque
		if addr == "" {
			addr = u.Path
		}
		local, domain, ok := strings.Cut(addr, "@")
		return ok && local != "" && domain != ""
	case "https":
		return u.Host != ""
	}
	return false
}

// uris consumes tlsrpt-uri *(*WSP "," *WSP tlsrpt-uri).
func uris(p *txtfield.Lexer) ([]string, error) {
	var l []string
	for {
		start, i := p.Off(), p.O
		for p.O < len(p.S) && isURIChar(p.S[p.O]) {
			p.O++
		}
		s := p.S[i:p.O]
		if s == "" {
			return nil, fmt.Errorf("empty or invalid uri at offset %d", start)
		}
		// RFC 3986 §3: URI = scheme ":" hier-part ...; an absolute URI.
		u, err := url.Parse(s)
		if err != nil || u.Scheme == "" {
			return nil, fmt.Errorf("invalid uri at offset %d", start)
		}
		l = append(l, s)
		if !p.Sep(',') {
			return l, nil
		}
	}
}

// isURIChar: RFC 3986 unreserved, reserved and "%", minus "," and "!"
// (which RFC 8460 §3 requires to be encoded) and ";" (the field delimiter).
func isURIChar(c byte) bool {
	if txtfield.IsAlnum(c) {
		return true
	}
	return strings.IndexByte("-._~:/?#[]@$&'()*+=%", c) >= 0
}
