package register

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

		{in: "", err: ErrEmptyDomain},
		{in: "   ", err: ErrEmptyDomain},
		{in: ".", err: ErrEmptyDomain},
		{in: "。", err: ErrEmptyDomain},
		{in: d254, err: ErrDomainTooLong},
		{in: strings.Repeat("\u00ad", 600) + "example.org", err: ErrDomainTooLong}, // ignorable, but over 1024 octets
		{in: strings.Repeat("\u00ad", 400) + "example.org", ascii: "example.org"},
		{in: "a" + label63 + ".example", err: ErrInvalidDomain},
		{in: "-example.org", err: ErrInvalidDomain},
		{in: "example-.org", err: ErrInvalidDomain},
		{in: "ex--ample.org", err: ErrInvalidDomain}, // "--" in positions 3-4
		{in: "xn--abc.org", err: ErrInvalidDomain},   // bad punycode
		{in: "xn--example.org", err: ErrInvalidDomain},
		{in: "example..org", err: ErrInvalidDomain},
		{in: ".example.org", err: ErrInvalidDomain},
		{in: "example.org..", err: ErrInvalidDomain},
		{in: "exa mple.org", err: ErrInvalidDomain},
		{in: "under_score.org", err: ErrInvalidDomain},
		{in: "example.123", err: ErrInvalidDomain},
		{in: "[192.0.2.1]", err: ErrAddressLiteral},
		{in: "[IPv6:2001:db8::1]", err: ErrAddressLiteral},
		{in: "192.0.2.1", err: ErrAddressLiteral},
		{in: "192.0.2.1.", err: ErrAddressLiteral},
		{in: "exa\xffmple.org", err: ErrInvalidUTF8},
	}
	for _, tt := range tests {
		ascii, unicode, err := NormalizeDomain(tt.in)
		if tt.err != nil {
			if !errors.Is(err, tt.err) {
				t.Errorf("NormalizeDomain(%q) error = %v, want %v", tt.in, err, tt.err)
			}
			if ascii != "" || unicode != "" {
				t.Errorf("NormalizeDomain(%q) = %q, %q with an error", tt.in, ascii, unicode)
			}
			if err != nil && strings.TrimSpace(tt.in) != "" && strings.Contains(err.Error(), strings.TrimSpace(tt.in)) {
				t.Errorf("NormalizeDomain(%q) error %q contains the input", tt.in, err)
			}
			continue
		}
		if err != nil || ascii != tt.ascii || unicode != tt.unicode {
			t.Errorf("NormalizeDomain(%q) = %q, %q, %v; want %q, %q", tt.in, ascii, unicode, err, tt.ascii, tt.unicode)
		}
	}
}

func TestParseAddress(t *testing.T) {
	t.Parallel()
	local64 := strings.Repeat("l", 64)
	tests := []struct {
		in, local, ascii, unicode, reason string
	}{
		{in: "User@Example.ORG", local: "User", ascii: "example.org"},
		{in: " user@example.org. ", local: "user", ascii: "example.org"},
		{in: "user@BÜCHER.example", local: "user", ascii: "xn--bcher-kva.example", unicode: "bücher.example"},
		{in: "ユーザー@例え.テスト", local: "ユーザー", ascii: "xn--r8jz45g.xn--zckzah", unicode: "例え.テスト"},
		{in: `"a@b"@example.org`, local: `"a@b"`, ascii: "example.org"},
		{in: local64 + "@example.org", local: local64, ascii: "example.org"},

		{in: "user.example.org", reason: ReasonNoAt},
		{in: "", reason: ReasonNoAt},
		{in: "@example.org", reason: ReasonEmptyLocal},
		{in: "user@", reason: ReasonEmptyDomain},
		{in: "user@.", reason: ReasonEmptyDomain},
		{in: "l" + local64 + "@example.org", reason: ReasonLocalTooLong},
		{in: "user@-bad.org", reason: ReasonInvalidDomain},
		{in: "user@exa mple.org", reason: ReasonInvalidDomain},
		{in: "user@[192.0.2.1]", reason: ReasonAddressLiteral},
		{in: "user@[IPv6:2001:db8::1]", reason: ReasonAddressLiteral},
		{in: "us\xc3er@example.org", reason: ReasonInvalidUTF8},
	}
	for _, tt := range tests {
		local, ascii, unicode, reason := ParseAddress(tt.in)
		if local != tt.local || ascii != tt.ascii || unicode != tt.unicode || reason != tt.reason {
			t.Errorf("ParseAddress(%q) = %q, %q, %q, %q; want %q, %q, %q, %q",
				tt.in, local, ascii, unicode, reason, tt.local, tt.ascii, tt.unicode, tt.reason)
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

func TestDomainCache(t *testing.T) {
	t.Parallel()
	c := newDomainCache()
	c.max = 3
	for round := range 3 {
		for _, d := range []string{"A.example", "b.example", "BÜCHER.example", "bad..example", "c.example"} {
			got := cachedDomain(c, []byte(d))
			a, u, err := NormalizeDomain(d)
			want := domainResult{ascii: a, unicode: u}
			if err != nil {
				want = domainResult{reason: domainReason(err)}
			}
			if got != want {
				t.Errorf("round %d: cachedDomain(%q) = %+v, want %+v", round, d, got, want)
			}
			if len(c.m) > c.max {
				t.Fatalf("cache holds %d entries, max %d", len(c.m), c.max)
			}
		}
	}
	long := strings.Repeat("a.", 200) + "org"
	cachedDomain(c, long)
	if _, ok := c.m[long]; ok {
		t.Error("a key over cacheMaxKeyLen was cached")
	}
}
