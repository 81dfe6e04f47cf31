package scantest

import (
	"crypto/rsa"
	"fmt"
	"sync"

	ztls "github.com/zmap/zcrypto/tls"
)

// Servers of SMTPHost.LegacyTLS: old or narrowly configured TLS servers that
// Go's crypto/tls cannot play (it has no finite-field DHE), served by
// zcrypto's TLS server. Both speak TLS 1.2 only, with an RSA certificate for
// the host's Name from the world's CA (PKIX-valid); Cert and SNICerts do not
// apply, Certificate does when its key is RSA.
const (
	LegacyDHEOnly   = "dhe-only"    // DHE-RSA suites only: a crypto/tls client cannot connect, an OpenSSL one can
	LegacyRSAKXOnly = "rsa-kx-only" // RSA key exchange suites only (crypto/tls clients offer them when configured to)
)

// legacySuites are the cipher suites of each LegacyTLS server, in its order
// of preference.
var legacySuites = map[string][]uint16{
	LegacyDHEOnly: {
		ztls.TLS_DHE_RSA_WITH_AES_128_GCM_SHA256,
		ztls.TLS_DHE_RSA_WITH_AES_256_GCM_SHA384,
		ztls.TLS_DHE_RSA_WITH_AES_128_CBC_SHA,
		ztls.TLS_DHE_RSA_WITH_AES_256_CBC_SHA,
	},
	LegacyRSAKXOnly: {
		ztls.TLS_RSA_WITH_AES_128_GCM_SHA256,
		ztls.TLS_RSA_WITH_AES_256_GCM_SHA384,
		ztls.TLS_RSA_WITH_AES_128_CBC_SHA,
		ztls.TLS_RSA_WITH_AES_256_CBC_SHA,
	},
}

// legacyCert is a host's RSA certificate for its LegacyTLS server, issued on
// first use.
type legacyCert struct {
	once sync.Once
	cert *ztls.Certificate
	err  error
}

// legacyCertificate returns the host's RSA certificate: Certificate when its
// key is RSA, else one issued by the CA for Name.
func (st *smtpHostState) legacyCertificate() (*ztls.Certificate, error) {
	lc := &st.legacy
	lc.once.Do(func() {
		if c := st.h.Certificate; c != nil {
			if _, ok := c.PrivateKey.(*rsa.PrivateKey); ok {
				lc.cert = &ztls.Certificate{Certificate: c.Certificate, PrivateKey: c.PrivateKey}
				return
			}
		}
		c, err := st.ca.Issue(CertOptions{Names: []string{st.h.Name}, RSA: true})
		if err != nil {
			lc.err = err
			return
		}
		lc.cert = &ztls.Certificate{Certificate: c.Certificate, PrivateKey: c.PrivateKey}
	})
	return lc.cert, lc.err
}

// legacyTLS runs the server side of a LegacyTLS handshake after a 220 to
// STARTTLS, on zcrypto's TLS server, and continues the session over TLS.
func (s *smtpSession) legacyTLS() error {
	h := s.h
	suites, ok := legacySuites[h.LegacyTLS]
	if !ok {
		return fmt.Errorf("scantest: SMTP host %s: unknown LegacyTLS %q", h.Name, h.LegacyTLS)
	}
	cfg := &ztls.Config{
		GetCertificate: func(hello *ztls.ClientHelloInfo) (*ztls.Certificate, error) {
			s.n.stats.serverName(hello.ServerName)
			return s.st.legacyCertificate()
		},
		MinVersion:               ztls.VersionTLS12,
		MaxVersion:               ztls.VersionTLS12,
		CipherSuites:             suites,
		PreferServerCipherSuites: true,
		SessionTicketsDisabled:   true, // no tickets: one server flight per handshake
	}
	return s.handshake(ztls.Server(s.conn, cfg))
}
