package smtpprobe

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"

	ztls "github.com/zmap/zcrypto/tls"
	zx509 "github.com/zmap/zcrypto/x509"

	"github.com/tlsready/tlsready/scanner/result"
)

// The two TLS stacks of a probe. docs/verdicts.md judges STARTTLS the way an
// OpenSSL-based MTA at default settings (Postfix, Exim) negotiates. Go's
// crypto/tls, the first stack, cannot do finite-field DHE (nor SSL 3.0), and
// some old servers refuse or stall on its large, modern ClientHello (TLS 1.3,
// a post-quantum key share). When its handshake fails, the dialogue is
// repeated once on zcrypto's TLS client (the stack zgrab2 uses for the same
// reason) with a small TLS 1.0-1.2 ClientHello shaped like OpenSSL's default
// one; see judgeFallback for how its failures are judged.

// tlsStack is one TLS client implementation.
type tlsStack struct {
	name string // result.TLSInfo.Stack
	// handshake runs the client handshake over conn (the SMTP connection
	// after the server's 220 to STARTTLS) with sni as SNI.
	handshake func(conn net.Conn, sni string) (*tlsConn, error)
}

var (
	goStack       = tlsStack{name: "", handshake: goHandshake}
	fallbackStack = tlsStack{name: result.StackFallback, handshake: fallbackHandshake}
)

// tlsConn is a completed handshake on either stack: the encrypted connection
// and its facts in crypto/tls and crypto/x509 terms.
type tlsConn struct {
	net.Conn                     // reads and writes over TLS; Close sends close_notify
	version  uint16              // TLS version on the wire
	suite    string              // cipher suite, IANA name
	certs    []*x509.Certificate // presented chain, leaf first, parsed by crypto/x509
	// unparsed is set when crypto/x509 could not parse a presented
	// certificate that the stack accepted; raw is then the chain as DER.
	unparsed error
	raw      [][]byte
}

// info describes the handshake like tlsInfo does for crypto/tls.
func (tc *tlsConn) info(cfg *Config) *result.TLSInfo {
	if tc.unparsed == nil {
		return tlsInfo(tc.version, tc.suite, tc.certs, cfg.RootCAs, cfg.Now(), cfg.ChainCache)
	}
	// The handshake completed (an OpenSSL-based sender would encrypt),
	// but the chain cannot be judged: not trusted, with why.
	info := tlsInfo(tc.version, tc.suite, nil, nil, cfg.Now(), nil)
	info.Raw = tc.raw
	info.ChainError = sanitize("certificate not parseable: "+tc.unparsed.Error(), 120)
	return info
}

func goHandshake(conn net.Conn, sni string) (*tlsConn, error) {
	tc := tls.Client(conn, tlsConfig(sni))
	if err := tc.Handshake(); err != nil {
		return nil, err
	}
	cs := tc.ConnectionState()
	return &tlsConn{Conn: tc, version: cs.Version, suite: tls.CipherSuiteName(cs.CipherSuite), certs: cs.PeerCertificates}, nil
}

// fallbackSuites is what OpenSSL 3 offers at its default security level for
// TLS 1.0-1.2, in its order, as far as zcrypto implements it (zcrypto lacks
// ECDHE with AES-256-CBC-SHA384, and OpenSSL's PSK and SRP suites need keys
// no sender has), followed by DHE-DSS (OpenSSL 1.1.1's default list has it)
// and, as a last resort, 3DES. Suites for TLS 1.2 only are not offered to a
// server that answers with an older version.
//
// zcrypto's client rejects DSA server certificates: a server that chooses
// DHE-DSS is therefore judged ProbeNotJudged (an OpenSSL sender may complete
// it), not ProbeHandshakeFailed as it would be if the suites were not offered.
var fallbackSuites = []uint16{
	ztls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	ztls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	ztls.TLS_DHE_RSA_WITH_AES_256_GCM_SHA384,
	ztls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	ztls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	ztls.TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	ztls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	ztls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	ztls.TLS_DHE_RSA_WITH_AES_128_GCM_SHA256,
	ztls.TLS_DHE_RSA_WITH_AES_256_CBC_SHA256,
	ztls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
	ztls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
	ztls.TLS_DHE_RSA_WITH_AES_128_CBC_SHA256,
	ztls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
	ztls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
	ztls.TLS_DHE_RSA_WITH_AES_256_CBC_SHA,
	ztls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
	ztls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
	ztls.TLS_DHE_RSA_WITH_AES_128_CBC_SHA,
	ztls.TLS_RSA_WITH_AES_256_GCM_SHA384,
	ztls.TLS_RSA_WITH_AES_128_GCM_SHA256,
	ztls.TLS_RSA_WITH_AES_256_CBC_SHA256,
	ztls.TLS_RSA_WITH_AES_128_CBC_SHA256,
	ztls.TLS_RSA_WITH_AES_256_CBC_SHA,
	ztls.TLS_RSA_WITH_AES_128_CBC_SHA,
	ztls.TLS_DHE_DSS_WITH_AES_256_GCM_SHA384,
	ztls.TLS_DHE_DSS_WITH_AES_128_GCM_SHA256,
	ztls.TLS_DHE_DSS_WITH_AES_256_CBC_SHA256,
	ztls.TLS_DHE_DSS_WITH_AES_128_CBC_SHA256,
	ztls.TLS_DHE_DSS_WITH_AES_256_CBC_SHA,
	ztls.TLS_DHE_DSS_WITH_AES_128_CBC_SHA,
	ztls.TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA,
	ztls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA,
	ztls.TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA,
	ztls.TLS_DHE_DSS_WITH_3DES_EDE_CBC_SHA,
	ztls.TLS_RSA_WITH_3DES_EDE_CBC_SHA,
}

// fallbackCurves are the ECDHE groups offered: OpenSSL's defaults that
// zcrypto implements (not X448, nor the RFC 7919 groups). No post-quantum
// key share: there is no key share at all, TLS 1.3 is not offered.
var fallbackCurves = []ztls.CurveID{ztls.X25519, ztls.CurveP256, ztls.CurveP521, ztls.CurveP384}

// fallbackSigAlgs are the TLS 1.2 signature algorithms offered (RFC 5246
// §7.4.1.4.1 / RFC 8446 SignatureScheme code points), those zcrypto can
// verify in a ServerKeyExchange, SHA-1 last.
var fallbackSigAlgs = sigAlgsExtension{
	0x0403, 0x0503, 0x0603, // ecdsa_secp256r1_sha256, ..._secp384r1_sha384, ..._secp521r1_sha512
	0x0807,                 // ed25519
	0x0804, 0x0805, 0x0806, // rsa_pss_rsae_sha256, _sha384, _sha512
	0x0401, 0x0501, 0x0601, // rsa_pkcs1_sha256, _sha384, _sha512
	0x0402, 0x0502, 0x0602, // dsa_sha256, _sha384, _sha512 (DHE-DSS)
	0x0203, 0x0201, 0x0202, // ecdsa_sha1, rsa_pkcs1_sha1, dsa_sha1
}

// fallbackConfig is the zcrypto client configuration of one handshake (the
// library changes it while handshaking: never share one).
//
// The ClientHello is written out explicitly (ClientFingerprintConfiguration):
// zcrypto's default ClientHello leaves out every suite Go's crypto/tls lacks,
// DHE included. It offers TLS 1.2 in the legacy version field, with SNI,
// point formats, supported groups, signature algorithms and an empty
// renegotiation_info (RFC 5746); not the extended master secret (RFC 7627)
// nor encrypt-then-MAC, which zcrypto's client does not implement.
func fallbackConfig(sni string) *ztls.Config {
	exts := []ztls.ClientExtension{
		&ztls.PointFormatExtension{Formats: []uint8{0}}, // uncompressed
		&ztls.SupportedCurvesExtension{Curves: fallbackCurves},
		fallbackSigAlgs,
		&ztls.SecureRenegotiationExtension{},
	}
	if sni != "" && net.ParseIP(sni) == nil {
		exts = append([]ztls.ClientExtension{&ztls.SNIExtension{Domains: []string{sni}}}, exts...)
	}
	return &ztls.Config{
		ServerName:         sni,
		InsecureSkipVerify: true,                // judged by judgeChain after the handshake
		RootCAs:            zx509.NewCertPool(), // zcrypto validates anyway; spare it the system roots
		MinVersion:         ztls.VersionTLS10,   // no SSL 3.0, like OpenSSL at default settings
		ClientDSAEnabled:   true,                // accept DSA signatures in a DHE-DSS ServerKeyExchange
		ClientFingerprintConfiguration: &ztls.ClientFingerprintConfiguration{
			HandshakeVersion:   ztls.VersionTLS12,
			CipherSuites:       fallbackSuites,
			CompressionMethods: []uint8{0}, // null
			Extensions:         exts,
		},
	}
}

// sigAlgsExtension is the signature_algorithms extension (RFC 5246
// §7.4.1.4.1). zcrypto's own SignatureAlgorithmExtension rejects the ECDSA
// code points (its internal signature numbering differs from the wire's).
type sigAlgsExtension []uint16

func (e sigAlgsExtension) Marshal() []byte {
	n := 2 * len(e)
	b := []byte{0, 13, byte((n + 2) >> 8), byte(n + 2), byte(n >> 8), byte(n)}
	for _, a := range e {
		b = append(b, byte(a>>8), byte(a))
	}
	return b
}

func (e sigAlgsExtension) CheckImplemented() error            { return nil }
func (e sigAlgsExtension) WriteToConfig(c *ztls.Config) error { return nil }

// fallbackHandshake runs zcrypto's client handshake over conn. A failure is
// returned as a *fallbackError saying whose side it is on.
func fallbackHandshake(conn net.Conn, sni string) (*tlsConn, error) {
	zc := ztls.Client(conn, fallbackConfig(sni))
	if err := zc.Handshake(); err != nil {
		return nil, &fallbackError{err: err, refused: judgeFallback(err, zc.GetHandshakeLog())}
	}
	cs := zc.ConnectionState()
	tc := &tlsConn{Conn: zc, version: cs.Version, suite: suiteName(cs.CipherSuite)}
	// Certificate facts come from crypto/x509, exactly as for the first
	// stack: the DER as presented, parsed again.
	for _, zcert := range cs.PeerCertificates {
		c, err := x509.ParseCertificate(zcert.Raw)
		if err != nil && tc.unparsed == nil {
			tc.unparsed = err
		}
		tc.certs = append(tc.certs, c)
		tc.raw = append(tc.raw, zcert.Raw)
	}
	if tc.unparsed != nil {
		tc.certs = nil
	}
	return tc, nil
}

// suiteName is the IANA name of a cipher suite as zcrypto knows it (Go's
// crypto/tls does not know the DHE ones).
func suiteName(id uint16) string {
	if n := ztls.CipherSuiteID(id).String(); n != "unknown" {
		return n
	}
	return fmt.Sprintf("0x%04X", id)
}

// fallbackError is a failed handshake on the fallback stack.
type fallbackError struct {
	err error
	// refused: the server refused or broke off the handshake, and an
	// OpenSSL-based sender fails too. Otherwise the failure is on the
	// scanner's side and STARTTLS is not judged.
	refused bool
}

func (e *fallbackError) Error() string { return e.err.Error() }
func (e *fallbackError) Unwrap() error { return e.err }

// notJudged reports whether err is a fallback handshake failure on the
// scanner's side.
func notJudged(err error) bool {
	fe, ok := errors.AsType[*fallbackError](err)
	return ok && !fe.refused
}

// ourFaultAlerts are the alerts by which a server says that what the client
// sent was malformed or cryptographically wrong (RFC 5246 §7.2.2). After the
// server accepted the offer (its ServerHello), they point at zcrypto, not at
// the server's configuration.
var ourFaultAlerts = map[uint8]bool{
	10: true, // unexpected_message
	20: true, // bad_record_mac
	22: true, // record_overflow
	30: true, // decompression_failure
	47: true, // illegal_parameter
	50: true, // decode_error
	51: true, // decrypt_error
}

// judgeFallback reports whether a failed fallback handshake was refused by
// the server, so that an OpenSSL-based sender at default settings fails too
// (ProbeHandshakeFailed), rather than failed on the scanner's side
// (ProbeNotJudged: we cannot tell, and it is never called plaintext). The
// fallback's ClientHello is OpenSSL's default offer as far as zcrypto
// implements it, so the server refused when
//
//   - it sent a fatal alert before its ServerHello (handshake_failure,
//     protocol_version, insufficient_security, ...), or after it one that is
//     not in ourFaultAlerts (e.g. a demand for a client certificate);
//   - it closed or reset the connection, or did not answer within the step's
//     deadline (a sender's handshake would time out as well);
//   - it did not speak TLS (the record header was not TLS);
//   - it chose SSL 3.0, which OpenSSL at default settings does not speak.
//
// Anything else is on our side: zcrypto could not process what the server
// chose (a cipher suite, curve, signature algorithm, key or certificate it
// does not implement, a message its parser rejects) or failed locally.
// Classified by type (errors.Is/As) and by zcrypto's typed handshake log,
// never by error text.
func judgeFallback(err error, log *ztls.ServerHandshake) (refused bool) {
	helloSeen := log != nil && log.ServerHello != nil
	if a, ok := remoteAlert(err); ok {
		return !helloSeen || !ourFaultAlerts[a]
	}
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), isReset(err), isTimeout(err):
		return true
	}
	if _, ok := errors.AsType[ztls.RecordHeaderError](err); ok {
		return true
	}
	if helloSeen && uint16(log.ServerHello.Version) < ztls.VersionTLS10 {
		return true
	}
	return false
}
