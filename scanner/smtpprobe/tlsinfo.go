package smtpprobe

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tlsready/tlsready/scanner/dnsname"
	"github.com/tlsready/tlsready/scanner/result"
)

// ErrNoTLS is returned by Leaf and Chain for a probe without a completed
// handshake or without certificates.
var ErrNoTLS = errors.New("smtpprobe: no tls certificate")

const (
	maxDNSNames = 200  // DNS names kept per certificate in CertInfo
	maxNameLen  = 1024 // bytes of a subject or issuer kept in CertInfo
)

// allSuites is every TLS 1.0-1.2 cipher suite crypto/tls implements, secure
// and insecure (RSA key exchange, 3DES, RC4, CBC-SHA256): an MTA delivering
// with opportunistic TLS would rather use any of them than plaintext, so the
// first attempt offers them all. crypto/tls orders them itself.
var allSuites = func() []uint16 {
	var ids []uint16
	for _, list := range [][]*tls.CipherSuite{tls.CipherSuites(), tls.InsecureCipherSuites()} {
		for _, s := range list {
			for _, v := range s.SupportedVersions {
				if v <= tls.VersionTLS12 {
					ids = append(ids, s.ID)
					break
				}
			}
		}
	}
	return ids
}()

// tlsConfig returns the client configuration of the first attempt, on Go's
// crypto/tls (the second attempt runs on zcrypto, see fallback.go).
// Certificates are not verified during the handshake (InsecureSkipVerify) so
// that bad ones are still recorded; they are judged afterwards by judgeChain.
func tlsConfig(sni string) *tls.Config {
	return &tls.Config{
		ServerName:         sni,
		InsecureSkipVerify: true, // verified by judgeChain after the handshake
		MinVersion:         tls.VersionTLS10,
		CipherSuites:       allSuites,
		CurvePreferences:   classicalCurves,
	}
}

// classicalCurves are the key exchange groups the first attempt offers:
// Go's defaults without the post-quantum hybrids (X25519MLKEM768 and, from
// Go 1.26, SecP256r1MLKEM768 and SecP384r1MLKEM1024), with a key share for
// X25519 only, as before Go 1.24 (GODEBUG tlsmlkem=0).
//
// The scanner judges whether a receiver can take mail over TLS with a
// certificate a sender can verify, and records neither the group nor
// whether the session would resist a quantum adversary; the ML-KEM key
// share cost about 260 µs of CPU per probe (BenchmarkProbeClientCPU), a
// quarter of a domain's CPU (issue 10). What changes at receivers: one that picks a hybrid now gets
// X25519 (or a P-curve after a HelloRetryRequest, as before); one that
// accepts only hybrid groups fails the handshake (none is known among
// MTAs: OpenSSL, GnuTLS and Go servers all accept X25519 by default); a
// middlebox or server that chokes on the large post-quantum ClientHello
// completes on this attempt instead of needing the fallback stack, so it
// is no longer flagged tls-fallback-stack. Adding a hybrid to the list but
// not its key share is worse: servers that prefer hybrids (OpenSSL 3.5,
// Go) answer with a HelloRetryRequest and the hybrid is paid anyway.
var classicalCurves = []tls.CurveID{tls.X25519, tls.CurveP256, tls.CurveP384, tls.CurveP521}

// tlsInfo describes a completed handshake on either TLS stack: version,
// cipher suite name and the presented chain (parsed by crypto/x509, leaf
// first) judged against roots at now (nil roots: the system roots), through
// cache when it is not nil.
func tlsInfo(version uint16, suite string, certs []*x509.Certificate, roots *x509.CertPool, now time.Time, cache *ChainCache) *result.TLSInfo {
	info := &result.TLSInfo{
		Version:     tls.VersionName(version),
		VersionID:   version,
		CipherSuite: suite,
		Certs:       []result.CertInfo{},
	}
	if len(certs) == 0 {
		info.ChainError = "no certificate"
		return info
	}
	for _, c := range certs {
		info.Raw = append(info.Raw, c.Raw)
	}
	var key [32]byte
	if cache != nil {
		key = chainKey(certs)
		if e := cache.get(key); e != nil {
			e.apply(info, now)
			return info
		}
	}
	e := judgeChain(certs, roots, now)
	cache.put(key, e)
	e.apply(info, now)
	return info
}

// judgeChain summarises the presented certificates and judges the chain.
//
// The chain is verified (leaf with the presented intermediates against roots,
// server-auth usage, no host name) first at now; if that fails and now lies
// outside the common validity window of the presented certificates, again at
// a time inside that window, so that an expired but otherwise trusted chain is
// trusted (and, by apply, Expired). Expired and NotYetValid look at the leaf
// and, when the chain is trusted, at every certificate of the verified path
// (presented extras that are not on the path, such as an old cross-sign, are
// ignored).
func judgeChain(certs []*x509.Certificate, roots *x509.CertPool, now time.Time) *chainEntry {
	leaf := certs[0]
	e := &chainEntry{
		certs:  make([]result.CertInfo, 0, len(certs)),
		leafNB: leaf.NotBefore,
		leafNA: leaf.NotAfter,
	}
	for _, c := range certs {
		e.certs = append(e.certs, certInfo(c))
	}
	if len(leaf.DNSNames) > maxDNSNames {
		// Stored truncated, checked in full: a truncated list must never
		// decide a name check.
		e.allNames = slices.Clone(leaf.DNSNames)
	}
	opts := x509.VerifyOptions{Roots: roots, CurrentTime: now}
	if len(certs) > 1 {
		opts.Intermediates = x509.NewCertPool()
		for _, c := range certs[1:] {
			opts.Intermediates.AddCert(c)
		}
	}
	chains, err := leaf.Verify(opts)
	if err != nil {
		if t := validTime(certs, now); !t.Equal(now) {
			opts.CurrentTime = t
			chains, err = leaf.Verify(opts)
		}
	}
	if err != nil {
		e.chainErr = chainReason(err)
	} else {
		e.trusted = true
		e.pathNB, e.pathNA = leaf.NotBefore, leaf.NotAfter
		for _, c := range chains[0] {
			if c.NotBefore.After(e.pathNB) {
				e.pathNB = c.NotBefore
			}
			if c.NotAfter.Before(e.pathNA) {
				e.pathNA = c.NotAfter
			}
		}
	}
	e.selfSigned = bytes.Equal(leaf.RawSubject, leaf.RawIssuer) &&
		leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature) == nil
	return e
}

// validTime returns now clamped into the window in which every presented
// certificate is valid (latest NotBefore .. earliest NotAfter), or into the
// leaf's own validity when that window is empty.
func validTime(certs []*x509.Certificate, now time.Time) time.Time {
	lo, hi := certs[0].NotBefore, certs[0].NotAfter
	for _, c := range certs[1:] {
		if c.NotBefore.After(lo) {
			lo = c.NotBefore
		}
		if c.NotAfter.Before(hi) {
			hi = c.NotAfter
		}
	}
	if lo.After(hi) {
		lo, hi = certs[0].NotBefore, certs[0].NotAfter
	}
	switch {
	case now.Before(lo):
		return lo
	case now.After(hi):
		return hi
	}
	return now
}

// chainReason is a short reason why a chain did not verify.
func chainReason(err error) string {
	if e, ok := errors.AsType[x509.UnknownAuthorityError](err); ok {
		// A chain refused for a SHA-1 (or MD5) signature is reported by
		// crypto/x509 as an unknown authority with the real reason only in
		// the message ("possibly because of ... insecure algorithm X").
		if alg, ok := insecureAlgorithm(e.Error()); ok {
			return "insecure algorithm " + alg
		}
		return "unknown authority"
	}
	if e, ok := errors.AsType[x509.CertificateInvalidError](err); ok {
		switch e.Reason {
		case x509.Expired:
			return "outside validity period"
		case x509.NotAuthorizedToSign:
			return "issuer not authorized to sign"
		case x509.IncompatibleUsage:
			return "incompatible key usage"
		case x509.TooManyIntermediates:
			return "too many intermediates"
		case x509.CANotAuthorizedForThisName, x509.CANotAuthorizedForExtKeyUsage, x509.NameConstraintsWithoutSANs, x509.UnconstrainedName:
			return "name constraints violated"
		case x509.NameMismatch:
			return "issuer name mismatch"
		}
		return "invalid certificate"
	}
	if e, ok := errors.AsType[x509.InsecureAlgorithmError](err); ok {
		return "insecure algorithm " + x509.SignatureAlgorithm(e).String()
	}
	if _, ok := errors.AsType[x509.SystemRootsError](err); ok {
		return "no system roots"
	}
	if _, ok := errors.AsType[x509.UnhandledCriticalExtension](err); ok {
		return "unhandled critical extension"
	}
	if _, ok := errors.AsType[x509.ConstraintViolationError](err); ok {
		return "constraint violation"
	}
	return "verification failed"
}

// insecureAlgorithm finds the algorithm named in crypto/x509's hint
// "insecure algorithm NAME" in msg.
func insecureAlgorithm(msg string) (string, bool) {
	const hint = "insecure algorithm "
	i := strings.Index(msg, hint)
	if i < 0 {
		return "", false
	}
	alg := msg[i+len(hint):]
	if j := strings.IndexAny(alg, "\" )"); j >= 0 {
		alg = alg[:j]
	}
	return alg, alg != ""
}

func certInfo(c *x509.Certificate) result.CertInfo {
	sum := sha256.Sum256(c.Raw)
	ci := result.CertInfo{
		Subject:   sanitize(c.Subject.String(), maxNameLen),
		Issuer:    sanitize(c.Issuer.String(), maxNameLen),
		NotBefore: c.NotBefore,
		NotAfter:  c.NotAfter,
		SHA256:    hex.EncodeToString(sum[:]),
		KeyType:   keyType(c),
	}
	for i, n := range c.DNSNames {
		if i == maxDNSNames {
			break
		}
		ci.DNSNames = append(ci.DNSNames, sanitize(n, 255))
	}
	return ci
}

// keyType is e.g. "RSA-2048", "ECDSA-P256", "Ed25519".
func keyType(c *x509.Certificate) string {
	switch k := c.PublicKey.(type) {
	case *rsa.PublicKey:
		return "RSA-" + strconv.Itoa(k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA-" + strings.ReplaceAll(k.Curve.Params().Name, "-", "")
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return c.PublicKeyAlgorithm.String()
}

// Chain parses the certificates presented in p's handshake, leaf first.
func Chain(p *result.Probe) ([]*x509.Certificate, error) {
	if p == nil || p.TLS == nil || len(p.TLS.Raw) == 0 {
		return nil, ErrNoTLS
	}
	certs := make([]*x509.Certificate, 0, len(p.TLS.Raw))
	for _, der := range p.TLS.Raw {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("smtpprobe: parse certificate: %w", err)
		}
		certs = append(certs, c)
	}
	return certs, nil
}

// Leaf parses the leaf certificate presented in p's handshake.
func Leaf(p *result.Probe) (*x509.Certificate, error) {
	if p == nil || p.TLS == nil || len(p.TLS.Raw) == 0 {
		return nil, ErrNoTLS
	}
	c, err := x509.ParseCertificate(p.TLS.Raw[0])
	if err != nil {
		return nil, fmt.Errorf("smtpprobe: parse certificate: %w", err)
	}
	return c, nil
}

// NameMatch reports whether the leaf certificate presented in p's handshake
// names host (a trailing dot is ignored), by the rules of x509
// Certificate.VerifyHostname: subject alternative names only, case
// insensitive, a wildcard only as the whole leftmost label matching exactly
// one label (RFC 6125 §6.4.3). It is false when no handshake completed.
func NameMatch(p *result.Probe, host string) bool {
	// Only the leaf's recorded DNS names are needed (the subject CN is not a
	// name, as in crypto/x509 since Go 1.15), so this works after the
	// scanner dropped the DER chain of a probe it shares.
	if p == nil || p.TLS == nil || len(p.TLS.Certs) == 0 {
		return false
	}
	host = dnsname.Key(host)
	names := p.TLS.Certs[0].DNSNames
	if p.TLS.AllNames != nil {
		names = p.TLS.AllNames
	}
	leaf := &x509.Certificate{DNSNames: names}
	return host != "" && leaf.VerifyHostname(host) == nil
}

// remoteAlert returns the TLS alert the server sent, if err carries one.
// crypto/tls reports a received alert as a *net.OpError with Op "remote
// error" whose Err is its (unexported, uint8) alert type; tls.AlertError is
// checked first in case a future version uses it.
func remoteAlert(err error) (uint8, bool) {
	if a, ok := errors.AsType[tls.AlertError](err); ok {
		return uint8(a), true
	}
	if op, ok := errors.AsType[*net.OpError](err); ok && op.Op == "remote error" && op.Err != nil {
		if v := reflect.ValueOf(op.Err); v.Kind() == reflect.Uint8 {
			return uint8(v.Uint()), true
		}
	}
	return 0, false
}

// alertNames are the TLS alert descriptions of the IANA registry.
var alertNames = map[uint8]string{
	0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac",
	21: "decryption_failed", 22: "record_overflow", 30: "decompression_failure",
	40: "handshake_failure", 41: "no_certificate", 42: "bad_certificate",
	43: "unsupported_certificate", 44: "certificate_revoked", 45: "certificate_expired",
	46: "certificate_unknown", 47: "illegal_parameter", 48: "unknown_ca",
	49: "access_denied", 50: "decode_error", 51: "decrypt_error",
	60: "export_restriction", 70: "protocol_version", 71: "insufficient_security",
	80: "internal_error", 86: "inappropriate_fallback", 90: "user_canceled",
	100: "no_renegotiation", 109: "missing_extension", 110: "unsupported_extension",
	111: "certificate_unobtainable", 112: "unrecognized_name",
	113: "bad_certificate_status_response", 114: "bad_certificate_hash_value",
	115: "unknown_psk_identity", 116: "certificate_required",
	120: "no_application_protocol", 121: "ech_required",
}

func alertName(a uint8) string {
	if n, ok := alertNames[a]; ok {
		return n
	}
	return "alert_" + strconv.Itoa(int(a))
}
