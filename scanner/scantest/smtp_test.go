package scantest

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// smtpClient is SMTPClient bound to a test: I/O errors fail it.
type smtpClient struct {
	t *testing.T
	*SMTPClient
}

func dialSMTP(t *testing.T, n *Internet, ip netip.Addr) *smtpClient {
	t.Helper()
	c, err := DialSMTP(n, ip)
	if err != nil {
		t.Fatalf("dial %s: %v", ip, err)
	}
	t.Cleanup(func() { c.Close() })
	return &smtpClient{t: t, SMTPClient: c}
}

// cmd sends a command and returns the reply; it fails the test on I/O errors.
func (c *smtpClient) cmd(format string, args ...any) (int, []string) {
	c.t.Helper()
	if err := c.Send(format, args...); err != nil {
		c.t.Fatalf("send %q: %v", format, err)
	}
	code, lines, err := c.Reply()
	if err != nil {
		c.t.Fatalf("reply to %q: %v", format, err)
	}
	return code, lines
}

func (c *smtpClient) expect(want int, format string, args ...any) []string {
	c.t.Helper()
	code, lines := c.cmd(format, args...)
	if code != want {
		c.t.Fatalf("%q: %d %v, want %d", format, code, lines, want)
	}
	return lines
}

func (c *smtpClient) banner() (int, []string) {
	c.t.Helper()
	code, lines, err := c.Reply()
	if err != nil {
		c.t.Fatalf("banner: %v", err)
	}
	return code, lines
}

func start(t *testing.T, build func(b *Builder)) (*Internet, *Builder) {
	t.Helper()
	b := NewBuilder(nil)
	build(b)
	sc, err := b.Scenario()
	if err != nil {
		t.Fatal(err)
	}
	return StartT(t, sc), b
}

// startUnclosed starts b's world and leaves closing it to the test: for
// tests of Close itself.
func startUnclosed(t *testing.T, b *Builder) *Internet {
	t.Helper()
	sc, err := b.Scenario()
	if err != nil {
		t.Fatal(err)
	}
	n, err := Start(sc)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func hasLine(lines []string, s string) bool {
	for _, l := range lines {
		if strings.EqualFold(strings.Fields(l + " x")[0], s) {
			return true
		}
	}
	return false
}

func TestSMTPDialogue(t *testing.T) {
	t.Parallel()
	var ip netip.Addr
	n, _ := start(t, func(b *Builder) { ip = b.Host("mx.example.test", SMTPHost{}) })
	c := dialSMTP(t, n, ip)
	if code, lines := c.banner(); code != 220 || lines[0] != "mx.example.test ESMTP simulated" {
		t.Fatalf("banner %d %v", code, lines)
	}
	c.expect(501, "EHLO")
	ehlo := c.expect(250, "EHLO scanner.test")
	for _, ext := range []string{"PIPELINING", "SIZE", "STARTTLS", "8BITMIME"} {
		if !hasLine(ehlo, ext) {
			t.Errorf("EHLO reply lacks %s: %v", ext, ehlo)
		}
	}
	c.expect(250, "HELO scanner.test")
	c.expect(250, "NOOP")
	c.expect(250, "RSET")
	c.expect(502, "MAIL FROM:<>")
	c.expect(502, "RCPT TO:<someone@example.test>")
	c.expect(502, "DATA")
	c.expect(500, "XYZZY")
	c.expect(501, "STARTTLS now")
	c.expect(220, "STARTTLS")
	tc, err := c.StartTLS("mx.example.test")
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	if tc.ConnectionState().Version != tls.VersionTLS13 {
		t.Errorf("version %x, want TLS 1.3", tc.ConnectionState().Version)
	}
	if ehlo := c.expect(250, "EHLO scanner.test"); hasLine(ehlo, "STARTTLS") {
		t.Errorf("EHLO after TLS offers STARTTLS: %v", ehlo)
	}
	c.expect(503, "STARTTLS")
	c.expect(221, "QUIT")
	if _, err := c.Text.ReadLine(); !errors.Is(err, io.EOF) {
		t.Errorf("after QUIT: %v, want EOF", err)
	}

	// Line too long.
	c = dialSMTP(t, n, ip)
	c.banner()
	c.expect(500, "EHLO %s", strings.Repeat("a", 5000))
	c.expect(221, "QUIT")

	got := n.Counters()
	want := map[string]int64{"EHLO": 3, "HELO": 1, "NOOP": 1, "RSET": 1, "MAIL": 1, "RCPT": 1, "DATA": 1, "UNKNOWN": 1, "STARTTLS": 3, "QUIT": 2}
	for verb, w := range want {
		if got.Commands[verb] != w {
			t.Errorf("Commands[%s] = %d, want %d", verb, got.Commands[verb], w)
		}
	}
	if got.SNI["mx.example.test"] != 1 || got.TLSHandshakes != 1 || got.ConnsPerIP[ip] != 2 {
		t.Errorf("counters %+v", got)
	}
}

// verifyChain judges a presented chain like a scanner would.
func TestSTARTTLSCertKinds(t *testing.T) {
	t.Parallel()
	kinds := map[CertKind]func(error) bool{
		"":        func(err error) bool { return err == nil },
		CertValid: func(err error) bool { return err == nil },
		CertChain: func(err error) bool { return err == nil },
		CertExpired: func(err error) bool {
			var e x509.CertificateInvalidError
			return errors.As(err, &e) && e.Reason == x509.Expired
		},
		CertNotYetValid: func(err error) bool {
			var e x509.CertificateInvalidError
			return errors.As(err, &e) && e.Reason == x509.Expired
		},
		CertSelfSigned: func(err error) bool { return errors.As(err, new(x509.UnknownAuthorityError)) },
		CertUntrusted:  func(err error) bool { return errors.As(err, new(x509.UnknownAuthorityError)) },
		CertWrongName:  func(err error) bool { return errors.As(err, new(x509.HostnameError)) },
	}
	ips := map[CertKind]netip.Addr{}
	n, _ := start(t, func(b *Builder) {
		for k := range kinds {
			ips[k] = b.Host(fmt.Sprintf("mx-%s.example.test", k), SMTPHost{Cert: k})
		}
	})
	for kind, ok := range kinds {
		name := fmt.Sprintf("mx-%s.example.test", kind)
		c := dialSMTP(t, n, ips[kind])
		c.banner()
		c.expect(250, "EHLO scanner.test")
		c.expect(220, "STARTTLS")
		tc, err := c.StartTLS(name)
		if err != nil {
			t.Errorf("%q: handshake: %v", kind, err)
			continue
		}
		certs := tc.ConnectionState().PeerCertificates
		if err := n.CA.Verify(certs, name); !ok(err) {
			t.Errorf("%q: verification error %v", kind, err)
		}
		if kind == CertChain && len(certs) != 2 {
			t.Errorf("chain: %d certificates, want 2", len(certs))
		}
		c.expect(250, "EHLO scanner.test")
		c.expect(221, "QUIT")
	}
}

func TestSTARTTLSRefusedAndVersions(t *testing.T) {
	t.Parallel()
	var none, refused, tls10, tls12 netip.Addr
	n, _ := start(t, func(b *Builder) {
		none = b.Host("none.example.test", SMTPHost{NoSTARTTLS: true})
		refused = b.Host("refused.example.test", SMTPHost{STARTTLSReply: "454 4.7.0 TLS not available"})
		tls10 = b.Host("tls10.example.test", SMTPHost{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10})
		tls12 = b.Host("tls12.example.test", SMTPHost{MaxVersion: tls.VersionTLS12})
	})
	c := dialSMTP(t, n, none)
	c.banner()
	if ehlo := c.expect(250, "EHLO scanner.test"); hasLine(ehlo, "STARTTLS") {
		t.Errorf("NoSTARTTLS host offers it: %v", ehlo)
	}
	c.expect(502, "STARTTLS")
	c.expect(221, "QUIT")

	c = dialSMTP(t, n, refused)
	c.banner()
	c.expect(250, "EHLO scanner.test")
	c.expect(454, "STARTTLS")
	c.expect(250, "NOOP") // still in plaintext
	c.expect(221, "QUIT")

	for ip, want := range map[netip.Addr]uint16{tls10: tls.VersionTLS10, tls12: tls.VersionTLS12} {
		c = dialSMTP(t, n, ip)
		c.banner()
		c.expect(250, "EHLO scanner.test")
		c.expect(220, "STARTTLS")
		tc, err := c.StartTLS("")
		if err != nil {
			t.Fatalf("%s: %v", ip, err)
		}
		if v := tc.ConnectionState().Version; v != want {
			t.Errorf("%s: version %x, want %x", ip, v, want)
		}
	}
	if got := n.Counters().SNI[""]; got != 2 {
		t.Errorf("SNI[\"\"] = %d, want 2", got)
	}
}

func TestSMTPHostile(t *testing.T) {
	t.Parallel()
	hosts := map[string]SMTPHost{
		"silent":    {Silent: true},
		"drip":      {DripBanner: time.Millisecond},
		"delay":     {BannerDelay: 20 * time.Millisecond},
		"endless":   {EndlessMultiline: true},
		"hugeline":  {HugeLine: 100_000},
		"close":     {CloseAfterEHLO: true},
		"garbage":   {GarbageAfterSTARTTLS: true},
		"alert":     {AlertAfterSTARTTLS: true},
		"reset":     {ResetInHandshake: true},
		"quiet":     {SilentAfterTLS: true},
		"hugechain": {HugeChain: 1000}, // > 256 KiB, crypto/tls's limit
		"chain5":    {HugeChain: 5},
		"down":      {Down: true},
		"554":       {BannerCode: 554, Banner: "5.3.2 go away"},
		"421":       {BannerCode: 421, Banner: "4.3.2 busy"},
	}
	ips := map[string]netip.Addr{}
	var dead netip.Addr
	n, _ := start(t, func(b *Builder) {
		for name, h := range hosts {
			ips[name] = b.Host(name+".example.test", h)
		}
		dead = b.IP()
	})
	toTLS := func(t *testing.T, name string) (*smtpClient, error) {
		c := dialSMTP(t, n, ips[name])
		c.banner()
		c.expect(250, "EHLO scanner.test")
		c.expect(220, "STARTTLS")
		_, err := c.StartTLS(name + ".example.test")
		return c, err
	}
	isTimeout := func(err error) bool {
		var ne net.Error
		return errors.As(err, &ne) && ne.Timeout()
	}

	t.Run("silent", func(t *testing.T) {
		c := dialSMTP(t, n, ips["silent"])
		_ = c.Conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, _, err := c.Reply(); !isTimeout(err) {
			t.Errorf("silent banner: %v, want timeout", err)
		}
	})
	for _, name := range []string{"drip", "delay"} {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			c := dialSMTP(t, n, ips[name])
			if code, lines := c.banner(); code != 220 || !strings.HasPrefix(lines[0], name) {
				t.Errorf("banner %d %v", code, lines)
			}
			if d := time.Since(start); d < 20*time.Millisecond {
				t.Errorf("banner after %v, want a delay", d)
			}
		})
	}
	t.Run("endless", func(t *testing.T) {
		c := dialSMTP(t, n, ips["endless"])
		c.banner()
		_ = c.Text.PrintfLine("EHLO scanner.test")
		br := bufio.NewReader(io.LimitReader(c.Conn, 1<<20))
		lines := 0
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				break
			}
			if !strings.HasPrefix(l, "250-") {
				t.Fatalf("line %q", l)
			}
			lines++
		}
		if lines < 1000 {
			t.Errorf("only %d lines in 1 MiB", lines)
		}
	})
	t.Run("hugeline", func(t *testing.T) {
		c := dialSMTP(t, n, ips["hugeline"])
		c.banner()
		_ = c.Text.PrintfLine("EHLO scanner.test")
		buf := make([]byte, 100_000)
		if _, err := io.ReadFull(c.Conn, buf); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(buf), "\n") {
			t.Error("huge line contains a line end")
		}
	})
	t.Run("close", func(t *testing.T) {
		c := dialSMTP(t, n, ips["close"])
		c.banner()
		_ = c.Text.PrintfLine("EHLO scanner.test")
		if _, _, err := c.Reply(); !errors.Is(err, io.EOF) {
			t.Errorf("after EHLO: %v, want EOF", err)
		}
	})
	t.Run("garbage", func(t *testing.T) {
		_, err := toTLS(t, "garbage")
		if !errors.As(err, new(tls.RecordHeaderError)) {
			t.Errorf("handshake: %v, want a RecordHeaderError", err)
		}
	})
	t.Run("alert", func(t *testing.T) {
		_, err := toTLS(t, "alert")
		// Over TCP crypto/tls reports a received alert as a net.OpError
		// "remote error" wrapping its unexported alert type (uint8);
		// tls.AlertError is only used with QUIC.
		var oe *net.OpError
		if !errors.As(err, &oe) || oe.Op != "remote error" ||
			reflect.ValueOf(oe.Err).Kind() != reflect.Uint8 || reflect.ValueOf(oe.Err).Uint() != 40 {
			t.Errorf("handshake: %#v, want a remote alert 40", err)
		}
	})
	t.Run("reset", func(t *testing.T) {
		_, err := toTLS(t, "reset")
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("handshake: %v, want ECONNRESET", err)
		}
	})
	t.Run("quiet", func(t *testing.T) {
		c, err := toTLS(t, "quiet")
		if err != nil {
			t.Fatal(err)
		}
		_ = c.Conn.SetDeadline(time.Now().Add(100 * time.Millisecond))
		_ = c.Text.PrintfLine("EHLO scanner.test")
		if _, _, err := c.Reply(); !isTimeout(err) {
			t.Errorf("EHLO after TLS: %v, want timeout", err)
		}
	})
	t.Run("hugechain", func(t *testing.T) {
		if _, err := toTLS(t, "hugechain"); err == nil {
			t.Error("handshake with a 1000-certificate chain succeeded")
		}
		c, err := toTLS(t, "chain5")
		if err != nil {
			t.Fatal(err)
		}
		if got := len(c.Conn.(*tls.Conn).ConnectionState().PeerCertificates); got != 6 {
			t.Errorf("chain5: %d certificates, want 6", got)
		}
	})
	for _, name := range []string{"down", "dead"} {
		t.Run(name, func(t *testing.T) {
			ip := dead
			if name == "down" {
				ip = ips["down"]
			}
			// The reset may reach the client during connect or after it.
			c, err := net.DialTimeout("tcp", netip.AddrPortFrom(ip, uint16(n.SMTPPort)).String(), 5*time.Second)
			if err == nil {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				_, err = c.Read(make([]byte, 10))
			}
			if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.EOF) {
				t.Errorf("dial and read: %v, want ECONNRESET or EOF", err)
			}
		})
	}
	t.Run("421", func(t *testing.T) {
		c := dialSMTP(t, n, ips["421"])
		if code, _ := c.banner(); code != 421 {
			t.Errorf("banner code %d", code)
		}
		if _, _, err := c.Reply(); !errors.Is(err, io.EOF) {
			t.Errorf("after 421: %v, want EOF", err)
		}
	})
	t.Run("554", func(t *testing.T) {
		c := dialSMTP(t, n, ips["554"])
		if code, _ := c.banner(); code != 554 {
			t.Errorf("banner code %d", code)
		}
		c.expect(503, "EHLO scanner.test")
		c.expect(221, "QUIT")
	})
}

func TestSMTPCounters(t *testing.T) {
	t.Parallel()
	var a, b netip.Addr
	n, _ := start(t, func(bd *Builder) {
		a = bd.Host("a.example.test", SMTPHost{})
		b = bd.Host("b.example.test", SMTPHost{})
	})
	var conns []*smtpClient
	for _, ip := range []netip.Addr{a, a, a, b} {
		c := dialSMTP(t, n, ip)
		c.banner() // the server has counted the connection
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.expect(221, "QUIT")
	}
	c := dialSMTP(t, n, b)
	c.banner()
	got := n.Counters()
	if got.SMTPConnections != 5 || got.ConnsPerIP[a] != 3 || got.ConnsPerIP[b] != 2 {
		t.Errorf("connections %d, per IP %v", got.SMTPConnections, got.ConnsPerIP)
	}
	if got.MaxConcurrentPerIP[a] != 3 || got.MaxConcurrentPerIP[b] < 1 || got.MaxConcurrency() != 3 {
		t.Errorf("max concurrent %v", got.MaxConcurrentPerIP)
	}
	if got.PeakConnRate < 1 || got.PeakConnRate > 5 {
		t.Errorf("peak rate %d", got.PeakConnRate)
	}
}

func TestRTT(t *testing.T) {
	t.Parallel()
	const rtt = 15 * time.Millisecond
	b := NewBuilder(nil)
	ip := b.Host("mx.example.test", SMTPHost{})
	sc, err := b.Scenario()
	if err != nil {
		t.Fatal(err)
	}
	sc.RTT = rtt
	n := StartT(t, sc)

	start := time.Now()
	c := dialSMTP(t, n, ip)
	c.banner()                                               // 1
	c.expect(250, "EHLO scanner.test")                       // 2
	c.expect(220, "STARTTLS")                                // 3
	if _, err := c.StartTLS("mx.example.test"); err != nil { // 4: the server flight
		t.Fatal(err)
	}
	c.expect(250, "EHLO scanner.test")                            // 5
	c.expect(221, "QUIT")                                         // 6
	mustQuery(t, n, "mx.example.test", dns.TypeA, QueryOptions{}) // 7
	if d := time.Since(start); d < 7*rtt {
		t.Errorf("took %v, want at least 7 RTT", d)
	}
	if got := n.Counters().RoundTrips; got != 7 {
		t.Errorf("RoundTrips = %d, want 7", got)
	}
}
