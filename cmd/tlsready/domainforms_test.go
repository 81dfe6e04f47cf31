package main

import (
	"strings"
	"testing"

	"github.com/tlsready/tlsready/gateway"
	"github.com/tlsready/tlsready/scanner/dnsname"
	"github.com/tlsready/tlsready/scanner/register"
)

// TestDomainFormsAgree: every place a domain enters the program (a register
// line, lookup and check arguments, a gateway query) keys it as
// dnsname.Normalize does, and refuses what it refuses.
func TestDomainFormsAgree(t *testing.T) {
	t.Parallel()
	label63 := strings.Repeat("a", 63)
	for _, in := range []string{
		"example.org", "Example.ORG", "example.org.", " example.org ", "EXAMPLE.org.",
		"BÜCHER.example", "xn--bcher-kva.example", "XN--BCHER-KVA.EXAMPLE.", "さくら市.test", "例え。テスト。", "ＥＸＡＭＰＬＥ．ｏｒｇ",
		label63 + ".example", label63 + "a.example", strings.Repeat(label63+".", 4) + "org",
		"[192.0.2.1]", "192.0.2.1", "[IPv6:2001:db8::1]", "2001:db8::1",
		"", ".", "a..b", "-a.example", "a.123", "xn--.example", "exa mple.org", "\xff.org",
	} {
		want, _, werr := dnsname.Normalize(in)

		_, reg, _, reason := register.ParseAddress("citizen@" + in)
		if (werr == nil) != (reason == "") || reg != want {
			t.Errorf("%q: register %q (%s), dnsname %q (%v)", in, reg, reason, want, werr)
		}
		arg, err := parseLookupArg(in)
		if (werr == nil) != (err == nil) || arg.ascii != want {
			t.Errorf("%q: lookup/check %q (%v), dnsname %q (%v)", in, arg.ascii, err, want, werr)
		}
		gw, err := gateway.NormalizeDomain(in)
		switch {
		case werr == nil && dnsname.HostName(want) && (err != nil || gw != want):
			t.Errorf("%q: gateway %q (%v), dnsname %q", in, gw, err, want)
		case (werr != nil || !dnsname.HostName(want)) && err == nil:
			t.Errorf("%q: gateway accepts %q, dnsname %q (%v)", in, gw, want, werr)
		}
		if werr == nil && dnsname.Key(want) != want {
			t.Errorf("%q: store key %q of %q", in, dnsname.Key(want), want)
		}
	}
}
