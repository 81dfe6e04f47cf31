package report

import (
	"strings"

	"github.com/tlsready/tlsready/scanner/register"
)

// domainUnicode returns the U-label form of a stored domain name for
// display ("さくら市.test" for "xn--y8jl1ny40p.test"), or "" when the name
// has no IDN label or its labels do not decode.
//
// The store keys domains by the A-label form that register.NormalizeDomain
// gives (what the scanner looks up in DNS); the Unicode form is derived from
// it here, with the same function, whatever the stored result says (the
// scanner does not fill result.Result.Unicode). A name without an "xn--"
// label is returned as "" without the IDNA round trip, so the cost on the
// exports' path is one substring search per domain.
func domainUnicode(ascii string) string {
	if !strings.Contains(ascii, "xn--") {
		return ""
	}
	a, u, err := register.NormalizeDomain(ascii)
	if err != nil || a != ascii {
		return ""
	}
	return u
}
