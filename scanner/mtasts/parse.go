package mtasts

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tlsready/tlsready/scanner/dnsname"
	"github.com/tlsready/tlsready/scanner/internal/txtfield"
)

const recordVersion = "v=STSv1"

// SelectRecord picks the MTA-STS record from the TXT records found at
// "_mta-sts.<domain>" (each entry one record, its character-strings already
// concatenated) and parses it.
//
// RFC 8461 §3.1: records that do not begin with "v=STSv1", and then those
// that do not match the record grammar, are discarded; if the number of
// remaining records is not exactly one, the domain has no usable policy:
// ErrNoRecord when no record begins with "v=STSv1", the first record's
// ErrRecordSyntax when none of them parses, ErrMultipleRecords for more
// than one valid record.
//
// A record "begins with v=STSv1" when it starts with exactly those bytes
// (case-sensitive) followed by ";", a space, a tab or the end; the RFC text
// says `v=STSv1;` but its ABNF allows whitespace before the ";" (erratum
// 6285), and "v=STSv10" is another version, not ours.
func SelectRecord(txts []string) (*Record, error) {
	var (
		valid    []*Record
		firstErr error
		seen     bool
	)
	for _, txt := range txts {
		if !isSTSRecord(txt) {
			continue
		}
		seen = true
		// RFC 8461 §3.1: records that do not match the record grammar are
		// discarded before counting ("v=STSv1; id=1;" beside a bare
		// "v=STSv1" is one record, not two).
		r, err := ParseRecord(txt)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		valid = append(valid, r)
	}
	switch {
	case !seen:
		return nil, ErrNoRecord
	case len(valid) == 1:
		return valid[0], nil
	case len(valid) == 0:
		return nil, firstErr
	default:
		return nil, fmt.Errorf("%w: %d valid records start with %s", ErrMultipleRecords, len(valid), recordVersion)
	}
}

func isSTSRecord(txt string) bool {
	rest, ok := strings.CutPrefix(txt, recordVersion)
	return ok && (rest == "" || rest[0] == ';' || rest[0] == ' ' || rest[0] == '\t')
}

// ParseRecord parses one "_mta-sts" TXT record.
//
// RFC 8461 §3.1 ABNF:
//
//	sts-text-record = sts-version 1*(sts-field-delim sts-field) [sts-field-delim]
//	sts-field       = sts-id / sts-extension
//	sts-field-delim = *WSP ";" *WSP
//	sts-version     = %s"v=STSv1"
//	sts-id          = %s"id=" 1*32(ALPHA / DIGIT)
//	sts-extension   = sts-ext-name "=" sts-ext-value
//	sts-ext-name    = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
//	sts-ext-value   = 1*(%x21-3A / %x3C / %x3E-7E)
//
// The version must come first; names are case-sensitive ("ID=" is an
// extension, not the id). No whitespace is allowed before "v=" or at the end
// of the record unless it follows a ";". The id is required. Unknown fields
// are kept in Extensions. RFC 8461 §3.2 (last paragraph, which covers "TXT
// records and policy files"): of a repeated non-repeatable field only the
// first is used, so a second id is ignored.
func ParseRecord(txt string) (*Record, error) {
	rest, ok := strings.CutPrefix(txt, recordVersion)
	if !ok {
		return nil, fmt.Errorf("%w: does not start with %s", ErrRecordSyntax, recordVersion)
	}
	r := &Record{Version: "STSv1"}
	p := &txtfield.Lexer{S: rest, Base: len(recordVersion)}
	haveID := false
	err := p.Fields(func(key string) error {
		// The extension value's character set includes every id character.
		value, err := p.Value()
		if err != nil {
			return err
		}
		switch {
		case key != "id":
			r.Extensions = append(r.Extensions, Pair{Key: key, Value: value})
		case haveID:
			// RFC 8461 §3.2: only the first instance counts.
		case !validID(value):
			return errors.New("id must be 1 to 32 letters and digits")
		default:
			r.ID = value
			haveID = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRecordSyntax, err)
	}
	if !haveID {
		return nil, fmt.Errorf("%w: missing id", ErrRecordSyntax)
	}
	return r, nil
}

func isAlnum(c byte) bool { return txtfield.IsAlnum(c) }

// validID: 1*32(ALPHA / DIGIT), RFC 8461 §3.1.
func validID(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isAlnum(s[i]) {
			return false
		}
	}
	return true
}

// ParsePolicy parses an MTA-STS policy file (the body of
// https://mta-sts.<domain>/.well-known/mta-sts.txt).
//
// RFC 8461 §3.2 ABNF, in short:
//
//	sts-policy-record     = sts-policy-field *WSP *(sts-policy-term sts-policy-field *WSP) [sts-policy-term]
//	sts-policy-term       = LF / CRLF
//	sts-policy-field-delim = ":" *WSP
//	version: %s"STSv1"                      required once
//	mode:    %s"testing" / %s"enforce" / %s"none"   required once
//	max_age: 1*10(DIGIT)                    required once, at most 31557600
//	mx:      ["*."] Domain                  at least once unless mode is none
//	ext-name: ext-value                     unknown fields, ignored
//
// What this parser does with the choices the RFC leaves:
//   - Lines end in LF or CRLF, both accepted and mixable (the ABNF allows
//     both although the prose says "CRLF-separated", erratum 6253).
//   - Fields may come in any order; version need not be first.
//   - Keys are case-sensitive ("Mode:" is an unknown field). No whitespace
//     before the ":"; any spaces and tabs after it and at the end of the line
//     are skipped.
//   - Empty lines, including more than one line ending at the end of the
//     file, are syntax errors, as in the ABNF.
//   - RFC 8461 §3.2: "If any non-repeated field -- i.e., all fields excluding
//     the mx field -- is duplicated, all entries except for the first SHALL
//     be ignored." So a second version, mode or max_age line is skipped
//     without looking at its value; only the first is validated.
//   - max_age outside 0..31557600 is a syntax error ("MUST be an integer
//     between 0 and 31557600").
//   - mx values must be A-label domain names (LDH labels of at most 63
//     octets, no trailing dot), optionally prefixed by "*."; they are stored
//     in lower case.
//   - Unknown fields are kept in Extensions; their values must be UTF-8
//     without control characters.
//
// Input larger than MaxPolicySize is refused with ErrPolicyTooLarge. Other
// errors wrap ErrPolicySyntax.
func ParsePolicy(b []byte) (*Policy, error) {
	if len(b) > MaxPolicySize {
		return nil, fmt.Errorf("%w: %d bytes", ErrPolicyTooLarge, len(b))
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty policy", ErrPolicySyntax)
	}
	// Blank lines at the end are accepted: the ABNF allows one final line
	// break, but policy files edited by hand or served by web servers often
	// end with more, and senders (postfix-mta-sts-resolver, mox) accept them.
	// A blank line between fields is still an error.
	s := strings.TrimRight(string(b), " \t\r\n")
	if s == "" {
		return nil, fmt.Errorf("%w: empty policy", ErrPolicySyntax)
	}
	p := &Policy{}
	seen := map[string]bool{}
	for lineno := 1; s != ""; lineno++ {
		line := s
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			line, s = s[:i], s[i+1:]
		} else {
			s = ""
		}
		line = strings.TrimSuffix(line, "\r")
		key, value, err := splitPolicyLine(line)
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %w", ErrPolicySyntax, lineno, err)
		}
		if key != "mx" && seen[key] {
			continue // RFC 8461 §3.2: duplicates of non-repeated fields are ignored.
		}
		seen[key] = true
		switch key {
		case "version":
			if value != "STSv1" {
				return nil, fmt.Errorf("%w: line %d: version must be STSv1", ErrPolicySyntax, lineno)
			}
			p.Version = value
		case "mode":
			m := Mode(value)
			if !m.Valid() {
				return nil, fmt.Errorf("%w: line %d: mode must be enforce, testing or none", ErrPolicySyntax, lineno)
			}
			p.Mode = m
		case "max_age":
			n, err := parseMaxAge(value)
			if err != nil {
				return nil, fmt.Errorf("%w: line %d: %w", ErrPolicySyntax, lineno, err)
			}
			p.MaxAge = n
		case "mx":
			mx, err := parseMXPattern(value)
			if err != nil {
				return nil, fmt.Errorf("%w: line %d: %w", ErrPolicySyntax, lineno, err)
			}
			p.MX = append(p.MX, mx)
		default:
			if err := checkExtValue(value); err != nil {
				return nil, fmt.Errorf("%w: line %d: %w", ErrPolicySyntax, lineno, err)
			}
			p.Extensions = append(p.Extensions, Pair{Key: key, Value: value})
		}
	}
	for _, k := range []string{"version", "mode", "max_age"} {
		if !seen[k] {
			return nil, fmt.Errorf("%w: missing %s", ErrPolicySyntax, k)
		}
	}
	// RFC 8461 §3.2: mx is required at least once, except when mode is "none".
	if len(p.MX) == 0 && p.Mode != ModeNone {
		return nil, fmt.Errorf("%w: missing mx", ErrPolicySyntax)
	}
	return p, nil
}

// splitPolicyLine splits "key:" *WSP value *WSP.
func splitPolicyLine(line string) (key, value string, err error) {
	i := 0
	for i < len(line) && txtfield.IsNameChar(line[i], i) {
		i++
	}
	if i == 0 {
		if line == "" {
			return "", "", fmt.Errorf("empty line")
		}
		return "", "", fmt.Errorf("expected field name")
	}
	if i >= len(line) || line[i] != ':' {
		return "", "", fmt.Errorf("expected \":\" after field name")
	}
	key = line[:i]
	value = strings.TrimRight(strings.TrimLeft(line[i+1:], " \t"), " \t")
	if value == "" {
		return "", "", fmt.Errorf("empty value for %s", key)
	}
	return key, value, nil
}

// parseMaxAge: 1*10(DIGIT), 0..31557600 (RFC 8461 §3.2).
func parseMaxAge(v string) (int64, error) {
	if len(v) > 10 {
		return 0, fmt.Errorf("max_age longer than 10 digits")
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, fmt.Errorf("max_age must be decimal digits")
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("max_age: %w", err)
	}
	if n > MaxMaxAge {
		return 0, fmt.Errorf("max_age above %d", MaxMaxAge)
	}
	return n, nil
}

// parseMXPattern: ["*."] Domain (RFC 8461 §3.2, Domain from RFC 5321
// §4.1.2: sub-domain *("." sub-domain), sub-domain = Let-dig [Ldh-str]).
func parseMXPattern(v string) (string, error) {
	d, wild := strings.CutPrefix(v, "*.")
	if !validDomain(d) {
		return "", fmt.Errorf("mx is not a domain name or *.domain pattern")
	}
	d = dnsname.Key(d)
	if wild {
		return "*." + d, nil
	}
	return d, nil
}

// validDomain reports whether d is an LDH domain name (A-labels) without a
// trailing dot: labels of 1 to 63 letters, digits and hyphens that neither
// start nor end with a hyphen, at most 253 octets in all.
func validDomain(d string) bool {
	if d == "" || len(d) > 253 {
		return false
	}
	for label := range strings.SplitSeq(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; !isAlnum(c) && c != '-' {
				return false
			}
		}
	}
	return true
}

// checkExtValue: sts-policy-ext-value = sts-policy-vchar [*(%x20 / sts-policy-vchar) sts-policy-vchar],
// sts-policy-vchar = %x21-7E / UTF8-2 / UTF8-3 / UTF8-4 (RFC 8461 §3.2).
// Leading and trailing whitespace has already been trimmed.
func checkExtValue(v string) error {
	if !utf8.ValidString(v) {
		return fmt.Errorf("extension value is not UTF-8")
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("control character in extension value")
		}
	}
	return nil
}
