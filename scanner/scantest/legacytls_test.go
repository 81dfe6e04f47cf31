package scantest

import (
	"context"
	"crypto/x509"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/scanner/smtpprobe"
)

// LegacyTLS hosts, probed by the real probe: a DHE-only server completes
// STARTTLS only on the probe's second TLS stack (zcrypto), with a PKIX-valid
// RSA certificate for the host's name.
func TestLegacyTLS(t *testing.T) {
	t.Parallel()
	var dhe, rsaKX netip.Addr
	n, _ := start(t, func(b *Builder) {
		dhe = b.Host("mx.dhe.test", SMTPHost{LegacyTLS: LegacyDHEOnly})
		rsaKX = b.Host("mx.rsa-kx.test", SMTPHost{LegacyTLS: LegacyRSAKXOnly})
	})
	cfg := smtpprobe.Config{
		Port:           n.SMTPPort,
		HELO:           "scanner.test",
		RootCAs:        n.CA.Pool(),
		CommandTimeout: 10 * time.Second,
		Timeout:        30 * time.Second,
	}
	probe := func(t *testing.T, host string, ip netip.Addr) *result.Probe {
		t.Helper()
		p := smtpprobe.Probe(context.Background(), cfg, host, ip)
		if p.Status != result.ProbeOK || p.TLS == nil {
			t.Fatalf("%s: status %q error %q", host, p.Status, p.Error)
		}
		leaf, err := smtpprobe.Leaf(p)
		if err != nil {
			t.Fatal(err)
		}
		if leaf.PublicKeyAlgorithm != x509.RSA {
			t.Errorf("%s: %v key, want RSA", host, leaf.PublicKeyAlgorithm)
		}
		if !p.TLS.ChainTrusted || p.TLS.Expired || !smtpprobe.NameMatch(p, host) {
			t.Errorf("%s: trusted %v expired %v names %v", host, p.TLS.ChainTrusted, p.TLS.Expired, p.TLS.Certs[0].DNSNames)
		}
		if p.TLS.VersionID != 0x0303 {
			t.Errorf("%s: %s", host, p.TLS.Version)
		}
		return p
	}

	t.Run(LegacyDHEOnly, func(t *testing.T) {
		p := probe(t, "mx.dhe.test", dhe)
		if p.TLS.Stack != result.StackFallback || !p.Retried || p.Alert != "handshake_failure" {
			t.Errorf("stack %q retried %v alert %q", p.TLS.Stack, p.Retried, p.Alert)
		}
		if !strings.HasPrefix(p.TLS.CipherSuite, "TLS_DHE_RSA_WITH_") {
			t.Errorf("cipher suite %q", p.TLS.CipherSuite)
		}
		// crypto/tls, turned away, then zcrypto: two connections, one
		// after the other (MaxConcurrentPerIP is not asserted: the server
		// may notice the first close after the second dial).
		if c := n.Counters(); c.ConnsPerIP[dhe] != 2 {
			t.Errorf("%d connections", c.ConnsPerIP[dhe])
		}
	})

	// RSA key exchange is what Go's crypto/tls drops by default (Go 1.22+)
	// but the probe's first attempt offers: completed on the first stack,
	// one connection. A default crypto/tls client cannot connect.
	t.Run(LegacyRSAKXOnly, func(t *testing.T) {
		p := probe(t, "mx.rsa-kx.test", rsaKX)
		if p.TLS.Stack != "" || p.Retried || !strings.HasPrefix(p.TLS.CipherSuite, "TLS_RSA_WITH_") {
			t.Errorf("stack %q retried %v suite %q", p.TLS.Stack, p.Retried, p.TLS.CipherSuite)
		}
		if c := n.Counters(); c.ConnsPerIP[rsaKX] != 1 {
			t.Errorf("%d connections", c.ConnsPerIP[rsaKX])
		}
		c := dialSMTP(t, n, rsaKX)
		c.banner()
		c.expect(250, "EHLO scanner.test")
		c.expect(220, "STARTTLS")
		if _, err := c.StartTLS("mx.rsa-kx.test"); err == nil {
			t.Error("a default crypto/tls client completed the handshake")
		}
	})
}
