package smtpprobe

import (
	"bufio"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	ztls "github.com/zmap/zcrypto/tls"

	"github.com/tlsready/tlsready/scanner/dnsname"
	"github.com/tlsready/tlsready/scanner/result"
)

// Defaults of the zero Config fields.
const (
	DefaultPort           = 25
	DefaultHELO           = "tlsready.invalid"
	DefaultConnectTimeout = 10 * time.Second
	DefaultBannerTimeout  = 30 * time.Second
	DefaultCommandTimeout = 30 * time.Second
	DefaultTimeout        = 90 * time.Second

	// quitTimeout bounds the goodbye (QUIT and its reply).
	quitTimeout = 2 * time.Second
	// drainTimeout bounds the wait for the server's close after ours, and
	// maxDrain the bytes read meanwhile (see closeGracefully).
	drainTimeout = time.Second
	maxDrain     = 64 << 10
	// afterTLSTimeout bounds the EHLO after a completed handshake (at most
	// CommandTimeout): the outcome is known, this is courtesy.
	afterTLSTimeout = 5 * time.Second
)

// Validate reports what is wrong with c, if anything. Probe does not dial
// with an invalid Config.
func (c Config) Validate() error {
	if c.Port < 0 || c.Port > 65535 {
		return fmt.Errorf("smtpprobe: port %d out of range", c.Port)
	}
	if c.HELO != "" && !validHELO(c.HELO) {
		return errors.New("smtpprobe: HELO must be a domain name or address literal without spaces or control characters")
	}
	if c.ConnectTimeout < 0 || c.BannerTimeout < 0 || c.CommandTimeout < 0 || c.Timeout < 0 {
		return errors.New("smtpprobe: negative timeout")
	}
	return nil
}

func validHELO(s string) bool {
	if len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

func (c Config) withDefaults() Config {
	c.Port = cmp.Or(c.Port, DefaultPort)
	c.HELO = cmp.Or(c.HELO, DefaultHELO)
	c.ConnectTimeout = cmp.Or(c.ConnectTimeout, DefaultConnectTimeout)
	c.BannerTimeout = cmp.Or(c.BannerTimeout, DefaultBannerTimeout)
	c.CommandTimeout = cmp.Or(c.CommandTimeout, DefaultCommandTimeout)
	c.Timeout = cmp.Or(c.Timeout, DefaultTimeout)
	if c.Dialer == nil {
		c.Dialer = &net.Dialer{}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Probe probes one MX IP: banner, EHLO (HELO when EHLO is rejected),
// STARTTLS when the EHLO reply lists it, the TLS handshake with sni (the MX
// host name, no trailing dot) as SNI, EHLO again over TLS, QUIT. It never
// sends MAIL, RCPT or DATA, and never returns nil: the result is filled as far
// as the probe got, with a Status and, unless ok, a short Error.
//
// When the handshake on Go's crypto/tls fails (other than by the probe's own
// deadline) and cfg.NoLegacyRetry is false, the whole dialogue is repeated
// once, after the first connection is closed, with a second TLS stack
// (zcrypto, see fallback.go): at most two connections per probe. Retried says
// so. When only the second stack completed, TLS.Stack is
// result.StackFallback, TLS.Legacy is set and Alert says why the first
// attempt failed. When it failed too, the probe is ProbeHandshakeFailed only
// if the server refused (an OpenSSL-based sender fails too, docs/verdicts.md);
// when the failure is on the scanner's side, or the second attempt never got
// to its handshake, it is ProbeNotJudged (still Reachable).
//
// Every step has its own absolute deadline (BannerTimeout, CommandTimeout),
// the probe as a whole is bounded by cfg.Timeout and ctx; every reply is
// bounded to MaxReplyLines lines of MaxLineLen bytes.
func Probe(ctx context.Context, cfg Config, sni string, ip netip.Addr) *result.Probe {
	cfg = cfg.withDefaults()
	sni = dnsname.Key(sni)
	p := &result.Probe{IP: ip, SNI: sni, StartedAt: cfg.Now()}
	switch err := cfg.Validate(); {
	case err != nil:
		p.Status = result.ProbeConnectFailed
		p.Error = "invalid config: " + err.Error()
		return p
	case !ip.IsValid():
		p.Status = result.ProbeConnectFailed
		p.Error = "invalid IP address"
		return p
	}
	// The first attempt's OnConnect (a rate limiter may block in it) runs
	// before the probe's clock starts.
	if expired(ctx) == nil && cfg.OnConnect != nil {
		cfg.OnConnect()
	}
	start := time.Now()
	p.StartedAt = cfg.Now()
	defer func() { p.Duration = time.Since(start) }()
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()

	retry := attempt(ctx, &cfg, p, goStack)
	if !retry || cfg.NoLegacyRetry {
		return p
	}
	// docs/verdicts.md: STARTTLS is judged as an OpenSSL-based sender would
	// negotiate. Go's failure alone does not say that such a sender fails,
	// so from here on the outcome is ok, a refusal seen by the second stack
	// too, or not judged.
	if err := expired(ctx); err != nil {
		p.Status = result.ProbeNotJudged
		p.Error += " (no retry: " + reason(ctx, err) + ")"
		return p
	}
	p.Retried = true
	q := &result.Probe{IP: ip, SNI: sni, StartedAt: p.StartedAt}
	if cfg.OnConnect != nil {
		cfg.OnConnect()
	}
	attempt(ctx, &cfg, q, fallbackStack)
	switch q.Status {
	case result.ProbeOK:
		q.TLS.Legacy = true
		q.Retried = true
		q.Alert = p.Alert // why the first attempt failed
		*p = *q
		return p
	case result.ProbeHandshakeFailed:
		// The server refused the second stack's OpenSSL-like offer too.
	default:
		// The second stack failed on our side, or the second connection
		// never got to a handshake (refused, timed out, 4xx, ...).
		p.Status = result.ProbeNotJudged
	}
	if q.Error != "" {
		p.Error += " (retry: " + q.Error + ")"
	}
	return p
}

// session is one connection's dialogue.
type session struct {
	ctx  context.Context
	cfg  *Config
	p    *result.Probe
	conn *guardedConn
	br   *bufio.Reader
	w    io.Writer // conn, or the TLS connection after STARTTLS
}

// attempt runs one dialogue on a new connection with the TLS stack st,
// filling p. It reports whether the TLS handshake failed in a way the second
// stack might not (any failure but the probe's own deadline).
// The caller has called cfg.OnConnect.
func attempt(ctx context.Context, cfg *Config, p *result.Probe, st tlsStack) (retry bool) {
	if err := expired(ctx); err != nil {
		p.Status = result.ProbeTimeout
		p.Error = "connect: " + reason(ctx, err)
		return false
	}
	dctx, dcancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	raw, err := cfg.Dialer.DialContext(dctx, "tcp", netip.AddrPortFrom(p.IP.Unmap(), uint16(cfg.Port)).String())
	dcancel()
	if err != nil {
		p.Status = result.ProbeConnectFailed
		if expired(ctx) != nil { // the probe's time is up, not the server's fault
			p.Status = result.ProbeTimeout
		}
		p.Error = "connect: " + reason(ctx, err)
		return false
	}
	conn := &guardedConn{Conn: raw}
	stop := context.AfterFunc(ctx, conn.stop)
	defer func() {
		conn.closeGracefully(drainDeadline(ctx))
		stop()
	}()
	s := &session{ctx: ctx, cfg: cfg, p: p, conn: conn, br: bufio.NewReader(conn), w: conn}
	return s.run(st)
}

func (s *session) run(st tlsStack) (retry bool) {
	p := s.p

	// Banner (RFC 5321 §4.3.1: 220, or 554/4xx refusing service).
	code, lines, err := s.reply(s.cfg.BannerTimeout)
	if err != nil {
		switch {
		case isTimeout(err) || expired(s.ctx) != nil:
			p.Status = result.ProbeTimeout
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isReset(err):
			p.Status = result.ProbeConnectFailed // accepted, but no SMTP server spoke
		default:
			p.Status = result.ProbeProtocolError
		}
		p.Error = "banner: " + reason(s.ctx, err)
		if p.Status == result.ProbeProtocolError {
			s.quit(false) // not SMTP, or not in bounds: goodbye without waiting
		}
		return false
	}
	p.BannerCode = code
	p.Banner = sanitize(strconv.Itoa(code)+" "+lines[0], maxStoredLen)
	switch {
	case code == 220:
		// Not yet reachable: a sender needs a 250 to EHLO or HELO on this
		// connection before it can send anything (docs/verdicts.md).
	case code >= 400:
		p.Status = result.ProbeBannerRefused
		p.Error = "banner refused"
		s.quit(true)
		return false
	default:
		p.Status = result.ProbeProtocolError
		p.Error = "banner: unexpected code " + strconv.Itoa(code)
		s.quit(true)
		return false
	}

	// EHLO, or HELO when EHLO is not understood (RFC 5321 §3.2).
	code, lines, err = s.command("EHLO "+s.cfg.HELO, s.cfg.CommandTimeout)
	if err != nil {
		s.fail("EHLO", err)
		return false
	}
	p.EHLOCode = code
	switch {
	case code == 250:
		p.EHLO = ParseEHLO(lines)
	case code >= 500:
		code, lines, err = s.command("HELO "+s.cfg.HELO, s.cfg.CommandTimeout)
		if err != nil {
			s.fail("HELO", err)
			return false
		}
		p.EHLOCode = code
		if code != 250 {
			s.refused("HELO", code, lines)
			return false
		}
	default:
		s.refused("EHLO", code, lines)
		return false
	}
	p.Reachable = true

	// STARTTLS (RFC 3207) only when listed as a keyword.
	p.STARTTLSOffered = slices.Contains(p.EHLO, "STARTTLS")
	if !p.STARTTLSOffered {
		p.Status = result.ProbeNoSTARTTLS
		if p.EHLO == nil {
			p.Error = "EHLO rejected; HELO accepted"
		} else {
			p.Error = "STARTTLS not in EHLO reply"
		}
		s.quit(true)
		return false
	}
	code, lines, err = s.command("STARTTLS", s.cfg.CommandTimeout)
	if err != nil {
		s.fail("STARTTLS", err)
		return false
	}
	p.STARTTLSReply = sanitize(strconv.Itoa(code)+" "+lines[0], maxStoredLen)
	if code != 220 {
		p.Status = result.ProbeSTARTTLSRefused
		p.Error = "STARTTLS refused"
		s.quit(true)
		return false
	}

	// TLS handshake, on stack st. Bytes the server sent after its 220 are
	// still in br and go to TLS, which then fails on them as a handshake
	// error.
	s.conn.step(s.deadline(s.cfg.CommandTimeout))
	tc, err := st.handshake(&bufferedConn{Conn: s.conn, r: s.br}, p.SNI)
	if err != nil {
		switch {
		case expired(s.ctx) != nil:
			p.Status = result.ProbeTimeout
		case notJudged(err):
			p.Status = result.ProbeNotJudged
		default:
			p.Status = result.ProbeHandshakeFailed
			retry = true
		}
		if a, ok := remoteAlert(err); ok {
			p.Alert = alertName(a)
		}
		p.Error = "TLS handshake: " + reason(s.ctx, err)
		return retry
	}
	p.Status = result.ProbeOK
	p.TLS = tc.info(s.cfg)
	p.TLS.Stack = st.name

	// RFC 3207 §4.2: the client SHOULD send EHLO again; then say goodbye.
	// Failures here do not change the outcome.
	s.br = bufio.NewReader(tc)
	s.w = tc
	if _, _, err := s.command("EHLO "+s.cfg.HELO, min(s.cfg.CommandTimeout, afterTLSTimeout)); err == nil {
		s.quit(true)
	} else if !isTimeout(err) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		s.quit(false)
	}
	s.conn.step(s.deadline(quitTimeout))
	// close_notify, keeping the TCP connection for attempt's graceful close.
	if cw, ok := tc.Conn.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	} else {
		tc.Close()
	}
	return false
}

// fail records a failed command or reply after the banner and says goodbye
// when the dialogue is still in a state for it.
func (s *session) fail(step string, err error) {
	p := s.p
	p.Error = step + ": " + reason(s.ctx, err)
	switch {
	case isTimeout(err) || expired(s.ctx) != nil:
		p.Status = result.ProbeTimeout
		if expired(s.ctx) == nil {
			s.quit(false)
		}
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isReset(err):
		p.Status = result.ProbeProtocolError
	default: // garbage, overlong
		p.Status = result.ProbeProtocolError
		s.quit(false)
	}
}

// refused records a 4xx/5xx (or unexpected) reply to EHLO or HELO: the
// server refuses the session after its greeting. A sender defers (4xx) or
// gives up on this IP (5xx); either way nothing is sent in plaintext, so
// the IP is not reachable (docs/verdicts.md).
func (s *session) refused(step string, code int, lines []string) {
	if code >= 400 {
		s.p.Status = result.ProbeEHLORefused
	} else {
		s.p.Status = result.ProbeProtocolError
	}
	s.p.Error = step + " refused: " + sanitize(strconv.Itoa(code)+" "+lines[0], maxStoredLen)
	s.quit(true)
}

// command sends one command line and reads its reply within timeout.
func (s *session) command(cmd string, timeout time.Duration) (int, []string, error) {
	s.conn.step(s.deadline(timeout))
	if _, err := io.WriteString(s.w, cmd+"\r\n"); err != nil {
		return 0, nil, err
	}
	return ReadReply(s.br, MaxReplyLines, MaxLineLen)
}

// reply reads one reply within timeout.
func (s *session) reply(timeout time.Duration) (int, []string, error) {
	s.conn.step(s.deadline(timeout))
	return ReadReply(s.br, MaxReplyLines, MaxLineLen)
}

// quit sends QUIT (RFC 5321 §4.1.1.10) within a short deadline and, when
// wait is set, reads the reply; errors are ignored.
func (s *session) quit(wait bool) {
	s.conn.step(s.deadline(quitTimeout))
	if _, err := io.WriteString(s.w, "QUIT\r\n"); err != nil || !wait {
		return
	}
	if code, _, err := ReadReply(s.br, MaxReplyLines, MaxLineLen); err == nil && code == 221 {
		s.conn.said221 = true // the server closes now: worth waiting for
	}
}

// deadline is now+d, but never after the probe's deadline.
func (s *session) deadline(d time.Duration) time.Time {
	t := time.Now().Add(d)
	if pd, ok := s.ctx.Deadline(); ok && pd.Before(t) {
		return pd
	}
	return t
}

// guardedConn sets per-step deadlines that ctx cancellation overrides: once
// stopped, every deadline is in the past, so blocked I/O returns at once.
type guardedConn struct {
	net.Conn
	mu      sync.Mutex
	stopped bool
	said221 bool // the server answered QUIT with 221 (set by the session's goroutine)
}

var longAgo = time.Unix(1, 0)

func (g *guardedConn) step(t time.Time) { _ = g.set(g.Conn.SetDeadline, t) }

// set calls one of the connection's deadline setters with t, or with a
// time long past once stopped.
func (g *guardedConn) set(deadline func(time.Time) error, t time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopped {
		t = longAgo
	}
	return deadline(t)
}

// SetDeadline, SetReadDeadline and SetWriteDeadline (used by crypto/tls, e.g.
// for close_notify) cannot undo a stop.
func (g *guardedConn) SetDeadline(t time.Time) error {
	g.step(t)
	return nil
}

func (g *guardedConn) SetReadDeadline(t time.Time) error {
	return g.set(g.Conn.SetReadDeadline, t)
}

func (g *guardedConn) SetWriteDeadline(t time.Time) error {
	return g.set(g.Conn.SetWriteDeadline, t)
}

// closeGracefully ends the connection so that the server has seen it end
// before the next connection to the same IP opens (one connection at a time,
// as the server counts them): after a 221 to QUIT, when the server closes at
// once, our FIN, then the server's close awaited until deadline, bounded in
// bytes; then close. Without a 221 (a silent or broken server) it just closes.
func (g *guardedConn) closeGracefully(deadline time.Time) {
	if cw, ok := g.Conn.(interface{ CloseWrite() error }); ok && g.said221 {
		g.step(deadline)
		if cw.CloseWrite() == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(g.Conn, maxDrain))
		}
	}
	g.Conn.Close()
}

// drainDeadline is drainTimeout from now, but never after ctx's deadline.
func drainDeadline(ctx context.Context) time.Time {
	t := time.Now().Add(drainTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(t) {
		return d
	}
	return t
}

func (g *guardedConn) stop() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.stopped = true
	_ = g.Conn.SetDeadline(longAgo)
}

// bufferedConn reads through the SMTP reader first, so no byte the server
// sent is lost when TLS takes over the connection.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// expired returns ctx's error, or context.DeadlineExceeded once its deadline
// has passed even if ctx's timer has not fired yet (a connection deadline set
// to the same instant may fire first).
func expired(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}

func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	ne, ok := errors.AsType[net.Error](err)
	return ok && ne.Timeout()
}

func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNABORTED)
}

// reason is a short human reason for err, classified by type.
func reason(ctx context.Context, err error) string {
	switch {
	case errors.Is(err, ErrLineTooLong):
		return "reply line too long"
	case errors.Is(err, ErrTooManyLines):
		return "too many reply lines"
	case errors.Is(err, ErrMalformedReply):
		return "malformed reply"
	case errors.Is(err, context.Canceled) || errors.Is(expired(ctx), context.Canceled):
		return "canceled"
	case errors.Is(expired(ctx), context.DeadlineExceeded):
		return "probe timeout"
	case isTimeout(err) || errors.Is(err, syscall.ETIMEDOUT):
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ENETUNREACH):
		return "network unreachable"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "host unreachable"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNABORTED):
		return "connection reset"
	case errors.Is(err, syscall.EPIPE):
		return "broken pipe"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed"
	}
	if a, ok := remoteAlert(err); ok {
		return "server sent alert " + alertName(a)
	}
	if _, ok := errors.AsType[tls.RecordHeaderError](err); ok {
		return "server did not speak TLS"
	}
	if _, ok := errors.AsType[ztls.RecordHeaderError](err); ok {
		return "server did not speak TLS"
	}
	if errno, ok := errors.AsType[syscall.Errno](err); ok {
		return errno.Error()
	}
	// An error the TLS stacks have no type for (e.g. no common version or
	// suite): its own text, bounded.
	return sanitize(err.Error(), 120)
}
