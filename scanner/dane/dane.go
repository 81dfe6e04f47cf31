// Package dane verifies a server certificate chain against TLSA records for
// SMTP, as DANE for SMTP specifies it: RFC 6698 (the TLSA record), RFC 7671
// (operational updates: DANE-EE and DANE-TA semantics) and RFC 7672 (SMTP
// security via opportunistic DANE TLS).
//
// The package does no DNS and no TLS itself: the caller looks up the TLSA
// RRset (and decides whether it is DNSSEC-secure), completes the handshake
// with verification turned off, and passes the presented chain to Verify.
// It has no package-level state and is safe for concurrent use.
package dane

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/tlsready/tlsready/scanner/dnsname"
)

// TLSA certificate usages (RFC 6698 §2.1.1, names from RFC 7218).
const (
	UsagePKIXTA uint8 = 0 // unusable for SMTP (RFC 7672 §3.1.3)
	UsagePKIXEE uint8 = 1 // unusable for SMTP (RFC 7672 §3.1.3)
	UsageDANETA uint8 = 2
	UsageDANEEE uint8 = 3
)

// TLSA selectors (RFC 6698 §2.1.2).
const (
	SelectorCert uint8 = 0 // the full certificate, DER
	SelectorSPKI uint8 = 1 // the SubjectPublicKeyInfo, DER
)

// TLSA matching types (RFC 6698 §2.1.3).
const (
	MatchFull   uint8 = 0 // the selected bytes themselves
	MatchSHA256 uint8 = 1
	MatchSHA512 uint8 = 2
)

// Record is one TLSA record (RFC 6698 §2.1). The scanner converts from
// resolve.TLSARecord, which has the same fields.
type Record struct {
	Usage, Selector, MatchingType uint8
	Data                          []byte
}

// String returns the record in presentation form, "3 1 1 <hex>".
func (r Record) String() string {
	const hexdigits = "0123456789abcdef"
	var b strings.Builder
	b.WriteString(strconv.Itoa(int(r.Usage)) + " " + strconv.Itoa(int(r.Selector)) + " " + strconv.Itoa(int(r.MatchingType)) + " ")
	for _, c := range r.Data {
		b.WriteByte(hexdigits[c>>4])
		b.WriteByte(hexdigits[c&0xf])
	}
	return b.String()
}

// Usable reports whether r can be used to authenticate an SMTP server.
//
// RFC 7672 §3.1.3: usages PKIX-TA(0) and PKIX-EE(1) are unusable for SMTP;
// only DANE-TA(2) and DANE-EE(3) are. RFC 7671 §4 / RFC 7672 §2.2: records
// with unknown usage, selector or matching type are unusable. In addition, a
// SHA2-256 or SHA2-512 digest of the wrong length and empty data can never
// match, so such records are unusable too (as OpenSSL's DANE code rejects
// them with DANE_R_BAD_DIGEST_LENGTH / bad data).
func Usable(r Record) bool {
	if r.Usage != UsageDANETA && r.Usage != UsageDANEEE {
		return false
	}
	if r.Selector != SelectorCert && r.Selector != SelectorSPKI {
		return false
	}
	switch r.MatchingType {
	case MatchFull:
		return len(r.Data) > 0
	case MatchSHA256:
		return len(r.Data) == sha256.Size
	case MatchSHA512:
		return len(r.Data) == sha512.Size
	}
	return false
}

// UsableRecords returns the usable records of rs, in order.
func UsableRecords(rs []Record) []Record {
	var l []Record
	for _, r := range rs {
		if Usable(r) {
			l = append(l, r)
		}
	}
	return l
}

// Reasons in Result.Reason when nothing matched: stable kebab-case words.
const (
	ReasonNoUsableRecords = "no-usable-records" // no record with usage 2/3 and known selector and matching type
	ReasonNoCertificate   = "no-certificate"    // the chain is empty
	ReasonNoMatch         = "no-match"          // no record matches the leaf (DANE-EE) or a chain certificate (DANE-TA)
	ReasonBadCertificate  = "bad-certificate"   // a DANE-TA record matched but the leaf does not parse
	ReasonTAChainInvalid  = "ta-chain-invalid"  // a DANE-TA record matched but the leaf does not chain to it
	ReasonCertExpired     = "cert-expired"      // a DANE-TA record matched but a certificate is outside its validity
	ReasonNameMismatch    = "name-mismatch"     // the leaf chains to a DANE-TA but names none of the reference identifiers
)

// reasonRank orders failure reasons by how far verification got, so the
// most telling one is reported when several records fail.
var reasonRank = map[string]int{
	ReasonNoMatch:        0,
	ReasonBadCertificate: 1,
	ReasonTAChainInvalid: 2,
	ReasonCertExpired:    3,
	ReasonNameMismatch:   4,
}

// Result is the outcome of Verify.
type Result struct {
	Match bool
	// Usage is the usage of the matching record (2 or 3) when Match is set.
	Usage uint8
	// Record is the record that matched (the zero Record when none did).
	Record Record
	// Reason says why nothing matched ("" when Match is set).
	Reason string
	// Err is the x509 error behind ReasonTAChainInvalid, ReasonCertExpired
	// or ReasonBadCertificate, for detail; nil otherwise.
	Err error
}

// Verify checks the certificate chain a server presented (DER, leaf first,
// as in tls.ConnectionState.PeerCertificates[i].Raw) against the TLSA
// records of an MX host. Unusable records (see Usable) are skipped. The first
// matching record wins.
//
// names are the reference identifiers a DANE-TA leaf must carry (RFC 7672
// §3.2.2): the MX host name and, when the MX host name is an alias, the TLSA
// base domain (the CNAME-expanded name), optionally the next-hop domain. A
// trailing dot and letter case do not matter.
//
// DANE-EE(3), RFC 7672 §3.1.1 and RFC 7671 §5.1: the leaf certificate
// (selector 0) or its SubjectPublicKeyInfo (selector 1), hashed per the
// matching type, must equal the record data. Names and validity period are
// ignored. With selector 0 the leaf's bytes are compared as presented, even
// if they do not parse as a certificate.
//
// DANE-TA(2), RFC 7672 §3.1.2 and RFC 7671 §5.2: a certificate of the chain
// other than the leaf (RFC 7671 §5.2.2: the server includes the trust anchor
// in its chain) must match the record; the leaf must then chain to it, with
// signatures checked and the other presented certificates as intermediates,
// every certificate of that chain, the trust anchor included, valid at now;
// and the leaf must name one of names (RFC 7672 §3.2.3: DNS-ID subject
// alternative names, "*" only as the complete left-most label; the subject
// CN only when the certificate has no DNS-ID, RFC 6125 §6.4.4).
// A "2 0 0" record carries the whole trust-anchor certificate, which is used
// even when the server does not send it (RFC 7671 §5.2.2). Not implemented:
// a "2 1 0" record (a bare public key) whose key is in no presented
// certificate; such a server does not match.
func Verify(chain [][]byte, records []Record, names []string, now time.Time) Result {
	usable := UsableRecords(records)
	if len(usable) == 0 {
		return Result{Reason: ReasonNoUsableRecords}
	}
	if len(chain) == 0 {
		return Result{Reason: ReasonNoCertificate}
	}
	certs := make([]*x509.Certificate, len(chain))
	certErrs := make([]error, len(chain))
	for i, der := range chain {
		certs[i], certErrs[i] = x509.ParseCertificate(der)
	}

	// DANE-EE first: cheapest, and the common case.
	for _, r := range usable {
		if r.Usage == UsageDANEEE && matches(r, chain[0], certs[0]) {
			return Result{Match: true, Usage: r.Usage, Record: r}
		}
	}

	best := Result{Reason: ReasonNoMatch}
	fail := func(reason string, err error) {
		if reasonRank[reason] > reasonRank[best.Reason] {
			best = Result{Reason: reason, Err: err}
		}
	}
	for _, r := range usable {
		if r.Usage != UsageDANETA {
			continue
		}
		ta := findTA(r, chain, certs)
		if ta == nil {
			continue
		}
		if certs[0] == nil {
			fail(ReasonBadCertificate, certErrs[0])
			continue
		}
		if reason, err := verifyTA(certs, ta, now); reason != "" {
			fail(reason, err)
			continue
		}
		if !nameMatches(certs[0], names) {
			fail(ReasonNameMismatch, nil)
			continue
		}
		return Result{Match: true, Usage: r.Usage, Record: r}
	}
	return best
}

// findTA returns the trust anchor a DANE-TA record designates: a presented
// certificate other than the leaf that matches it, else, for "2 0 0", the
// certificate in the record itself.
func findTA(r Record, chain [][]byte, certs []*x509.Certificate) *x509.Certificate {
	for i := 1; i < len(chain); i++ {
		if certs[i] != nil && matches(r, chain[i], certs[i]) {
			return certs[i]
		}
	}
	if r.Selector == SelectorCert && r.MatchingType == MatchFull {
		if c, err := x509.ParseCertificate(r.Data); err == nil {
			return c
		}
	}
	return nil
}

// verifyTA checks that the leaf chains to ta at now. It returns "" when it
// does, else a reason and the x509 error.
func verifyTA(certs []*x509.Certificate, ta *x509.Certificate, now time.Time) (string, error) {
	opts := x509.VerifyOptions{
		Roots:         x509.NewCertPool(),
		Intermediates: x509.NewCertPool(),
		CurrentTime:   now,
		// RFC 7672 does not require an extended key usage for SMTP servers.
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}
	opts.Roots.AddCert(ta)
	for _, c := range certs[1:] {
		if c != nil {
			opts.Intermediates.AddCert(c)
		}
	}
	if _, err := certs[0].Verify(opts); err != nil {
		var ci x509.CertificateInvalidError
		if errors.As(err, &ci) && ci.Reason == x509.Expired {
			return ReasonCertExpired, err
		}
		return ReasonTAChainInvalid, err
	}
	return "", nil
}

// matches reports whether the certificate (der, parsed as c, which may be
// nil when it does not parse) matches r.
func matches(r Record, der []byte, c *x509.Certificate) bool {
	var sel []byte
	switch r.Selector {
	case SelectorCert:
		sel = der
	case SelectorSPKI:
		if c == nil {
			return false
		}
		sel = c.RawSubjectPublicKeyInfo
	default:
		return false
	}
	switch r.MatchingType {
	case MatchFull:
		return bytes.Equal(sel, r.Data)
	case MatchSHA256:
		h := sha256.Sum256(sel)
		return bytes.Equal(h[:], r.Data)
	case MatchSHA512:
		h := sha512.Sum512(sel)
		return bytes.Equal(h[:], r.Data)
	}
	return false
}

// nameMatches reports whether the leaf names one of the reference
// identifiers (RFC 7672 §3.2.3).
func nameMatches(leaf *x509.Certificate, names []string) bool {
	for _, n := range names {
		n = dnsname.Key(n)
		if n == "" {
			continue
		}
		// DNS-IDs, with "*" only as the whole left-most label.
		if leaf.VerifyHostname(n) == nil {
			return true
		}
		// RFC 6125 §6.4.4: the CN only when there is no DNS-ID.
		if len(leaf.DNSNames) == 0 && matchHostPattern(leaf.Subject.CommonName, n) {
			return true
		}
	}
	return false
}

// matchHostPattern matches host against a certificate name that may start
// with a "*." wildcard label covering exactly one label.
func matchHostPattern(pattern, host string) bool {
	pattern = dnsname.Key(pattern)
	if pattern == "" {
		return false
	}
	if suffix, ok := strings.CutPrefix(pattern, "*."); ok {
		label, ok := strings.CutSuffix(host, "."+suffix)
		return ok && label != "" && !strings.Contains(label, ".") && suffix != ""
	}
	return pattern == host
}

// TLSAName returns the owner name of the TLSA records of a host for TCP port
// port (0 means 25, SMTP): "_25._tcp.mx.example.com." (RFC 6698 §3, RFC 7672
// §2.2.3). The host is lower-cased and given a single trailing dot.
func TLSAName(host string, port int) string {
	port = cmp.Or(port, 25)
	return "_" + strconv.Itoa(port) + "._tcp." + dnsname.Key(host) + "."
}
