package scantest

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// fuzzWorld is a small world shared by the fuzz targets.
func fuzzWorld(f *testing.F) *Internet {
	b := NewBuilder(nil)
	b.MailDomain("example.test", SMTPHost{}, SMTPHost{NoSTARTTLS: true})
	b.Secure("example.test")
	b.DANE("mx1.example.test", 3, 1, 1)
	b.Zone("alias.example.test. 300 IN CNAME mx1.example.test.",
		"loop.example.test. 300 IN CNAME loop.example.test.",
		`example.test. 300 IN TXT "v=spf1 -all"`)
	b.Fault("servfail.example.test", FaultServfail)
	b.Fault("timeout.example.test", FaultTimeout)
	b.Fault("wrongid.example.test", FaultWrongID)
	sc, err := b.Scenario()
	if err != nil {
		f.Fatal(err)
	}
	sc.IdleTimeout = time.Second
	n, err := Start(sc)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { n.Close() })
	return n
}

// FuzzDNSQuery feeds arbitrary DNS messages to the DNS handler: it must
// never panic, and every answer it gives must pack, fit the UDP size and
// answer the query's ID.
func FuzzDNSQuery(f *testing.F) {
	for _, q := range []struct {
		name  string
		qtype uint16
		do    bool
	}{
		{"example.test.", dns.TypeMX, true},
		{"alias.example.test.", dns.TypeA, false},
		{"loop.example.test.", dns.TypeA, false},
		{"_25._tcp.mx1.example.test.", dns.TypeTLSA, true},
		{"servfail.example.test.", dns.TypeA, false},
		{".", dns.TypeANY, false},
	} {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qtype)
		if q.do {
			m.SetEdns0(1232, true)
		}
		p, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(p, false)
		f.Add(p, true)
	}
	n := fuzzWorld(f)
	f.Fuzz(func(t *testing.T, data []byte, udp bool) {
		req := new(dns.Msg)
		if req.Unpack(data) != nil {
			return
		}
		resp := n.dns.answer(req, udp)
		if resp == nil {
			return
		}
		out, err := resp.Pack()
		if err != nil {
			t.Fatalf("answer does not pack: %v\n%v", err, resp)
		}
		if limit := 512; udp && req.IsEdns0() == nil && len(out) > limit {
			t.Fatalf("UDP answer of %d bytes without EDNS0", len(out))
		}
		if resp.Id != req.Id && resp.Id != req.Id+1 {
			t.Fatalf("answer ID %d for query %d", resp.Id, req.Id)
		}
	})
}

// replyLine is a well-formed SMTP reply line (RFC 5321 §4.2).
var replyLine = regexp.MustCompile(`^[2-5][0-9][0-9][ -][^\r\n]*\r\n$`)

// FuzzSMTPSession runs the SMTP server over an arbitrary client byte
// stream: it must end, write only well-formed reply lines, and never accept
// MAIL, RCPT or DATA.
func FuzzSMTPSession(f *testing.F) {
	for _, s := range []string{
		"EHLO a\r\nSTARTTLS\r\n\x16\x03\x01\x00\x05hello",
		"HELO a\r\nMAIL FROM:<>\r\nRCPT TO:<x@y>\r\nDATA\r\nQUIT\r\n",
		"ehlo a\nnoop\nrset\nhelp\nvrfy x\n\n  \r\nQUIT\n",
		"EHLO " + string(bytes.Repeat([]byte("a"), 5000)) + "\r\nQUIT\r\n",
		"STARTTLS extra\r\nSTARTTLS\r\n",
	} {
		f.Add([]byte(s))
	}
	n := fuzzWorld(f)
	st := &smtpHostState{h: SMTPHost{Name: "mx.fuzz.test"}, ca: n.CA}
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &scriptConn{in: bytes.NewReader(data)}
		sess := &smtpSession{n: n, st: st, h: &st.h, raw: c}
		sess.run()
		out := c.out.Bytes()
		// After "220" to STARTTLS the stream is TLS (alerts), not lines.
		if i := bytes.Index(out, []byte(startTLSReady)); i >= 0 {
			out = out[:i+len(startTLSReady)]
		}
		sc := bufio.NewScanner(bytes.NewReader(out))
		sc.Split(scanCRLF)
		for sc.Scan() {
			l := sc.Text()
			if !replyLine.MatchString(l) {
				t.Fatalf("bad reply line %q", l)
			}
			if strings.HasPrefix(l, "354") || strings.HasPrefix(l, "250 2.1.") {
				t.Fatalf("server accepted a transaction: %q", l)
			}
		}
	})
}

// scanCRLF splits after each LF, keeping the line end.
func scanCRLF(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return i + 1, data[:i+1], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// scriptConn is a net.Conn reading a fixed script and recording writes.
type scriptConn struct {
	in  *bytes.Reader
	out bytes.Buffer
}

func (c *scriptConn) Read(p []byte) (int, error) { return c.in.Read(p) }
func (c *scriptConn) Write(p []byte) (int, error) {
	if c.out.Len() > 1<<20 {
		return 0, os.ErrDeadlineExceeded
	}
	return c.out.Write(p)
}
func (c *scriptConn) Close() error        { return nil }
func (c *scriptConn) LocalAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 25} }
func (c *scriptConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4242}
}
func (c *scriptConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }
