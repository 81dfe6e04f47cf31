package gateway

import (
	"errors"
	"strings"
	"testing"

	"github.com/tlsready/tlsready/scanner/dnsname"
)

func TestNormalizeDomain(t *testing.T) {
	t.Parallel()
	good := map[string]string{
		"example.com":                        "example.com",
		"Example.COM.":                       "example.com",
		"bücher.example":                     "xn--bcher-kva.example",
		"BÜCHER.example.":                    "xn--bcher-kva.example",
		"XN--BCHER-KVA.example":              "xn--bcher-kva.example",
		"a-b.c0.example":                     "a-b.c0.example",
		strings.Repeat("a", 63) + ".example": strings.Repeat("a", 63) + ".example",
		"localhost":                          "localhost",
	}
	for in, want := range good {
		got, err := NormalizeDomain(in)
		if err != nil || got != want {
			t.Errorf("NormalizeDomain(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	bad := []string{
		"", ".", "..", "a..b", "example.com..", "-a.example", "a-.example", "a_b.example", "[192.0.2.1]",
		"mx.example:25", "a b.example", ".example.com", "ab--c.example", "xn--.example",
		strings.Repeat("a", 64) + ".example", strings.Repeat("abcdefghi.", 26) + "example",
		"exa\x00mple.com", "user@example.com", "192.0.2.1", "localhost.123",
	}
	for _, in := range bad {
		if got, err := NormalizeDomain(in); !errors.Is(err, ErrInvalidDomain) {
			t.Errorf("NormalizeDomain(%q) = %q, %v; want ErrInvalidDomain", in, got, err)
		}
	}
}

func TestDomainOfAddress(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"citizen@Example.ORG":   "example.org",
		"\"a@b\"@mail.example":  "mail.example",
		"jürgen@bücher.example": "xn--bcher-kva.example",
		"x@sub.example.":        "sub.example",
	} {
		got, err := DomainOfAddress(in)
		if err != nil || got != want {
			t.Errorf("DomainOfAddress(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"no-at-sign", "secretlocal@", "secretlocal@[192.0.2.1]", "secretlocal@bad_domain.example", ""} {
		_, err := DomainOfAddress(in)
		if !errors.Is(err, ErrInvalidAddress) {
			t.Errorf("DomainOfAddress(%q): err %v, want ErrInvalidAddress", in, err)
		}
		if err != nil && strings.Contains(err.Error(), "secretlocal") {
			t.Errorf("error %q contains the address", err)
		}
	}
}

// FuzzNormalizeDomain: whatever NormalizeDomain accepts is a lower-case
// host name that normalises to itself (a stable cache key).
func FuzzNormalizeDomain(f *testing.F) {
	for _, s := range []string{"example.com", "Example.COM.", "bücher.example", "xn--bcher-kva.example", "ab--c.example", "a-.b", "1.2.3.4", "xn--.x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := NormalizeDomain(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidDomain) {
				t.Fatalf("error of unknown kind: %v", err)
			}
			return
		}
		if !dnsname.HostName(d) || strings.ToLower(d) != d {
			t.Fatalf("NormalizeDomain(%q) = %q: not a lower-case LDH name", s, d)
		}
		if d2, err := NormalizeDomain(d); err != nil || d2 != d {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", s, d, d2, err)
		}
	})
}
