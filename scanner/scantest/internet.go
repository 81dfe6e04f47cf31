package scantest

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ErrScenario is wrapped by errors about an invalid Scenario.
var ErrScenario = errors.New("scantest: invalid scenario")

// DNSFault is a misbehaviour of the DNS server for one owner name. It applies
// to every query type for that name and to answers whose CNAME chain passes
// through it.
type DNSFault string

// The DNS faults.
const (
	FaultServfail      DNSFault = "servfail"       // RCODE SERVFAIL
	FaultTimeout       DNSFault = "timeout"        // the query is dropped, never answered
	FaultRefused       DNSFault = "refused"        // RCODE REFUSED
	FaultTruncate      DNSFault = "truncate"       // over UDP: empty answer with TC; over TCP: the full answer
	FaultWrongID       DNSFault = "wrong-id"       // the answer's ID is the query's + 1 (a UDP client that skips it times out)
	FaultWrongQuestion DNSFault = "wrong-question" // the answer's question is "wrong-question.invalid."
)

func validFault(f DNSFault) bool {
	switch f {
	case FaultServfail, FaultTimeout, FaultRefused, FaultTruncate, FaultWrongID, FaultWrongQuestion:
		return true
	}
	return false
}

// SMTPHost is the SMTP server at one IP address. The zero value (with a Name)
// is a well-behaved server offering STARTTLS with a valid certificate.
type SMTPHost struct {
	Name        string        // host name: in the banner, the EHLO reply and the default certificate
	BannerCode  int           // 0: 220; after 421 the server closes, after others it answers 503 until QUIT (RFC 5321 §3.1)
	Banner      string        // text after the code; "": "<Name> ESMTP simulated"
	Silent      bool          // accept TCP, never send a banner, never answer
	BannerDelay time.Duration // wait before the banner
	Down        bool          // no server: the connection is accepted and reset at once
	NoSTARTTLS  bool          // STARTTLS not in the EHLO reply; the command gets 502
	// STARTTLSReply replaces the reply to STARTTLS, e.g. "454 4.7.0 TLS not
	// available"; "" is "220 2.0.0 Ready to start TLS". A TLS handshake
	// follows only when the reply's code is 220.
	STARTTLSReply string
	Cert          CertKind         // "": CertValid; issued for Name on first use
	Certificate   *tls.Certificate // overrides Cert when set (e.g. for DANE tests)
	// SNICerts makes the server choose its certificate by SNI, as shared
	// hosting does (Postfix tls_server_sni_maps, cPanel/Exim, one
	// certificate per customer): a client that sends one of these names gets
	// a certificate of that kind issued for that name; other names, and no
	// SNI, get the default certificate (Cert or Certificate, for Name).
	SNICerts map[string]CertKind
	// EHLOCode, when not 0, is the reply code to EHLO and HELO (e.g. 421:
	// "too many connections" after the greeting); after 421 the server closes.
	EHLOCode int
	// TempFailFirst makes the first TempFailFirst connections to this IP get
	// a 4xx (451 at the banner, or EHLOCode's 4xx to EHLO when EHLOCode is a
	// 4xx code) and later ones normal service: greylisting or a rate limit
	// that lifts.
	TempFailFirst int
	// MinVersion and MaxVersion bound the TLS versions (0: crypto/tls default);
	// an explicit MinVersion below TLS 1.2 enables TLS 1.0/1.1.
	MinVersion, MaxVersion uint16
	LegacyTLS              string // "": Go's crypto/tls server; "dhe-only": only finite-field DHE suites (TLS 1.2); "rsa-kx-only": only RSA key exchange suites (TLS 1.2)

	// Hostile behaviours, for the hardening tests; each optional.
	DripBanner           time.Duration // send the banner one byte every DripBanner
	EndlessMultiline     bool          // answer EHLO with "250-..." lines forever
	HugeLine             int           // answer EHLO with one line of this many bytes and no CRLF, then go quiet
	CloseAfterEHLO       bool          // close the connection on EHLO, without a reply
	GarbageAfterSTARTTLS bool          // answer 220 to STARTTLS, read the ClientHello, write non-TLS bytes
	AlertAfterSTARTTLS   bool          // answer 220, read the ClientHello, send a fatal handshake_failure alert
	ResetInHandshake     bool          // answer 220, read the ClientHello, reset the TCP connection
	SilentAfterTLS       bool          // complete the handshake, then never answer
	HugeChain            int           // append this many extra certificates (copies of the CA) to the chain
}

// HTTPSHost is an HTTPS server for one host name (SNI) at one IP: the MTA-STS
// policy server "mta-sts.<domain>" (RFC 8461 §3.3). Only the path
// /.well-known/mta-sts.txt exists; other paths get 404.
type HTTPSHost struct {
	Status      int           // 0: 200, or 301 when Redirect is set
	ContentType string        // "": "text/plain"
	Body        string        // the policy text
	Redirect    string        // when set, reply with this Location (and Status, default 301), no body
	Cert        CertKind      // "": CertValid; issued for the host name on first use
	BodyDelay   time.Duration // wait before sending the headers
	DripBody    time.Duration // send the body one byte every DripBody
	HugeBody    int           // send this many filler bytes ('#' comment lines) after Body
}

// Scenario describes a simulated world. Names are case-insensitive, with or
// without the trailing dot.
type Scenario struct {
	// CA issues every certificate the servers create from a CertKind. nil:
	// Start creates a new CA.
	CA *CA
	// Zone holds resource records in zone-file text, one per entry, e.g.
	// "example.test. 300 IN MX 10 mx1.example.test.". Owner names must be
	// absolute. Empty entries and comments are ignored.
	Zone []string
	// SecureZones: answers whose names are all at or under one of these zones
	// get the AD bit, when the query set DO (or AD).
	SecureZones []string
	// DNSFaults by owner name.
	DNSFaults map[string]DNSFault
	// SMTP hosts by IP (all in 127.0.0.0/8). Connections to other IPs are
	// accepted and reset.
	SMTP map[netip.Addr]SMTPHost
	// HTTPS hosts by IP, then by host name (SNI). A client that sends an
	// unknown SNI gets the host that sorts first at that IP.
	HTTPS map[netip.Addr]map[string]HTTPSHost
	// RTT is the simulated round-trip time. The model: the server waits RTT
	// before each write that follows a read (or opens the connection), i.e.
	// before every DNS answer, every SMTP reply (the banner included), the TLS
	// handshake's server flight, and every HTTP response. Each such wait is
	// one round trip in Counters.RoundTrips, counted also when RTT is 0.
	RTT time.Duration
	// IdleTimeout bounds every SMTP and HTTP read and write (0: 60s), so a
	// client that goes away leaks nothing.
	IdleTimeout time.Duration
}

// Validate says what is wrong with the scenario, if anything.
func (sc *Scenario) Validate() error {
	for name, f := range sc.DNSFaults {
		if !validFault(f) {
			return fmt.Errorf("%w: fault %q for %s", ErrScenario, f, name)
		}
	}
	for ip, h := range sc.SMTP {
		if !ip.Is4() || !ip.IsLoopback() {
			return fmt.Errorf("%w: SMTP host at %s: not in 127.0.0.0/8", ErrScenario, ip)
		}
		if !validKind(h.Cert) {
			return fmt.Errorf("%w: SMTP host at %s: cert kind %q", ErrScenario, ip, h.Cert)
		}
		for name, k := range h.SNICerts {
			if !validKind(k) || name == "" {
				return fmt.Errorf("%w: SMTP host at %s: SNI certificate %q kind %q", ErrScenario, ip, name, k)
			}
		}
		if h.EHLOCode != 0 && (h.EHLOCode < 200 || h.EHLOCode > 599) {
			return fmt.Errorf("%w: SMTP host at %s: EHLO code %d", ErrScenario, ip, h.EHLOCode)
		}
		if h.Name == "" && h.Certificate == nil && !h.Down && !h.Silent {
			return fmt.Errorf("%w: SMTP host at %s has no name", ErrScenario, ip)
		}
	}
	for ip, m := range sc.HTTPS {
		if !ip.Is4() || !ip.IsLoopback() {
			return fmt.Errorf("%w: HTTPS host at %s: not in 127.0.0.0/8", ErrScenario, ip)
		}
		for name, h := range m {
			if !validKind(h.Cert) {
				return fmt.Errorf("%w: HTTPS host %s: cert kind %q", ErrScenario, name, h.Cert)
			}
		}
	}
	if sc.RTT < 0 || sc.IdleTimeout < 0 {
		return fmt.Errorf("%w: negative duration", ErrScenario)
	}
	return nil
}

// Internet is a running simulated world. Close it when done.
type Internet struct {
	DNSAddr   string // "127.0.0.1:port", UDP and TCP
	SMTPPort  int    // one port for every SMTP host (any 127.x address)
	HTTPSPort int    // one port for every HTTPS host (any 127.x address)
	CA        *CA    // the CA every valid certificate chains to
	CAFile    string // PEM of CA, in a private temporary directory (mode 0600)

	rtt     time.Duration
	idle    time.Duration
	dir     string
	done    chan struct{} // closed by Close: aborts every simulated wait
	stats   *stats
	dns     *dnsServer
	smtp    *smtpServer
	https   *httpsServer
	closeMu sync.Mutex
	closed  bool
	err     error
}

// Info is the JSON description of a running Internet, for a process that
// hosts the world for another (the hidden `tlsready simnet` command).
type Info struct {
	DNS       string `json:"dns"`
	SMTPPort  int    `json:"smtp_port"`
	HTTPSPort int    `json:"https_port"`
	CAFile    string `json:"ca_file"`
}

// Info describes the running world.
func (n *Internet) Info() Info {
	return Info{DNS: n.DNSAddr, SMTPPort: n.SMTPPort, HTTPSPort: n.HTTPSPort, CAFile: n.CAFile}
}

// Start starts the simulated world: the DNS server on 127.0.0.1, the SMTP and
// HTTPS listeners on every address (connections from outside 127.0.0.0/8 are
// closed at once). Certificates are issued lazily, on first handshake.
func Start(sc Scenario) (n *Internet, err error) {
	if err := sc.Validate(); err != nil {
		return nil, err
	}
	z, err := buildZone(sc.Zone, sc.SecureZones, sc.DNSFaults)
	if err != nil {
		return nil, err
	}
	ca := sc.CA
	if ca == nil {
		if ca, err = NewCA("tlsready scantest CA"); err != nil {
			return nil, err
		}
	}
	n = &Internet{CA: ca, rtt: sc.RTT, idle: sc.IdleTimeout, done: make(chan struct{}), stats: newStats()}
	n.idle = cmp.Or(n.idle, 60*time.Second)
	defer func() {
		if err != nil {
			_ = n.Close()
			n = nil
		}
	}()
	if n.dir, err = os.MkdirTemp("", "scantest-"); err != nil {
		return n, fmt.Errorf("scantest: %w", err)
	}
	n.CAFile = filepath.Join(n.dir, "ca.pem")
	if err = os.WriteFile(n.CAFile, ca.PEM, 0o600); err != nil {
		return n, fmt.Errorf("scantest: %w", err)
	}
	if n.dns, err = startDNS(n, z); err != nil {
		return n, err
	}
	n.DNSAddr = n.dns.addr
	if n.smtp, err = startSMTP(n, sc.SMTP); err != nil {
		return n, err
	}
	n.SMTPPort = n.smtp.port
	if n.https, err = startHTTPS(n, sc.HTTPS); err != nil {
		return n, err
	}
	n.HTTPSPort = n.https.port
	return n, nil
}

// StartT starts the world for a test or benchmark, fails it on error and
// closes the world in t.Cleanup.
func StartT(t testing.TB, sc Scenario) *Internet {
	t.Helper()
	n, err := Start(sc)
	if err != nil {
		t.Fatalf("scantest.Start: %v", err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("scantest: Close: %v", err)
		}
	})
	return n
}

// Serve starts the world and closes it when ctx is done. Wait for the end
// with Done (or call Close earlier).
func Serve(ctx context.Context, sc Scenario) (*Internet, error) {
	n, err := Start(sc)
	if err != nil {
		return nil, err
	}
	go func() {
		select {
		case <-ctx.Done():
			_ = n.Close()
		case <-n.done:
		}
	}()
	return n, nil
}

// Done is closed when Close starts.
func (n *Internet) Done() <-chan struct{} { return n.done }

// Close stops every server, closes every connection, waits for every
// goroutine the world started and removes CAFile. It is safe to call more
// than once; later calls return the first result.
func (n *Internet) Close() error {
	n.closeMu.Lock()
	defer n.closeMu.Unlock()
	if n.closed {
		return n.err
	}
	n.closed = true
	close(n.done)
	var errs []error
	if n.dns != nil {
		errs = append(errs, n.dns.close())
	}
	if n.smtp != nil {
		errs = append(errs, n.smtp.close())
	}
	if n.https != nil {
		errs = append(errs, n.https.close())
	}
	if n.dir != "" {
		errs = append(errs, os.RemoveAll(n.dir))
	}
	n.err = errors.Join(errs...)
	return n.err
}

// sleep waits d, or less when the world closes; it reports whether the full
// time passed.
func (n *Internet) sleep(d time.Duration) bool {
	if d <= 0 {
		select {
		case <-n.done:
			return false
		default:
			return true
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-n.done:
		return false
	}
}

// roundTrip is one simulated round trip: count it and wait RTT.
func (n *Internet) roundTrip() bool {
	n.stats.roundTrips.Add(1)
	return n.sleep(n.rtt)
}

// Counters is a snapshot of what the world has seen.
type Counters struct {
	DNSQueries       int64            // queries received (UDP and TCP)
	DNSQueriesByType map[string]int64 // by query type, e.g. "MX", "TLSA"
	SMTPConnections  int64            // TCP connections accepted on the SMTP port (dead hosts too)
	TLSHandshakes    int64            // completed server handshakes (SMTP and HTTPS)
	// RoundTrips counts the simulated round trips (see Scenario.RTT): DNS
	// answers, SMTP replies, TLS server flights and HTTP responses.
	RoundTrips    int64
	HTTPSRequests int64 // HTTP requests received
	// ConnsPerIP counts SMTP connections by the dialled IP;
	// MaxConcurrentPerIP is the most simultaneously open ones per IP.
	ConnsPerIP         map[netip.Addr]int64
	MaxConcurrentPerIP map[netip.Addr]int64
	// Commands counts SMTP commands by verb (EHLO, HELO, STARTTLS, QUIT,
	// RSET, NOOP, MAIL, RCPT, DATA, BDAT, VRFY, EXPN, AUTH, HELP); any other
	// verb counts as "UNKNOWN". Tests assert MAIL, RCPT and DATA stay 0.
	Commands map[string]int64
	// SNI counts the server names clients sent in TLS handshakes (SMTP and
	// HTTPS); "" counts handshakes without SNI.
	SNI map[string]int64
	// PeakConnRate is the most SMTP connections accepted within any 1 s window.
	PeakConnRate int64
}

// MaxConcurrency is the highest MaxConcurrentPerIP.
func (c Counters) MaxConcurrency() int64 {
	var m int64
	for _, v := range c.MaxConcurrentPerIP {
		m = max(m, v)
	}
	return m
}

// Counters returns a snapshot of the counters.
func (n *Internet) Counters() Counters { return n.stats.snapshot() }

type stats struct {
	dnsQueries, smtpConns, tlsHandshakes, roundTrips, httpsRequests atomic.Int64

	mu        sync.Mutex
	dnsByType map[string]int64
	conns     map[netip.Addr]int64
	active    map[netip.Addr]int64
	maxActive map[netip.Addr]int64
	commands  map[string]int64
	sni       map[string]int64
	recent    []time.Time // SMTP accept times within the last second
	peakRate  int64
}

func newStats() *stats {
	return &stats{
		dnsByType: map[string]int64{},
		conns:     map[netip.Addr]int64{},
		active:    map[netip.Addr]int64{},
		maxActive: map[netip.Addr]int64{},
		commands:  map[string]int64{},
		sni:       map[string]int64{},
	}
}

func (s *stats) dnsQuery(qtype string) {
	s.dnsQueries.Add(1)
	s.mu.Lock()
	s.dnsByType[qtype]++
	s.mu.Unlock()
}

func (s *stats) connOpen(ip netip.Addr) {
	s.smtpConns.Add(1)
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conns[ip]++
	s.active[ip]++
	s.maxActive[ip] = max(s.maxActive[ip], s.active[ip])
	i := 0
	for i < len(s.recent) && now.Sub(s.recent[i]) >= time.Second {
		i++
	}
	s.recent = append(s.recent[i:], now)
	s.peakRate = max(s.peakRate, int64(len(s.recent)))
}

func (s *stats) connClose(ip netip.Addr) {
	s.mu.Lock()
	s.active[ip]--
	s.mu.Unlock()
}

func (s *stats) command(verb string) {
	s.mu.Lock()
	s.commands[verb]++
	s.mu.Unlock()
}

func (s *stats) serverName(name string) {
	s.mu.Lock()
	s.sni[name]++
	s.mu.Unlock()
}

func (s *stats) snapshot() Counters {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Counters{
		DNSQueries:         s.dnsQueries.Load(),
		DNSQueriesByType:   cloneMap(s.dnsByType),
		SMTPConnections:    s.smtpConns.Load(),
		TLSHandshakes:      s.tlsHandshakes.Load(),
		RoundTrips:         s.roundTrips.Load(),
		HTTPSRequests:      s.httpsRequests.Load(),
		ConnsPerIP:         cloneMap(s.conns),
		MaxConcurrentPerIP: cloneMap(s.maxActive),
		Commands:           cloneMap(s.commands),
		SNI:                cloneMap(s.sni),
		PeakConnRate:       s.peakRate,
	}
}

func cloneMap[K comparable](m map[K]int64) map[K]int64 {
	c := make(map[K]int64, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// tracker counts running goroutines and open connections so Close can wait
// for them; after shut, nothing new is admitted.
type tracker struct {
	mu    sync.Mutex
	wg    sync.WaitGroup
	shut  bool
	conns map[net.Conn]struct{}
}

// enter admits one unit of work; false after shutdown.
func (t *tracker) enter() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.shut {
		return false
	}
	t.wg.Add(1)
	return true
}

func (t *tracker) leave() { t.wg.Done() }

// addConn registers c to be closed at shutdown; false after it (the caller
// then closes c).
func (t *tracker) addConn(c net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.shut {
		return false
	}
	if t.conns == nil {
		t.conns = map[net.Conn]struct{}{}
	}
	t.conns[c] = struct{}{}
	return true
}

func (t *tracker) removeConn(c net.Conn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
}

// shutdown refuses new work, closes the registered connections and waits.
func (t *tracker) shutdown() {
	t.mu.Lock()
	t.shut = true
	conns := make([]net.Conn, 0, len(t.conns))
	for c := range t.conns {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	t.wg.Wait()
}

// rttConn applies the RTT model to a server connection: the first write
// after a read (or the first write at all) is one round trip.
type rttConn struct {
	net.Conn
	n       *Internet
	pending atomic.Bool // a read happened since the last write
}

func newRTTConn(c net.Conn, n *Internet) *rttConn {
	rc := &rttConn{Conn: c, n: n}
	rc.pending.Store(true)
	return rc
}

func (c *rttConn) Read(p []byte) (int, error) {
	k, err := c.Conn.Read(p)
	if k > 0 {
		c.pending.Store(true)
	}
	return k, err
}

func (c *rttConn) Write(p []byte) (int, error) {
	if c.pending.Swap(false) && !c.n.roundTrip() {
		return 0, net.ErrClosed
	}
	return c.Conn.Write(p)
}

// addrIP returns the IP of a TCP/UDP address, unmapped.
func addrIP(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap()
	case *net.UDPAddr:
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// listenWildcard opens the TCP listener on every IPv4 address.
func listenWildcard() (net.Listener, int, error) {
	ln, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		return nil, 0, fmt.Errorf("scantest: %w", err)
	}
	return ln, ln.Addr().(*net.TCPAddr).Port, nil
}
