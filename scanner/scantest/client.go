package scantest

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/textproto"
	"time"

	"github.com/miekg/dns"
)

// SMTPClient is a minimal SMTP client for tests of the simulated internet
// and of the worlds built on it: it reads replies, sends lines and upgrades
// with STARTTLS without verifying (the test judges the certificate itself).
// It is not the scanner's probe and shares no code with it.
type SMTPClient struct {
	Conn net.Conn        // a *tls.Conn after StartTLS
	Text *textproto.Conn // line I/O on Conn
}

// DialSMTP connects to the simulated SMTP server at ip, with 10 s for the
// whole conversation.
func DialSMTP(n *Internet, ip netip.Addr) (*SMTPClient, error) {
	c, err := net.DialTimeout("tcp", netip.AddrPortFrom(ip, uint16(n.SMTPPort)).String(), 5*time.Second)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return &SMTPClient{Conn: c, Text: textproto.NewConn(c)}, nil
}

// Reply reads one reply and returns its code and the text of its lines.
func (c *SMTPClient) Reply() (int, []string, error) {
	var lines []string
	for {
		l, err := c.Text.ReadLine()
		if err != nil {
			return 0, lines, err
		}
		if len(l) < 4 {
			return 0, lines, fmt.Errorf("short reply line %q", l)
		}
		lines = append(lines, l[4:])
		if l[3] == ' ' {
			var code int
			_, err := fmt.Sscanf(l[:3], "%d", &code)
			return code, lines, err
		}
	}
}

// Send writes one command line.
func (c *SMTPClient) Send(format string, args ...any) error {
	return c.Text.PrintfLine(format, args...)
}

// StartTLS upgrades the connection after a 220 to STARTTLS, with sni as the
// server name and no verification, and returns the handshake's connection.
func (c *SMTPClient) StartTLS(sni string) (*tls.Conn, error) {
	tc := tls.Client(c.Conn, &tls.Config{ServerName: sni, InsecureSkipVerify: true, MinVersion: tls.VersionTLS10})
	if err := tc.Handshake(); err != nil {
		return nil, err
	}
	c.Conn, c.Text = tc, textproto.NewConn(tc)
	return tc, nil
}

// Close closes the connection.
func (c *SMTPClient) Close() error { return c.Conn.Close() }

// QueryOptions are a Query's transport and EDNS0 settings.
type QueryOptions struct {
	Net     string // "udp" (default) or "tcp"
	DO      bool   // ask for DNSSEC (EDNS0 with the DO bit)
	EDNS    uint16 // advertised UDP payload size; 0: no EDNS0 unless DO (then 1232)
	Timeout time.Duration
}

// Query asks the simulated DNS server one question, recursion desired, as a
// stub resolver would.
func Query(n *Internet, name string, qtype uint16, o QueryOptions) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = true
	if o.EDNS != 0 || o.DO {
		size := o.EDNS
		if size == 0 {
			size = 1232
		}
		m.SetEdns0(size, o.DO)
	}
	c := &dns.Client{Net: o.Net, Timeout: 5 * time.Second}
	if o.Timeout != 0 {
		c.Timeout = o.Timeout
	}
	if o.EDNS != 0 {
		c.UDPSize = o.EDNS
	}
	r, _, err := c.Exchange(m, n.DNSAddr)
	return r, err
}

// HTTPClient is an HTTPS client for the simulated web servers: host names
// are dialled at the IP ips gives them on Internet.HTTPSPort, certificates
// verified against the test CA, redirects not followed (RFC 8461 §3.3).
func HTTPClient(n *Internet, ips map[string]netip.Addr) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				host, _, _ := net.SplitHostPort(addr)
				return d.DialContext(ctx, network, netip.AddrPortFrom(ips[host], uint16(n.HTTPSPort)).String())
			},
			TLSClientConfig:   &tls.Config{RootCAs: n.CA.Pool()},
			DisableKeepAlives: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
