// Package txtfield reads the fields of the "v=...;" DNS TXT records of
// MTA-STS (RFC 8461 §3.1) and SMTP TLS Reporting (RFC 8460 §3), which share
// their field delimiter (*WSP ";" *WSP), extension names and extension
// values. It owns only that shared syntax: what each field means, and the
// version prefix, belong to the packages mtasts and tlsrpt.
package txtfield

import "fmt"

// Lexer walks S, the record after its version prefix. Offsets in errors
// count from the record's start: Base is the prefix's length.
type Lexer struct {
	S    string
	O    int // the next byte to read
	Base int
}

// Empty reports whether all of S was read.
func (l *Lexer) Empty() bool { return l.O >= len(l.S) }

// Off is the record offset of the next byte, for error messages.
func (l *Lexer) Off() int { return l.Base + l.O }

// Peek reports whether the next byte is c.
func (l *Lexer) Peek(c byte) bool { return l.O < len(l.S) && l.S[l.O] == c }

// WSP consumes *WSP (space and tab).
func (l *Lexer) WSP() {
	for l.O < len(l.S) && (l.S[l.O] == ' ' || l.S[l.O] == '\t') {
		l.O++
	}
}

// Sep consumes *WSP sep *WSP and reports whether sep was there; if it was
// not, nothing is consumed.
func (l *Lexer) Sep(sep byte) bool {
	o := l.O
	l.WSP()
	if !l.Peek(sep) {
		l.O = o
		return false
	}
	l.O++
	l.WSP()
	return true
}

// Delim consumes a field delimiter, *WSP ";" *WSP.
func (l *Lexer) Delim() bool { return l.Sep(';') }

// Name consumes a field name, (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" /
// "-" / "."), and the "=" after it.
func (l *Lexer) Name() (string, error) {
	start := l.O
	for l.O < len(l.S) && IsNameChar(l.S[l.O], l.O-start) {
		l.O++
	}
	if l.O == start {
		return "", fmt.Errorf("expected field name at offset %d", l.Off())
	}
	if !l.Peek('=') {
		return "", fmt.Errorf("expected \"=\" after field name at offset %d", l.Off())
	}
	name := l.S[start:l.O]
	l.O++
	return name, nil
}

// Value consumes an extension value, 1*(%x21-3A / %x3C / %x3E-7E).
func (l *Lexer) Value() (string, error) {
	start := l.O
	for l.O < len(l.S) && IsValueChar(l.S[l.O]) {
		l.O++
	}
	if l.O == start {
		return "", fmt.Errorf("empty or invalid value at offset %d", l.Off())
	}
	return l.S[start:l.O], nil
}

// Fields reads the fields after the version, *(field-delim field)
// [field-delim]: for each it reads the name and "=" and calls value, which
// reads the value (with Value, or a syntax of its own) and judges the field.
// The first error stops it.
func (l *Lexer) Fields(value func(name string) error) error {
	for !l.Empty() {
		if !l.Delim() {
			return fmt.Errorf("expected \";\" at offset %d", l.Off())
		}
		if l.Empty() {
			return nil // a trailing delimiter
		}
		name, err := l.Name()
		if err != nil {
			return err
		}
		if err := value(name); err != nil {
			return err
		}
	}
	return nil
}

// IsNameChar reports whether c may stand at index i of a field name:
// (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / "."), the extension name
// of RFC 8461 §3.1 and §3.2 and RFC 8460 §3.
func IsNameChar(c byte, i int) bool {
	if i >= 32 {
		return false
	}
	if IsAlnum(c) {
		return true
	}
	return i > 0 && (c == '_' || c == '-' || c == '.')
}

// IsValueChar: %x21-3A / %x3C / %x3E-7E, printable ASCII except "=", ";"
// and space.
func IsValueChar(c byte) bool {
	return c >= 0x21 && c <= 0x7e && c != ';' && c != '='
}

// IsAlnum: ALPHA / DIGIT.
func IsAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
