package dnsname

import (
	"errors"
	"strings"
	"testing"
)

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{
		"example.org", "Example.ORG.", "BÜCHER.example", "例え.テスト", "例え。テスト。", "xn--bcher-kva.example",
		"xn--abc.org", "ab--c.org", "-a.org", "a..b", "[192.0.2.1]", "192.0.2.1", "a.123", "\xff", ".", "",
		"ＥＸＡＭＰＬＥ．ｏｒｇ", "straße.de", "a\u200db.org", "مثال.إختبار", strings.Repeat("a", 64) + ".org",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ascii, unicode, err := Normalize(s)
		if err != nil {
			if ascii != "" || unicode != "" {
				t.Fatalf("result %q, %q with error %v", ascii, unicode, err)
			}
			if !errors.Is(err, ErrEmpty) && !errors.Is(err, ErrTooLong) && !errors.Is(err, ErrInvalid) &&
				!errors.Is(err, ErrAddressLiteral) && !errors.Is(err, ErrInvalidUTF8) {
				t.Fatalf("error %v is not one of the sentinels", err)
			}
			return
		}
		checkDomain(t, ascii)
		if unicode == ascii {
			t.Fatalf("unicode %q repeats ascii", unicode)
		}
		// Idempotent: the A-label form normalises to itself, with the same U-label form.
		a2, u2, err := Normalize(ascii)
		if err != nil || a2 != ascii || u2 != unicode {
			t.Fatalf("Normalize(%q) = %q, %q, %v; want %q, %q", ascii, a2, u2, err, ascii, unicode)
		}
		if unicode != "" {
			if a3, _, err := Normalize(unicode); err != nil || a3 != ascii {
				t.Fatalf("Normalize(%q) = %q, %v; want %q", unicode, a3, err, ascii)
			}
		}
		// The fast path agrees with the IDNA path.
		if fa, ok := fastASCII(strings.TrimSuffix(strings.TrimSpace(s), ".")); ok {
			sa, su, err := slowNormalize(strings.TrimSpace(s))
			if err != nil || sa != fa || su != "" {
				t.Fatalf("fast path %q, IDNA path %q, %q, %v", fa, sa, su, err)
			}
		}
	})
}

// checkDomain checks the form of a normalised A-label domain.
func checkDomain(t *testing.T, d string) {
	t.Helper()
	if d == "" || len(d) > 253 || strings.HasSuffix(d, ".") {
		t.Fatalf("bad domain %q", d)
	}
	for _, l := range strings.Split(d, ".") {
		if l == "" || len(l) > 63 {
			t.Fatalf("domain %q has a bad label", d)
		}
	}
	for i := 0; i < len(d); i++ {
		if c := d[i]; c >= 0x80 || ('A' <= c && c <= 'Z') {
			t.Fatalf("domain %q is not lower-case ASCII", d)
		}
	}
}
