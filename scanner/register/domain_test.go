package register

import (
	"strings"
	"testing"

	"github.com/tlsready/tlsready/scanner/dnsname"
)

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

func TestDomainCache(t *testing.T) {
	t.Parallel()
	c := newDomainCache()
	c.max = 3
	for round := range 3 {
		for _, d := range []string{"A.example", "b.example", "BÜCHER.example", "bad..example", "c.example"} {
			got := cachedDomain(c, []byte(d))
			a, u, err := dnsname.Normalize(d)
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
