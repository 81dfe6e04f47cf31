package scantest

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"net/textproto"
	"time"
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
