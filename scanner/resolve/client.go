package resolve

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"github.com/tlsready/tlsready/scanner/limiter"
)

// Sentinel errors. Answer.Err wraps one of them; classify with errors.Is.
var (
	ErrConfig    = errors.New("resolve: invalid config")
	ErrNoServers = errors.New("resolve: no nameservers")
	ErrClosed    = errors.New("resolve: client closed")
	ErrBadName   = errors.New("resolve: invalid domain name")
	ErrTimeout   = errors.New("resolve: no reply in time")
	ErrNetwork   = errors.New("resolve: network error")
	ErrRefused   = errors.New("resolve: connection refused")
	ErrMalformed = errors.New("resolve: malformed reply")
	ErrMismatch  = errors.New("resolve: reply does not match query")
	ErrNXDomain  = errors.New("resolve: no such domain")
	ErrNoData    = errors.New("resolve: no records of the type")
	ErrRcode     = errors.New("resolve: resolver returned an error")
	ErrCNAMELoop = errors.New("resolve: cname loop")
	ErrCNAMELong = errors.New("resolve: cname chain too long")
)

// Defaults for the zero values of Config.
const (
	DefaultTimeout  = 2 * time.Second
	DefaultAttempts = 3
	DefaultMaxCNAME = 8
	DefaultUDPSize  = 1232 // DNS flag day 2020

	firstBackoff = 100 * time.Millisecond
	maxBackoff   = 2 * time.Second
	maxRate      = 1 << 24
)

// Config configures a Client. Zero values are documented per field.
type Config struct {
	// Servers are the recursive resolvers as "ip:port" (IPv6 bracketed);
	// required (see SystemServers). Attempts rotate through them in order.
	Servers []string
	// Timeout bounds one exchange (dial, write, read); 0: 2s.
	Timeout time.Duration
	// Attempts is the number of tries per query; 0: 3. Between attempts the
	// client backs off exponentially, starting at 100ms.
	Attempts int
	// Rate limits the DNS exchanges per second across the client; 0: unlimited.
	Rate int
	// TrustAD says whether the AD bit of replies is believed. nil: only when
	// every server is on loopback (RFC 6840 §5.7: the path to a non-local
	// validating resolver is not secure); false/true force it.
	TrustAD *bool
	// MaxCNAME bounds the length of a followed CNAME chain; 0: 8.
	MaxCNAME int
	// UDPSize is the EDNS0 UDP payload size advertised; 0: 1232.
	UDPSize uint16
	// Logger receives debug-level records only; nil: discard.
	Logger *slog.Logger

	// ratePer is the rate limiter's interval (tests shorten it); 0: 1s.
	ratePer time.Duration
}

// Validate reports what is wrong with cfg, wrapping ErrConfig.
func (cfg Config) Validate() error {
	if len(cfg.Servers) == 0 {
		return fmt.Errorf("%w: no servers", ErrConfig)
	}
	for _, s := range cfg.Servers {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return fmt.Errorf("%w: server %q is not ip:port: %w", ErrConfig, s, err)
		}
		if ap.Port() == 0 {
			return fmt.Errorf("%w: server %q has port 0", ErrConfig, s)
		}
	}
	switch {
	case cfg.Timeout < 0:
		return fmt.Errorf("%w: negative timeout", ErrConfig)
	case cfg.Attempts < 0:
		return fmt.Errorf("%w: negative attempts", ErrConfig)
	case cfg.Rate < 0 || cfg.Rate > maxRate:
		return fmt.Errorf("%w: rate %d out of range 0..%d", ErrConfig, cfg.Rate, maxRate)
	case cfg.MaxCNAME < 0:
		return fmt.Errorf("%w: negative max cname", ErrConfig)
	case cfg.UDPSize != 0 && cfg.UDPSize < dns.MinMsgSize:
		return fmt.Errorf("%w: udp size %d below %d", ErrConfig, cfg.UDPSize, dns.MinMsgSize)
	case cfg.ratePer < 0:
		return fmt.Errorf("%w: negative rate interval", ErrConfig)
	}
	return nil
}

// Client is the miekg/dns implementation of Resolver. It is safe for
// concurrent use.
type Client struct {
	servers  []string
	timeout  time.Duration
	attempts int
	trustAD  bool
	maxCNAME int
	udpSize  uint16
	log      *slog.Logger

	udp, tcp *dns.Client

	queries atomic.Int64

	// pool keeps idle UDP sockets per server for reuse (see udpConn).
	poolMu sync.Mutex
	pool   map[string][]*pooledConn

	limiter   *limiter.Limiter // nil when unlimited
	done      chan struct{}
	closeOnce sync.Once
}

var _ Resolver = (*Client)(nil)

// New validates cfg and returns a Client. Call Close when done with it.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Client{
		timeout:  cfg.Timeout,
		attempts: cfg.Attempts,
		maxCNAME: cfg.MaxCNAME,
		udpSize:  cfg.UDPSize,
		log:      cfg.Logger,
		done:     make(chan struct{}),
	}
	c.timeout = cmp.Or(c.timeout, DefaultTimeout)
	c.attempts = cmp.Or(c.attempts, DefaultAttempts)
	c.maxCNAME = cmp.Or(c.maxCNAME, DefaultMaxCNAME)
	c.udpSize = cmp.Or(c.udpSize, DefaultUDPSize)
	if c.log == nil {
		c.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	loopback := true
	for _, s := range cfg.Servers {
		ap := netip.MustParseAddrPort(s) // validated
		loopback = loopback && ap.Addr().Unmap().IsLoopback()
		c.servers = append(c.servers, ap.String())
	}
	c.trustAD = loopback
	if cfg.TrustAD != nil {
		c.trustAD = *cfg.TrustAD
	}
	c.udp = &dns.Client{Net: "udp", UDPSize: c.udpSize, Timeout: c.timeout}
	c.tcp = &dns.Client{Net: "tcp", Timeout: c.timeout}
	if cfg.Rate > 0 {
		per := cfg.ratePer
		per = cmp.Or(per, time.Second)
		c.limiter = limiter.New(uint(cfg.Rate), per)
	}
	return c, nil
}

// Queries returns the number of DNS exchanges sent so far (UDP and TCP each count).
func (c *Client) Queries() int64 { return c.queries.Load() }

// TrustsAD reports whether the AD bit of replies is believed.
func (c *Client) TrustsAD() bool { return c.trustAD }

// Close stops the rate limiter. Lookups after Close fail with ErrClosed.
func (c *Client) Close() {
	c.closeOnce.Do(func() {
		close(c.done)
		c.poolMu.Lock()
		for _, conns := range c.pool {
			for _, pc := range conns {
				_ = pc.Close()
			}
		}
		c.pool = nil
		c.poolMu.Unlock()
		if c.limiter != nil {
			c.limiter.Stop()
		}
	})
}

func (c *Client) closed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// take waits for a rate-limit token.
func (c *Client) take(ctx context.Context) error {
	if c.limiter == nil {
		return nil
	}
	err := c.limiter.Wait(ctx)
	if errors.Is(err, limiter.ErrStopped) {
		return ErrClosed
	}
	return err
}

// exchangeError is a failed exchange. Its text names the class only, never
// the server address that the underlying net error carries; errors.Is/As
// reach both the sentinel and the cause.
type exchangeError struct {
	sentinel error
	cause    error
}

func (e *exchangeError) Error() string   { return e.sentinel.Error() }
func (e *exchangeError) Unwrap() []error { return []error{e.sentinel, e.cause} }

func netFailure(err error) error {
	var ne net.Error
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return &exchangeError{ErrTimeout, err}
	case errors.Is(err, syscall.ECONNREFUSED):
		return &exchangeError{ErrRefused, err}
	default:
		return &exchangeError{ErrNetwork, err}
	}
}

// query sends one question with retries and returns a reply whose ID and
// question match, with rcode NOERROR, NXDOMAIN, or another rcode after its
// retry; or the error of the last attempt.
func (c *Client) query(ctx context.Context, qname string, qtype uint16) (*dns.Msg, error) {
	var (
		lastErr   error
		lastReply *dns.Msg
		rcodeTry  int
	)
	for attempt := range c.attempts {
		if attempt > 0 {
			if err := sleep(ctx, backoff(attempt)); err != nil {
				return nil, err
			}
		}
		server := c.servers[attempt%len(c.servers)]
		r, err := c.attempt(ctx, server, qname, qtype)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if errors.Is(err, ErrClosed) {
				return nil, err
			}
			c.log.Debug("dns attempt failed", "server", server, "name", qname,
				"type", dns.TypeToString[qtype], "attempt", attempt+1, "err", err)
			lastErr = err
			continue
		}
		switch r.Rcode {
		case dns.RcodeSuccess, dns.RcodeNameError:
			return r, nil
		case dns.RcodeServerFailure, dns.RcodeRefused:
			// Retried once more (on the next server, if any), then final.
			lastReply = r
			rcodeTry++
			c.log.Debug("dns error rcode", "server", server, "name", qname,
				"type", dns.TypeToString[qtype], "rcode", dns.RcodeToString[r.Rcode])
			if rcodeTry >= 2 {
				return r, nil
			}
		default:
			return r, nil
		}
	}
	if lastReply != nil {
		return lastReply, nil
	}
	return nil, lastErr
}

func backoff(attempt int) time.Duration {
	d := firstBackoff << (attempt - 1)
	if d > maxBackoff || d <= 0 {
		d = maxBackoff
	}
	return d
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// attempt is one try against one server: over UDP, and again over TCP when
// the UDP reply is truncated.
func (c *Client) attempt(ctx context.Context, server, qname string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(qname, qtype) // RD set, random ID
	m.SetEdns0(c.udpSize, true) // RFC 4035 §3.2.1: DO bit
	r, err := c.exchange(ctx, c.udp, server, m)
	if err != nil {
		return nil, err
	}
	if r.Truncated {
		r, err = c.exchange(ctx, c.tcp, server, m)
		if err != nil {
			return nil, err
		}
	}
	return r, nil
}

// exchange sends m once over cl's network and reads the matching reply.
// UDP replies are bounded by the UDP buffer (UDPSize); TCP replies by their
// 16-bit length prefix (64 KiB), both read by miekg/dns.
func (c *Client) exchange(ctx context.Context, cl *dns.Client, server string, m *dns.Msg) (*dns.Msg, error) {
	if err := c.take(ctx); err != nil {
		return nil, err
	}
	// The exchange's deadline is on the socket; ctx cancels it through
	// AfterFunc below. (No context.WithTimeout per exchange: its timer and
	// cancellation cost more than the query's own work.)
	deadline := time.Now().Add(c.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	udp := cl.Net == "udp"
	var co *dns.Conn
	var pc *pooledConn
	if udp {
		pc = c.getUDP(server)
	}
	if pc != nil {
		co = pc.Conn
	} else {
		dctx, cancel := context.WithDeadline(ctx, deadline)
		var err error
		co, err = cl.DialContext(dctx, server)
		cancel()
		if err != nil {
			return nil, netFailure(err)
		}
		if udp {
			pc = &pooledConn{Conn: co}
		}
	}
	reuse := false
	defer func() {
		if reuse {
			c.putUDP(server, pc)
			return
		}
		_ = co.Close()
	}()
	if err := co.SetDeadline(deadline); err != nil {
		return nil, netFailure(err)
	}
	if err := ctx.Err(); err != nil {
		return nil, netFailure(err)
	}
	if ctx.Done() != nil {
		// Cancelling ctx stops a blocked read or write at once.
		stop := context.AfterFunc(ctx, func() { _ = co.SetDeadline(time.Now()) })
		defer stop()
	}

	c.queries.Add(1)
	if err := co.WriteMsg(m); err != nil {
		return nil, netFailure(err)
	}
	var bad error
	for {
		var r *dns.Msg
		var err error
		if udp {
			r, err = pc.read(c.udpSize)
		} else {
			r, err = co.ReadMsg()
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				if bad != nil {
					// Only unusable replies arrived before the deadline.
					return nil, bad
				}
				return nil, netFailure(err)
			}
			bad = &exchangeError{ErrMalformed, err}
		} else if r.Id != m.Id || !r.Response || !questionMatches(m, r) {
			bad = &exchangeError{ErrMismatch, fmt.Errorf("id %d, response %t, %d questions", r.Id, r.Response, len(r.Question))}
		} else {
			// Only a socket that got exactly its reply goes back to the
			// pool: one that timed out may still receive a late answer.
			reuse = udp && bad == nil
			return r, nil
		}
		c.log.Debug("dns reply discarded", "server", server, "name", m.Question[0].Name, "net", cl.Net, "err", bad)
		if !udp {
			return nil, bad
		}
		// UDP: a forged or stale datagram must not end the wait for the
		// real reply (as Go's own resolver does); keep reading.
	}
}

// questionMatches checks the reply's question against the query's (RFC 5452
// §9.1: name case-insensitively, type, class). Error replies other than
// NXDOMAIN may omit the question.
func questionMatches(q, r *dns.Msg) bool {
	if len(r.Question) == 0 {
		return r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError
	}
	if len(r.Question) != 1 {
		return false
	}
	a, b := q.Question[0], r.Question[0]
	return a.Qtype == b.Qtype && a.Qclass == b.Qclass && strings.EqualFold(a.Name, b.Name)
}

// UDP sockets are reused for up to maxSocketUses queries each: opening and
// closing a socket per query costs more CPU than the query. A bounded reuse
// keeps source ports changing (RFC 5452 §9.2); IDs are random per query.
const (
	maxSocketUses = 64
	maxIdleUDP    = 256 // idle sockets kept per server
)

type pooledConn struct {
	*dns.Conn
	uses int
	buf  []byte // read buffer, reused for every reply on this socket
}

// read reads one UDP reply into the socket's buffer and unpacks it, as
// dns.Conn.ReadMsg does but without a new buffer per reply (Unpack copies
// what it keeps).
func (pc *pooledConn) read(size uint16) (*dns.Msg, error) {
	if pc.buf == nil {
		pc.buf = make([]byte, max(int(size), dns.MinMsgSize))
	}
	n, err := pc.Conn.Conn.Read(pc.buf)
	if err != nil {
		return nil, err
	}
	if n < 12 { // the header
		return nil, dns.ErrShortRead
	}
	m := new(dns.Msg)
	if err := m.Unpack(pc.buf[:n]); err != nil {
		return nil, err
	}
	return m, nil
}

func (c *Client) getUDP(server string) *pooledConn {
	c.poolMu.Lock()
	defer c.poolMu.Unlock()
	conns := c.pool[server]
	if len(conns) == 0 {
		return nil
	}
	pc := conns[len(conns)-1]
	c.pool[server] = conns[:len(conns)-1]
	return pc
}

func (c *Client) putUDP(server string, pc *pooledConn) {
	pc.uses++
	c.poolMu.Lock()
	defer c.poolMu.Unlock()
	if c.pool == nil && !c.closed() {
		c.pool = map[string][]*pooledConn{}
	}
	if c.closed() || pc.uses >= maxSocketUses || len(c.pool[server]) >= maxIdleUDP {
		_ = pc.Close()
		return
	}
	_ = pc.SetDeadline(time.Time{})
	c.pool[server] = append(c.pool[server], pc)
}
