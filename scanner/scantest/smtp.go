package scantest

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// maxLine bounds an SMTP command line (RFC 5321 §4.5.3.1.4: 512 octets;
// we are lenient).
const maxLine = 4096

// startTLSReady is the default reply to STARTTLS.
const startTLSReady = "220 2.0.0 Ready to start TLS\r\n"

// smtpServer serves every SMTP host on one wildcard port.
type smtpServer struct {
	n     *Internet
	ln    net.Listener
	port  int
	hosts map[netip.Addr]*smtpHostState
	t     tracker
}

// smtpHostState is a host and its lazily issued certificates.
type smtpHostState struct {
	h       SMTPHost
	ca      *CA
	once    sync.Once
	cert    *tls.Certificate
	certErr error
	conns   atomic.Int64 // connections served so far (TempFailFirst)

	sniMu    sync.Mutex
	sniCerts map[string]*tls.Certificate // by SNI, issued on first use

	legacy legacyCert // LegacyTLS's RSA certificate (legacytls.go)
}

// certificateFor returns the certificate presented to a client that sent
// serverName: the SNI map's, or the default one.
func (st *smtpHostState) certificateFor(serverName string) (*tls.Certificate, error) {
	name := canonicalHost(serverName)
	kind, ok := st.h.SNICerts[name]
	if !ok {
		for n, k := range st.h.SNICerts {
			if canonicalHost(n) == name {
				kind, ok = k, true
				break
			}
		}
	}
	if !ok {
		return st.certificate()
	}
	st.sniMu.Lock()
	defer st.sniMu.Unlock()
	if c := st.sniCerts[name]; c != nil {
		return c, nil
	}
	c, err := CertFor(st.ca, kind, name)
	if err != nil {
		return nil, err
	}
	if st.sniCerts == nil {
		st.sniCerts = map[string]*tls.Certificate{}
	}
	st.sniCerts[name] = &c
	return &c, nil
}

// canonicalHost is a host name in lower case without the trailing dot.
func canonicalHost(name string) string {
	return strings.TrimSuffix(strings.ToLower(name), ".")
}

func (st *smtpHostState) certificate() (*tls.Certificate, error) {
	st.once.Do(func() {
		if st.h.Certificate != nil {
			c := *st.h.Certificate
			st.cert = &c
		} else {
			c, err := CertFor(st.ca, st.h.Cert, st.h.Name)
			if err != nil {
				st.certErr = err
				return
			}
			st.cert = &c
		}
		if st.h.HugeChain > 0 {
			chain := append([][]byte(nil), st.cert.Certificate...)
			for range st.h.HugeChain {
				chain = append(chain, st.ca.Cert.Raw)
			}
			st.cert.Certificate = chain
		}
	})
	return st.cert, st.certErr
}

func startSMTP(n *Internet, hosts map[netip.Addr]SMTPHost) (*smtpServer, error) {
	s := &smtpServer{n: n, hosts: make(map[netip.Addr]*smtpHostState, len(hosts))}
	for ip, h := range hosts {
		s.hosts[ip] = &smtpHostState{h: h, ca: n.CA}
	}
	var err error
	if s.ln, s.port, err = listenWildcard(); err != nil {
		return nil, err
	}
	s.t.enter()
	go s.acceptLoop()
	return s, nil
}

func (s *smtpServer) close() error {
	err := s.ln.Close()
	s.t.shutdown()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

func (s *smtpServer) acceptLoop() {
	defer s.t.leave()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors or similar: back off a little.
			if !s.n.sleep(10 * time.Millisecond) {
				return
			}
			continue
		}
		if !addrIP(c.RemoteAddr()).IsLoopback() {
			c.Close()
			continue
		}
		if !s.t.enter() {
			c.Close()
			return
		}
		if !s.t.addConn(c) {
			c.Close()
			s.t.leave()
			return
		}
		go func() {
			defer s.t.leave()
			defer s.t.removeConn(c)
			defer c.Close()
			s.serve(c)
		}()
	}
}

// reset closes c with an RST instead of a FIN.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}

func (s *smtpServer) serve(c net.Conn) {
	ip := addrIP(c.LocalAddr())
	s.n.stats.connOpen(ip)
	defer s.n.stats.connClose(ip)
	st := s.hosts[ip]
	if st == nil || st.h.Down {
		reset(c)
		return
	}
	sess := &smtpSession{n: s.n, st: st, h: &st.h, raw: c}
	sess.tempFail = st.conns.Add(1) <= int64(st.h.TempFailFirst)
	sess.run()
}

// smtpSession is one SMTP connection.
type smtpSession struct {
	n     *Internet
	st    *smtpHostState
	h     *SMTPHost
	raw   net.Conn // the TCP connection
	conn  net.Conn // the current layer: rttConn, then *tls.Conn
	br    *bufio.Reader
	inTLS bool
	// tempFail: this connection is one of the host's TempFailFirst.
	tempFail bool
}

// errQuit ends a session normally.
var errQuit = errors.New("quit")

func (s *smtpSession) run() {
	rc := newRTTConn(s.raw, s.n)
	s.conn = rc
	s.br = bufio.NewReaderSize(rc, maxLine)
	h := s.h
	if h.Silent {
		s.discard()
		return
	}
	if h.BannerDelay > 0 && !s.n.sleep(h.BannerDelay) {
		return
	}
	code := h.BannerCode
	code = cmp.Or(code, 220)
	if s.tempFail && !(h.EHLOCode >= 400 && h.EHLOCode < 500) {
		code = 451 // greylisted at the banner: come back later
	}
	text := h.Banner
	text = cmp.Or(text, h.Name+" ESMTP simulated")
	banner := fmt.Sprintf("%d %s\r\n", code, text)
	if h.DripBanner > 0 {
		for i := range len(banner) {
			if i > 0 && !s.n.sleep(h.DripBanner) {
				return
			}
			if s.write(banner[i:i+1]) != nil {
				return
			}
		}
	} else if s.write(banner) != nil {
		return
	}
	if code == 421 || code == 451 && s.tempFail {
		return // RFC 5321 §3.8: 421 and close
	}
	for {
		line, err := s.readLine()
		if errors.Is(err, bufio.ErrBufferFull) {
			// Like Postfix: drop the rest of the line (bounded), complain, go on.
			if s.skipLine(1<<20) != nil || s.write("500 5.5.2 Line too long\r\n") != nil {
				return
			}
			continue
		}
		if err != nil {
			return
		}
		verb, arg := parseCommand(line)
		s.n.stats.command(countedVerb(verb))
		if err := s.command(code, verb, arg); err != nil {
			return
		}
	}
}

// command handles one command; an error ends the session.
func (s *smtpSession) command(bannerCode int, verb, arg string) error {
	h := s.h
	if bannerCode != 220 && verb != "QUIT" {
		return s.write("503 5.5.1 No service\r\n")
	}
	if (verb == "EHLO" || verb == "HELO") && h.EHLOCode != 0 && h.EHLOCode != 250 && (s.tempFail || h.TempFailFirst == 0) {
		err := s.write(fmt.Sprintf("%d %s\r\n", h.EHLOCode, ehloRefusal(h.EHLOCode)))
		if err == nil && h.EHLOCode == 421 {
			err = errQuit
		}
		return err
	}
	switch verb {
	case "EHLO":
		if arg == "" {
			return s.write("501 5.5.4 Syntax: EHLO hostname\r\n")
		}
		switch {
		case h.CloseAfterEHLO:
			return errQuit
		case h.EndlessMultiline:
			s.endless()
			return errQuit
		case h.HugeLine > 0:
			s.hugeLine()
			return errQuit
		}
		lines := []string{h.Name + " greets " + printable(arg), "PIPELINING", "SIZE 52428800"}
		if !h.NoSTARTTLS && !s.inTLS {
			lines = append(lines, "STARTTLS")
		}
		lines = append(lines, "8BITMIME", "ENHANCEDSTATUSCODES")
		return s.write(multiline(250, lines))
	case "HELO":
		if arg == "" {
			return s.write("501 5.5.4 Syntax: HELO hostname\r\n")
		}
		return s.write("250 " + h.Name + "\r\n")
	case "STARTTLS":
		switch {
		case s.inTLS:
			return s.write("503 5.5.1 Already in TLS\r\n")
		case h.NoSTARTTLS:
			return s.write("502 5.5.1 Command not implemented\r\n")
		case arg != "":
			return s.write("501 5.5.4 Syntax: STARTTLS\r\n")
		}
		reply := h.STARTTLSReply + "\r\n"
		if h.STARTTLSReply == "" {
			reply = startTLSReady
		}
		if err := s.write(reply); err != nil {
			return err
		}
		if !strings.HasPrefix(reply, "220") {
			return nil
		}
		return s.startTLS()
	case "QUIT":
		_ = s.write("221 2.0.0 Bye\r\n")
		return errQuit
	case "RSET", "NOOP":
		return s.write("250 2.0.0 OK\r\n")
	case "MAIL", "RCPT", "DATA", "BDAT", "VRFY", "EXPN", "AUTH":
		// A scanner must never send these; they are counted and refused.
		return s.write("502 5.5.1 Command not implemented\r\n")
	case "HELP":
		return s.write("214 2.0.0 Simulated server\r\n")
	}
	return s.write("500 5.5.2 Command unrecognized\r\n")
}

// startTLS runs the server side of the handshake after a 220 to STARTTLS,
// or one of the hostile behaviours.
func (s *smtpSession) startTLS() error {
	h := s.h
	// RFC 3207 §4.2: discard anything the client pipelined after STARTTLS.
	s.br.Reset(s.conn)
	switch {
	case h.GarbageAfterSTARTTLS:
		if s.readRecord() == nil {
			_ = s.write("this is not TLS, this is a simulated broken server\r\n")
			s.discard()
		}
		return errQuit
	case h.AlertAfterSTARTTLS:
		if s.readRecord() == nil {
			// Fatal (2) handshake_failure (40) alert in a TLS 1.2 record.
			_, _ = s.conn.Write([]byte{21, 3, 3, 0, 2, 2, 40})
		}
		return errQuit
	case h.ResetInHandshake:
		if s.readRecord() == nil {
			reset(s.raw)
		}
		return errQuit
	}
	if h.LegacyTLS != "" {
		return s.legacyTLS() // zcrypto's server (legacytls.go)
	}
	cfg := &tls.Config{
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			s.n.stats.serverName(hello.ServerName)
			return s.st.certificateFor(hello.ServerName)
		},
		MinVersion:             h.MinVersion,
		MaxVersion:             h.MaxVersion,
		SessionTicketsDisabled: true, // no tickets: one server flight per handshake
	}
	return s.handshake(tls.Server(s.conn, cfg))
}

// handshake completes the server side of a TLS handshake (crypto/tls's or,
// for LegacyTLS, zcrypto's) and continues the session inside it.
func (s *smtpSession) handshake(tc interface {
	net.Conn
	Handshake() error
}) error {
	_ = s.raw.SetDeadline(time.Now().Add(s.n.idle))
	if err := tc.Handshake(); err != nil {
		return err
	}
	s.n.stats.tlsHandshakes.Add(1)
	s.conn, s.inTLS = tc, true
	s.br = bufio.NewReaderSize(tc, maxLine)
	if s.h.SilentAfterTLS {
		s.discard()
		return errQuit
	}
	return nil
}

// ehloRefusal is the text of a refusing reply to EHLO.
func ehloRefusal(code int) string {
	if code < 500 {
		return "4.7.0 Too many connections, try again later"
	}
	return "5.7.1 Go away"
}

// readRecord reads one TLS record (the ClientHello), bounded.
func (s *smtpSession) readRecord() error {
	_ = s.raw.SetReadDeadline(time.Now().Add(s.n.idle))
	var hdr [5]byte
	if _, err := io.ReadFull(s.br, hdr[:]); err != nil {
		return err
	}
	n := int(hdr[3])<<8 | int(hdr[4])
	_, err := io.CopyN(io.Discard, s.br, int64(min(n, 1<<14+2048)))
	return err
}

// endless answers EHLO with continuation lines until the client gives up.
func (s *smtpSession) endless() {
	var b bytes.Buffer
	for i := range 64 {
		fmt.Fprintf(&b, "250-X-FILLER-%02d the server keeps talking and never ends its reply\r\n", i)
	}
	for s.write(b.String()) == nil {
	}
}

// hugeLine sends one overlong line without CRLF, then waits.
func (s *smtpSession) hugeLine() {
	chunk := strings.Repeat("x", 32<<10)
	if s.write("250 ") != nil {
		return
	}
	for left := s.h.HugeLine - 4; left > 0; left -= len(chunk) {
		if s.write(chunk[:min(left, len(chunk))]) != nil {
			return
		}
	}
	s.discard()
}

// discard reads and drops input until the client leaves or goes idle.
func (s *smtpSession) discard() {
	for {
		_ = s.raw.SetReadDeadline(time.Now().Add(s.n.idle))
		if _, err := s.br.Discard(1); err != nil {
			return
		}
		if _, err := s.br.Discard(s.br.Buffered()); err != nil {
			return
		}
	}
}

func (s *smtpSession) write(text string) error {
	_ = s.raw.SetWriteDeadline(time.Now().Add(s.n.idle))
	_, err := io.WriteString(s.conn, text)
	return err
}

// readLine reads one CRLF (or LF) terminated line without the terminator.
// A line longer than maxLine is bufio.ErrBufferFull.
func (s *smtpSession) readLine() (string, error) {
	_ = s.raw.SetReadDeadline(time.Now().Add(s.n.idle))
	line, err := s.br.ReadSlice('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(line), "\r\n"), nil
}

// skipLine discards input up to and including the next LF, at most limit bytes.
func (s *smtpSession) skipLine(limit int) error {
	for limit > 0 {
		_ = s.raw.SetReadDeadline(time.Now().Add(s.n.idle))
		chunk, err := s.br.ReadSlice('\n')
		limit -= len(chunk)
		if err == nil {
			return nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return err
		}
	}
	return bufio.ErrBufferFull
}

// parseCommand splits an SMTP command line into its upper-case verb and
// argument (RFC 5321 §4.1.1).
func parseCommand(line string) (verb, arg string) {
	line = strings.TrimLeft(line, " \t")
	verb, arg, _ = strings.Cut(line, " ")
	return strings.ToUpper(verb), strings.TrimSpace(arg)
}

// countedVerb bounds the verbs counted in Counters.Commands.
func countedVerb(verb string) string {
	switch verb {
	case "EHLO", "HELO", "STARTTLS", "QUIT", "RSET", "NOOP", "MAIL", "RCPT", "DATA", "BDAT", "VRFY", "EXPN", "AUTH", "HELP":
		return verb
	}
	return "UNKNOWN"
}

// multiline formats a multi-line reply (RFC 5321 §4.2.1).
func multiline(code int, lines []string) string {
	var b strings.Builder
	c := strconv.Itoa(code)
	for i, l := range lines {
		sep := "-"
		if i == len(lines)-1 {
			sep = " "
		}
		b.WriteString(c + sep + l + "\r\n")
	}
	return b.String()
}

// printable replaces control characters (a bare CR would end a reply line
// early) and non-ASCII bytes in text echoed from the client.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r >= 0x7f {
			return '?'
		}
		return r
	}, s)
}
