// Package smtpprobe probes one MX IP address: it reads the SMTP banner, sends
// EHLO, STARTTLS when offered, completes a TLS handshake with SNI set to the
// MX host name, records the protocol version, cipher suite and certificate
// chain, and says goodbye with QUIT. It never sends MAIL, RCPT or DATA.
//
// It owns the SMTP and TLS conversation with one IP, including the second
// TLS stack for servers Go's crypto/tls refuses. It must not know about DNS,
// MTA-STS, DANE or verdicts: it reports what it observed (result.Probe) and
// the scanner judges it.
package smtpprobe

import (
	"context"
	"crypto/x509"
	"net"
	"time"
)

// Dialer dials TCP connections; *net.Dialer implements it.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Config controls a probe. The zero value of every field has a documented default.
type Config struct {
	Port           int              // 0: 25
	HELO           string           // 0: "tlsready.invalid"; should identify the operator
	ConnectTimeout time.Duration    // 0: 10s
	BannerTimeout  time.Duration    // 0: 30s (postscreen/tarpit greetings of 10-15 s are normal)
	CommandTimeout time.Duration    // 0: 30s, each later reply and the TLS handshake
	Timeout        time.Duration    // 0: 90s, the whole probe including a retry
	Dialer         Dialer           // nil: &net.Dialer{}
	RootCAs        *x509.CertPool   // nil: system roots
	Now            func() time.Time // nil: time.Now; also the x509 verification time
	NoLegacyRetry  bool             // do not retry a failed handshake on the second TLS stack (zcrypto); Go's failure then stands
	// OnConnect, when set, is called before each TCP connection attempt
	// (the scanner's global rate limit and connection counter).
	OnConnect func()
	// ChainCache, when set, remembers the judgement of each distinct
	// presented chain, so a chain that many IPs present (large providers)
	// is parsed into CertInfo and verified once. nil: every chain is judged
	// anew. Share one per run among probes with the same RootCAs.
	ChainCache *ChainCache
}
