package dnsname

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalizeDomain(t *testing.T) {
	t.Parallel()
	label63 := strings.Repeat("a", 63)
	// 4 labels of 63 plus 3 dots = 255; trim to exactly 253 and 254.
	long := label63 + "." + label63 + "." + label63 + "." + label63
	d253, d254 := long[:253], long[:254]
	for _, d := range []string{d253, d254} {
		if strings.HasSuffix(d, ".") || strings.HasSuffix(d, "-") {
			t.Fatalf("test domain %q ends badly", d)
		}
	}
	tests := []struct {
		in, ascii, unicode string
		err                error
	}{
		{in: "example.org", ascii: "example.org"},
		{in: "  Example.ORG  ", ascii: "example.org"},
		{in: "example.org.", ascii: "example.org"},
		{in: "EXAMPLE.org.", ascii: "example.org"},
		{in: "mail-1.example.org", ascii: "mail-1.example.org"},
		{in: "localhost", ascii: "localhost"},
		{in: "3com.com", ascii: "3com.com"},
		{in: "BÜCHER.example", ascii: "xn--bcher-kva.example", unicode: "bücher.example"},
		{in: "bücher.example.", ascii: "xn--bcher-kva.example", unicode: "bücher.example"},
		{in: "xn--bcher-kva.example", ascii: "xn--bcher-kva.example", unicode: "bücher.example"},
		{in: "XN--BCHER-KVA.example", ascii: "xn--bcher-kva.example", unicode: "bücher.example"},
		{in: "例え.テスト", ascii: "xn--r8jz45g.xn--zckzah", unicode: "例え.テスト"},
		{in: "例え。テスト。", ascii: "xn--r8jz45g.xn--zckzah", unicode: "例え.テスト"}, // ideographic full stops
		{in: "ＥＸＡＭＰＬＥ．ｏｒｇ", ascii: "example.org"},                           // full-width
		{in: "straße.de", ascii: "xn--strae-oqa.de", unicode: "straße.de"},  // non-transitional
		{in: label63 + ".example", ascii: label63 + ".example"},
		{in: d253, ascii: d253},

		{in: "", err: ErrEmpty},
		{in: "   ", err: ErrEmpty},
		{in: ".", err: ErrEmpty},
		{in: "。", err: ErrEmpty},
		{in: d254, err: ErrTooLong},
		{in: strings.Repeat("\u00ad", 600) + "example.org", err: ErrTooLong}, // ignorable, but over 1024 octets
		{in: strings.Repeat("\u00ad", 400) + "example.org", ascii: "example.org"},
		{in: "a" + label63 + ".example", err: ErrInvalid},
		{in: "-example.org", err: ErrInvalid},
		{in: "example-.org", err: ErrInvalid},
		{in: "ex--ample.org", err: ErrInvalid}, // "--" in positions 3-4
		{in: "xn--abc.org", err: ErrInvalid},   // bad punycode
		{in: "xn--example.org", err: ErrInvalid},
		{in: "example..org", err: ErrInvalid},
		{in: ".example.org", err: ErrInvalid},
		{in: "example.org..", err: ErrInvalid},
		{in: "exa mple.org", err: ErrInvalid},
		{in: "under_score.org", err: ErrInvalid},
		{in: "example.123", err: ErrInvalid},
		{in: "[192.0.2.1]", err: ErrAddressLiteral},
		{in: "[IPv6:2001:db8::1]", err: ErrAddressLiteral},
		{in: "192.0.2.1", err: ErrAddressLiteral},
		{in: "192.0.2.1.", err: ErrAddressLiteral},
		{in: "exa\xffmple.org", err: ErrInvalidUTF8},
	}
	for _, tt := range tests {
		ascii, unicode, err := Normalize(tt.in)
		if tt.err != nil {
			if !errors.Is(err, tt.err) {
				t.Errorf("Normalize(%q) error = %v, want %v", tt.in, err, tt.err)
			}
			if ascii != "" || unicode != "" {
				t.Errorf("Normalize(%q) = %q, %q with an error", tt.in, ascii, unicode)
			}
			if err != nil && strings.TrimSpace(tt.in) != "" && strings.Contains(err.Error(), strings.TrimSpace(tt.in)) {
				t.Errorf("Normalize(%q) error %q contains the input", tt.in, err)
			}
			continue
		}
		if err != nil || ascii != tt.ascii || unicode != tt.unicode {
			t.Errorf("Normalize(%q) = %q, %q, %v; want %q, %q", tt.in, ascii, unicode, err, tt.ascii, tt.unicode)
		}
	}
}

// The fast path must agree with the IDNA path on everything it accepts.
func TestFastPathAgreesWithIDNA(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"example.org", "EXAMPLE.ORG", "a.b.c.d", "x", "0a.org", "a-b-c.org", "mx1.mail.example.co.uk",
		strings.Repeat("a", 63) + ".org",
	} {
		fa, ok := fastASCII(s)
		if !ok {
			t.Errorf("fastASCII(%q) not accepted", s)
			continue
		}
		sa, su, err := slowNormalize(s)
		if err != nil || sa != fa || su != "" {
			t.Errorf("fastASCII(%q) = %q, slowNormalize = %q, %q, %v", s, fa, sa, su, err)
		}
	}
	for _, s := range []string{"", "a..b", "-a.org", "a-.org", "ab--c.org", "xn--bcher-kva.example", "a.123", "a_b.org", "ü.org", strings.Repeat("a", 64) + ".org"} {
		if _, ok := fastASCII(s); ok {
			t.Errorf("fastASCII(%q) accepted", s)
		}
	}
}

func TestUnicode(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want string }{
		{"xn--y8jl1ny40p.test", "さくら市.test"},
		{"xn--r8jz45g.example", "例え.example"},
		{"mail.xn--r8jz45g.example", "mail.例え.example"},
		{"plain.example", ""},
		{"xn--.example", ""},        // not a valid A-label
		{"xn--a.example", ""},       // does not decode to a valid label
		{"XN--Y8JL1NY40P.test", ""}, // not in normal form
		{"", ""},
	} {
		if got := Unicode(c.in); got != c.want {
			t.Errorf("Unicode(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
