// Package scanner is the tlsready pipeline: for each recipient domain it
// resolves the MX hosts (RFC 5321 §5.1, RFC 7505), probes every MX IP once per
// run with STARTTLS (package smtpprobe), evaluates MTA-STS (RFC 8461), DANE
// (RFC 7672) and TLSRPT (RFC 8460), and classifies the domain with one of the
// verdicts of docs/verdicts.md (Classify).
//
// One Scanner is one run: MX host lookups and IP probes are shared by every
// domain of the run, so a provider that hosts thousands of domains is probed
// once per IP, and never by two connections at a time.
//
// The scanner owns the judgement of a domain. It must not know where domains
// come from or where results go: cmd/internal/job feeds it from the
// register and saves its results; the MTA-STS policy cache and the sharing
// of MX IPs with other workers are interfaces it defines (STSCache,
// IPBroker) and others implement.
package scanner

import (
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tlsready/tlsready/scanner/dnsname"
	"github.com/tlsready/tlsready/scanner/resolve"
	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/scanner/smtpprobe"
)

// Config configures a Scanner. Zero values have the documented defaults.
type Config struct {
	Resolver resolve.Resolver // required
	// Probe configures every SMTP probe (port, HELO name, timeouts, roots).
	// Probe.OnConnect is set by the scanner.
	Probe        smtpprobe.Config
	RootCAs      *x509.CertPool   // nil: system roots; for certificate checks and MTA-STS fetches
	HTTPSPort    int              // 0: 443; MTA-STS policy fetches
	STSTimeout   time.Duration    // 0: 20s; one MTA-STS policy fetch, however slowly the body trickles
	Concurrency  int              // domains working at once (see Run); 0: DefaultConcurrency
	Rate         int              // new SMTP connections per second, global; 0: DefaultRate
	MaxMX        int              // MX hosts looked at per domain; 0: DefaultMaxMX
	MaxIPs       int              // addresses probed per MX host; 0: DefaultMaxIPs
	IPv6         bool             // also look up and probe AAAA
	AllowPrivate bool             // connect to loopback/private/reserved addresses (labs, tests)
	NoPolicy     bool             // skip MTA-STS, DANE and TLSRPT
	STSCache     STSCache         // nil: fetch every policy
	Now          func() time.Time // nil: time.Now
	Logger       *slog.Logger     // nil: discard
	// TempRetry is the back-off schedule for an IP that answered the banner
	// or EHLO with a 4xx (greylisting, rate limits): the IP is tried again
	// after each wait, later in the run, before it is judged (docs/verdicts.md).
	// Domains waiting for it are set aside by Run, not holding a worker.
	// nil: DefaultTempRetry; empty but not nil: no retries.
	TempRetry []time.Duration
	// HealthProbes is how many probes must all fail at TCP connect with a
	// timeout (while DNS works) before the run is stopped with
	// ErrPort25Blocked; 0: 25. Negative disables the check.
	HealthProbes int
	// IPBroker, when set, shares the run's MX IPs with scanners in other
	// processes: this scanner connects only to the IPs whose lease it
	// holds and asks the holders for the others' probes (see IPBroker).
	IPBroker IPBroker
}

// Errors that stop a run because our own side is broken, not the recipients'.
var (
	ErrPort25Blocked = errors.New("scanner: every SMTP connection timed out at connect: outbound port 25 looks blocked from this network")
	ErrResolverDead  = errors.New("scanner: the resolver does not answer")
)

// Scanner scans domains. Safe for concurrent use; one Scanner per run.
type Scanner struct {
	cfg     Config
	log     *slog.Logger
	limiter *windowLimiter
	stop    context.CancelFunc

	hosts  memo[string, resolve.AddrAnswer] // MX host name -> its address lookup
	ips    sync.Map                         // netip.Addr -> *ipState
	tlsa   memo[string, *result.TLSA]       // TLSA owner name -> its lookup
	judged memo[judgedKey, judged]          // MX host -> the host judged
	// probing holds the probes in progress (*Probing keys).
	probing sync.Map
	// remote holds the probes other workers made for this one (IPBroker).
	remote  sync.Map                    // ip|keepRaw|name -> probeRef
	retries memo[string, *result.Probe] // IP|name -> the STARTTLS retry of brokered requests: one connection however many workers ask

	connections   atomic.Int64
	probed        atomic.Int64
	sniPerNameIPs atomic.Int64
	reachable     atomic.Int64 // probes that reached a server, or were refused (the network works)
	dialTimeout   atomic.Int64
	dnsOK         atomic.Int64
	dnsTimeout    atomic.Int64
	fatal         atomic.Pointer[error]
}

// New validates cfg and returns a Scanner. Close it when the run is over.
func New(cfg Config) (*Scanner, error) {
	if cfg.Resolver == nil {
		return nil, errors.New("scanner: Config.Resolver is required")
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.Rate <= 0 {
		cfg.Rate = DefaultRate
	}
	if cfg.MaxMX <= 0 {
		cfg.MaxMX = DefaultMaxMX
	}
	if cfg.MaxIPs <= 0 {
		cfg.MaxIPs = DefaultMaxIPs
	}
	cfg.HTTPSPort = cmp.Or(cfg.HTTPSPort, 443)
	if cfg.STSTimeout <= 0 {
		cfg.STSTimeout = 20 * time.Second
	}
	if cfg.TempRetry == nil {
		cfg.TempRetry = DefaultTempRetry
	}
	for _, d := range cfg.TempRetry {
		if d < 0 {
			return nil, errors.New("scanner: negative Config.TempRetry wait")
		}
	}
	cfg.HealthProbes = cmp.Or(cfg.HealthProbes, 25)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.RootCAs == nil {
		pool, err := x509.SystemCertPool()
		if err != nil {
			return nil, fmt.Errorf("scanner: system roots: %w", err)
		}
		cfg.RootCAs = pool
	}
	if cfg.Probe.RootCAs == nil {
		cfg.Probe.RootCAs = cfg.RootCAs
	}
	if cfg.Probe.Now == nil {
		cfg.Probe.Now = cfg.Now
	}
	if cfg.Probe.ChainCache == nil {
		// Providers present one chain on many IPs: verify each chain once.
		cfg.Probe.ChainCache = smtpprobe.NewChainCache(0)
	}
	if err := cfg.Probe.Validate(); err != nil {
		return nil, fmt.Errorf("scanner: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Scanner{cfg: cfg, log: cfg.Logger, stop: cancel}
	// At most Rate connections in every one-second window, started
	// together when they can be (windowLimiter says why).
	s.limiter = newWindowLimiter(cfg.Rate)
	inner := cfg.Probe.Dialer
	if inner == nil {
		inner = &net.Dialer{}
	}
	s.cfg.Probe.Dialer = healthDialer{inner: inner, s: s}
	s.cfg.Probe.OnConnect = func() {
		_ = s.limiter.wait(ctx) // ends early only once Close was called
		s.connections.Add(1)
	}
	return s, nil
}

// Close ends the rate limiter's waits.
func (s *Scanner) Close() { s.stop() }

// Stats are a scanner's counters.
type Stats struct {
	Connections int64 // SMTP connections made (a second TLS attempt is a second one)
	MXIPs       int64 // distinct MX IPs probed
	// SNIPerNameIPs counts the IPs found to choose their certificate by
	// SNI, whose names were then probed one by one.
	SNIPerNameIPs int64
}

// Stats returns the counters so far.
func (s *Scanner) Stats() Stats {
	return Stats{Connections: s.connections.Load(), MXIPs: s.probed.Load(), SNIPerNameIPs: s.sniPerNameIPs.Load()}
}

// Probing is an MX IP the scanner is probing now.
type Probing struct {
	IP    netip.Addr
	Name  string    // the MX host name (SNI)
	Since time.Time // when the probe got the IP's connection
}

// Probing lists the probes in progress, the longest running first.
func (s *Scanner) Probing() []Probing {
	var ps []Probing
	s.probing.Range(func(k, _ any) bool {
		ps = append(ps, *k.(*Probing))
		return true
	})
	slices.SortFunc(ps, func(a, b Probing) int { return a.Since.Compare(b.Since) })
	return ps
}

// Err returns the error that stopped the run (ErrPort25Blocked,
// ErrResolverDead), or nil.
func (s *Scanner) Err() error {
	if p := s.fatal.Load(); p != nil {
		return *p
	}
	return nil
}

// Run scans the domains from in, Config.Concurrency at a time, and calls
// out (from many goroutines) with each finished result. A domain that waits
// for work another domain is doing for the run (a shared MX host being
// judged, its turn at a shared IP) lets the next domain work meanwhile; up
// to 4 × Concurrency domains wait so. A domain cut short
// because ctx ended or the run was stopped is not passed to out: it stays
// pending for the next run. Run returns when in is closed and drained, or ctx
// ends; then Err says whether the scanner stopped itself.
//
// A domain whose MX IP answered with a temporary refusal (4xx to the banner
// or EHLO) is set aside until the IP's back-off (Config.TempRetry) has
// passed and then scanned again, without holding a worker meanwhile; Run
// returns only when those are done too.
func (s *Scanner) Run(ctx context.Context, in <-chan string, out func(result.Result)) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	slots := newPool(s.cfg.Concurrency)
	again := make(chan string)     // set-aside domains whose time has come
	idle := make(chan struct{}, 1) // a domain finished
	var inflight atomic.Int64      // domains handed out or set aside, not yet finished
	var wg, timers sync.WaitGroup
	src := in
feed:
	for src != nil || inflight.Load() > 0 {
		var d string
		select {
		case next, ok := <-src:
			if !ok {
				src = nil
				continue
			}
			inflight.Add(1)
			d = next
		case d = <-again:
		case <-idle:
			continue
		case <-ctx.Done():
			break feed
		}
		l, ok := slots.admit(ctx)
		if !ok {
			break
		}
		wg.Go(func() {
			defer l.finish()
			r, due := s.domain(withLane(ctx, l), d)
			if err := s.Err(); err != nil {
				cancel()
			}
			if ctx.Err() != nil {
				return
			}
			if !due.IsZero() {
				timers.Go(func() {
					t := time.NewTimer(time.Until(due))
					defer t.Stop()
					select {
					case <-t.C:
						select {
						case again <- d:
						case <-ctx.Done():
						}
					case <-ctx.Done():
					}
				})
				return
			}
			out(r)
			if inflight.Add(-1) == 0 {
				select {
				case idle <- struct{}{}:
				default:
				}
			}
		})
	}
	wg.Wait()
	cancel()
	timers.Wait()
	// An ended ctx leaves the producer's domains unread: drain them.
	for range in {
	}
}

func (s *Scanner) setFatal(err error) {
	s.fatal.CompareAndSwap(nil, &err)
}

// Check scans one domain live (for `tlsready check` and the gateway's
// on-demand checks), waiting out the back-off of an IP that refused with a
// 4xx (Config.TempRetry) before judging it. The error is non-nil only when
// ctx ended first.
func (s *Scanner) Check(ctx context.Context, domain string) (result.Result, error) {
	for {
		r, due := s.domain(ctx, domain)
		if err := ctx.Err(); err != nil {
			return r, err
		}
		if due.IsZero() || s.Err() != nil {
			return r, s.Err()
		}
		s.log.Debug("temporary refusal: trying again later", "domain", domain, "at", due)
		t := time.NewTimer(time.Until(due))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return r, ctx.Err()
		}
	}
}

// Domain scans one domain (A-label form) and classifies it. An MX IP that
// refused with a 4xx is judged on that attempt: Run and Check try it again
// later instead.
func (s *Scanner) Domain(ctx context.Context, domain string) result.Result {
	r, _ := s.domain(ctx, domain)
	return r
}

// domain scans one domain; due, when not zero, is when an MX IP that
// refused with a 4xx may be tried again: the result is provisional until.
func (s *Scanner) domain(ctx context.Context, domain string) (result.Result, time.Time) {
	start := s.cfg.Now()
	domain = dnsname.Key(domain)
	r := result.Result{Domain: domain, ScannedAt: start.UTC(), MX: []result.Host{}}

	// The policy records do not depend on the MX answer: look them up meanwhile.
	var pol policyFacts
	var polDone chan struct{}
	ln := laneOf(ctx)
	if !s.cfg.NoPolicy {
		polDone = make(chan struct{})
		ln.fork()
		go func() {
			defer close(polDone)
			defer ln.exit()
			pol = s.lookupPolicies(ctx, domain)
		}()
	}

	mx := s.cfg.Resolver.MX(ctx, domain)
	s.noteDNS(mx.Answer)
	r.DNSStatus = string(mx.Status)
	r.MXSecure = mx.Secure
	var names []resolve.MX
	switch {
	case mx.Status == resolve.StatusOK && mx.Null:
		r.NullMX = true
	case mx.Status == resolve.StatusOK:
		names = mx.MX
	case mx.Status == resolve.StatusNoData:
		// RFC 5321 §5.1: no MX, the domain itself is the mail host if it has addresses.
		addrs := s.cfg.Resolver.Addrs(ctx, domain, s.cfg.IPv6)
		s.noteDNS(addrs.Answer)
		switch {
		case addrs.Status == resolve.StatusOK:
			// A and/or AAAA: its own mail host, IPv6-only included.
			r.ImplicitMX = true
			r.Flags = result.AddFlag(r.Flags, result.FlagImplicitMX)
			names = []resolve.MX{{Host: domain}}
		case addrs.Status.Temporary():
			// The implicit MX's address lookup failed: flagged like an MX
			// lookup failure.
			r.DNSStatus = string(addrs.Status)
			switch addrs.Status {
			case resolve.StatusTimeout:
				r.Flags = result.AddFlag(r.Flags, result.FlagDNSTimeout)
			case resolve.StatusServfail:
				r.Flags = result.AddFlag(r.Flags, result.FlagServfail)
			}
		default:
			r.DNSStatus = string(resolve.StatusOK)
		}
	}
	if mx.Status.Temporary() {
		switch mx.Status {
		case resolve.StatusTimeout:
			r.Flags = result.AddFlag(r.Flags, result.FlagDNSTimeout)
		case resolve.StatusServfail:
			r.Flags = result.AddFlag(r.Flags, result.FlagServfail)
		}
	}
	if len(mx.CNAMEs) > 0 {
		r.Flags = result.AddFlag(r.Flags, result.FlagMXCNAME)
	}
	if len(names) > s.cfg.MaxMX {
		names = names[:s.cfg.MaxMX]
		r.Flags = result.AddFlag(r.Flags, result.FlagMXTruncated)
	}

	// MX hosts are judged in parallel (each IP still sees one connection at
	// a time), so a domain of ten tarpitting MX hosts takes about one probe
	// deadline, not ten.
	r.MX = make([]result.Host, len(names))
	dues := make([]time.Time, len(names))
	judge := func(i int) { r.MX[i], dues[i] = s.host(ctx, names[i], r.MXSecure && !s.cfg.NoPolicy) }
	if len(names) == 1 {
		judge(0) // no goroutine for the common case
	} else {
		var wg sync.WaitGroup
		for i := range names {
			ln.fork()
			wg.Go(func() {
				defer ln.exit()
				judge(i)
			})
		}
		ln.join(ctx, wg.Wait)
	}
	var due time.Time
	for i, d := range dues {
		if !d.IsZero() && (due.IsZero() || d.Before(due)) {
			due = d
		}
		r.MX[i] = daneNextHop(r.MX[i], domain)
	}

	if polDone != nil {
		<-polDone
		s.applyPolicies(ctx, &r, pol)
	}
	Classify(&r)
	r.Duration = s.cfg.Now().Sub(start)
	return r, due
}

// noteDNS watches for a resolver that does not answer at all (dead, or
// unreachable from here): then every domain would be a dns-error.
func (s *Scanner) noteDNS(a resolve.Answer) {
	dead := a.Status == resolve.StatusTimeout ||
		(a.Status == resolve.StatusError && (errors.Is(a.Err, resolve.ErrNetwork) || errors.Is(a.Err, resolve.ErrRefused)))
	if !dead {
		s.dnsOK.Add(1)
		return
	}
	if s.dnsTimeout.Add(1) >= 50 && s.dnsOK.Load() == 0 && s.cfg.HealthProbes > 0 {
		s.setFatal(ErrResolverDead)
	}
}

// host resolves one MX host (shared) and probes its IPs (shared).
//
// The judged host is the same for every domain that names it (only the
// preference differs), so it is computed once per run and shared, read-only:
// a provider's certificates are parsed and checked once, not per domain.
// due, when not zero, is when an IP of the host that refused with a 4xx may
// be tried again; the first domain to ask after that judges the host anew.
func (s *Scanner) host(ctx context.Context, m resolve.MX, mxSecure bool) (result.Host, time.Time) {
	key := judgedKey{name: m.Host, mxSecure: mxSecure}
	again := func(j judged) bool { return !j.due.IsZero() && !time.Now().Before(j.due) }
	j, ok := s.judged.doUnless(ctx, key, again, func() judged {
		h, due := s.judgeHost(ctx, m.Host, mxSecure)
		return judged{host: h, due: due}
	})
	if !ok {
		return result.Host{Name: m.Host, Preference: m.Preference, Addrs: []result.Addr{}, DNSStatus: string(resolve.StatusTimeout)}, time.Time{}
	}
	h := j.host
	h.Preference = m.Preference
	return h, j.due
}

type judgedKey struct {
	name     string
	mxSecure bool
}

// judged is a judged MX host; due as host returns it.
type judged struct {
	host result.Host
	due  time.Time
}

// judgeHost resolves one MX host, probes its IPs (shared) and judges them.
// due is the earliest time an IP that refused with a 4xx may be tried again.
func (s *Scanner) judgeHost(ctx context.Context, name string, mxSecure bool) (result.Host, time.Time) {
	h := result.Host{Name: name, Addrs: []result.Addr{}}
	if _, err := netip.ParseAddr(strings.Trim(name, "[]")); err == nil {
		// RFC 5321 §5.1: an MX target is a domain name; an IP literal is not usable.
		h.Flags = result.AddFlag(h.Flags, result.FlagMXIPLiteral)
		h.DNSStatus = string(resolve.StatusNXDomain)
		return h, time.Time{}
	}
	ans := s.lookupHost(ctx, name)
	h.DNSStatus = string(ans.Status)
	h.Secure = ans.Secure
	if len(ans.CNAMEs) > 0 {
		h.CNAME = ans.Canonical
		h.Flags = result.AddFlag(h.Flags, result.FlagMXCNAME)
	}
	switch {
	case ans.Status == resolve.StatusOK && len(ans.Addrs) == 0 && len(ans.IPv6Only) > 0:
		// IPv6-only while IPv6 probing is off: it accepts mail, but not
		// from us; not reachable, and not dangling (docs/verdicts.md).
		h.Flags = result.AddFlag(h.Flags, result.FlagIPv6NotProbed)
		for _, ip := range ans.IPv6Only {
			h.Addrs = append(h.Addrs, result.Addr{IP: ip, Skipped: "ipv6-off", Flags: []string{result.FlagIPv6NotProbed}})
		}
		return h, time.Time{}
	case ans.Status == resolve.StatusOK:
	case ans.Status.Temporary():
		return h, time.Time{}
	default:
		h.Flags = result.AddFlag(h.Flags, result.FlagMXDangling)
		return h, time.Time{}
	}
	addrs := ans.Addrs
	if len(addrs) > s.cfg.MaxIPs {
		addrs = addrs[:s.cfg.MaxIPs]
		h.Flags = result.AddFlag(h.Flags, result.FlagMXTruncated)
	}
	if mxSecure && ans.Secure {
		h.TLSA = s.lookupTLSA(ctx, h)
	}
	// RFC 7672 §8.1: a DANE client sends the TLSA base domain as SNI;
	// everyone else the MX host name.
	sni := name
	keepRaw := hasUsableSecureTLSA(h)
	if keepRaw {
		sni = tlsaBase(h.TLSA.Name)
	}
	h.Addrs = make([]result.Addr, len(addrs))
	refs := make([]probeRef, len(addrs))
	var todo []int
	for i, ip := range addrs {
		a := &h.Addrs[i]
		a.IP = ip
		if !s.cfg.AllowPrivate && Forbidden(ip) {
			a.Skipped = "private-address"
			a.Flags = result.AddFlag(a.Flags, result.FlagMXPrivate)
			continue
		}
		todo = append(todo, i)
	}
	probe := func(i int) {
		a := &h.Addrs[i]
		refs[i] = s.probe(ctx, sni, a.IP, keepRaw)
		if a.Probe = refs[i].probe; a.Probe == nil {
			a.Skipped = "cancelled" // ctx ended while waiting
		}
	}
	if len(todo) == 1 {
		probe(todo[0]) // no goroutine for the common case
	} else {
		// Distinct IPs of one host are probed in parallel.
		ln := laneOf(ctx)
		var wg sync.WaitGroup
		for _, i := range todo {
			ln.fork()
			wg.Go(func() {
				defer ln.exit()
				probe(i)
			})
		}
		ln.join(ctx, wg.Wait)
	}
	s.retryMissingSTARTTLS(ctx, sni, h.Addrs)
	var due time.Time
	for i := range h.Addrs {
		if h.Addrs[i].Probe == nil {
			continue
		}
		if refs[i].perName {
			h.Addrs[i].Flags = result.AddFlag(h.Addrs[i].Flags, result.FlagSNIPerName)
		}
		if d := refs[i].due; !d.IsZero() && (due.IsZero() || d.Before(due)) {
			due = d
		}
		s.judge(ctx, &h.Addrs[i], h, sni)
	}
	return h, due
}

// tlsaBase is the base domain of a TLSA owner name "_25._tcp.<base>".
func tlsaBase(owner string) string {
	owner = dnsname.Key(owner)
	if _, rest, ok := strings.Cut(owner, "._tcp."); ok {
		return rest
	}
	return owner
}

// retryMissingSTARTTLS probes again, once, an IP of a host that did not
// offer STARTTLS while another IP of the same host completed it: large
// providers occasionally omit STARTTLS from one EHLO reply (FIELD-NOTES).
// The retry is one more connection, made after the first one closed.
func (s *Scanner) retryMissingSTARTTLS(ctx context.Context, sni string, addrs []result.Addr) {
	ok := false
	for _, a := range addrs {
		if a.Probe != nil && a.Probe.TLS != nil {
			ok = true
		}
	}
	if !ok {
		return
	}
	for i, a := range addrs {
		if a.Probe == nil || a.Probe.Status != result.ProbeNoSTARTTLS {
			continue
		}
		if p := s.retryProbe(ctx, sni, a.IP); p != nil {
			addrs[i].Probe = p
		}
	}
}

// retryProbe is retryMissingSTARTTLS's second connection to ip; with an
// IPBroker, one per IP and name per run, made by the IP's lease holder.
// nil when ctx ended first.
func (s *Scanner) retryProbe(ctx context.Context, sni string, ip netip.Addr) *result.Probe {
	if s.cfg.IPBroker == nil {
		p := s.connect(ctx, s.ipState(ip), sni, ip)
		p.Retried = true
		return p
	}
	req := ProbeRequest{IP: ip, Key: reqRetry + "|" + sni}
	return s.brokered(ctx, req, func() probeRef { return probeRef{probe: s.localRetry(ctx, sni, ip)} }).probe
}

// localRetry is a brokered retryProbe made in this process, once per IP and
// name: the probe is shared, read-only.
func (s *Scanner) localRetry(ctx context.Context, sni string, ip netip.Addr) *result.Probe {
	p, _ := s.retries.do(ctx, ip.String()+"|"+sni, func() *result.Probe {
		p := s.connect(ctx, s.ipState(ip), sni, ip)
		p.Retried = true
		return p
	})
	return p // nil when ctx ended first
}

func (s *Scanner) lookupHost(ctx context.Context, host string) resolve.AddrAnswer {
	ans, ok := s.hosts.do(ctx, host, func() resolve.AddrAnswer {
		ans := s.cfg.Resolver.Addrs(ctx, host, s.cfg.IPv6)
		s.noteDNS(ans.Answer)
		return ans
	})
	if !ok {
		return resolve.AddrAnswer{Answer: resolve.Answer{Status: resolve.StatusTimeout, Err: ctx.Err()}}
	}
	return ans
}

// healthDialer watches every SMTP dial for a network that cannot reach
// port 25 at all: outbound port 25 filtered (most clouds) makes every
// connect time out, while a refusal or a reset proves the path works.
type healthDialer struct {
	inner smtpprobe.Dialer
	s     *Scanner
}

func (d healthDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := d.inner.DialContext(ctx, network, addr)
	s := d.s
	switch {
	case err == nil:
		s.reachable.Add(1)
	case errors.Is(err, context.Canceled):
		// our own shutdown: no evidence either way
	case isTimeout(err):
		if s.cfg.HealthProbes > 0 && s.dialTimeout.Add(1) >= int64(s.cfg.HealthProbes) &&
			s.reachable.Load() == 0 && s.dnsOK.Load() > 0 {
			s.setFatal(ErrPort25Blocked)
		}
	default:
		s.reachable.Add(1) // refused, reset, unreachable host: packets got an answer
	}
	return c, err
}

// isTimeout reports whether err is a deadline or timeout.
func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// probeFlags is the flag of each way a probe can stop short of TLS.
var probeFlags = map[result.ProbeStatus]string{
	result.ProbeConnectFailed:   result.FlagConnectFailed,
	result.ProbeTimeout:         result.FlagTimeout,
	result.ProbeProtocolError:   result.FlagProtocolError,
	result.ProbeBannerRefused:   result.FlagBannerRefused,
	result.ProbeEHLORefused:     result.FlagEHLORefused,
	result.ProbeNotJudged:       result.FlagTLSNotJudged,
	result.ProbeNoSTARTTLS:      result.FlagNoSTARTTLS,
	result.ProbeSTARTTLSRefused: result.FlagSTARTTLSRefused,
	result.ProbeHandshakeFailed: result.FlagHandshakeFailed,
}

// judge fills the host-specific facts of one probed address: whether the
// certificate names this host and is PKIX-valid for it, and its flags. sni
// is the name the probe sent (the TLSA base domain for a DANE host).
func (s *Scanner) judge(ctx context.Context, a *result.Addr, h result.Host, sni string) {
	p := a.Probe
	if p.Attempts > 1 {
		a.Flags = result.AddFlag(a.Flags, result.FlagRetriedLater)
	}
	if f, ok := probeFlags[p.Status]; ok {
		if (p.Status == result.ProbeTimeout || p.Status == result.ProbeProtocolError) && p.BannerCode == 220 && !p.Reachable {
			f = result.FlagEHLOLost // greeted, then lost before EHLO was answered
		}
		a.Flags = result.AddFlag(a.Flags, f)
	}
	t := p.TLS
	if t == nil {
		return
	}
	a.NameMatch = smtpprobe.NameMatch(p, h.Name)
	a.PKIXValid = t.ChainTrusted && !t.Expired && !t.NotYetValid && a.NameMatch
	if t.Expired {
		a.Flags = result.AddFlag(a.Flags, result.FlagCertExpired)
	}
	if t.NotYetValid {
		a.Flags = result.AddFlag(a.Flags, result.FlagCertNotYetValid)
	}
	if t.SelfSigned {
		a.Flags = result.AddFlag(a.Flags, result.FlagCertSelfSigned)
	} else if !t.ChainTrusted {
		a.Flags = result.AddFlag(a.Flags, result.FlagCertUntrusted)
	}
	if !a.NameMatch {
		a.Flags = result.AddFlag(a.Flags, result.FlagCertNameMismatch)
	}
	if t.Stack == result.StackFallback {
		a.Flags = result.AddFlag(a.Flags, result.FlagTLSFallback)
	}
	switch t.VersionID {
	case 0x0301:
		a.Flags = result.AddFlag(a.Flags, result.FlagTLS10)
	case 0x0302:
		a.Flags = result.AddFlag(a.Flags, result.FlagTLS11)
	}
	if h.TLSA != nil {
		s.judgeDANE(ctx, a, h, sni)
	}
}

// dialer resolves host names through the scanner's resolver (never the
// system's), refuses forbidden addresses, and dials.
type dialer struct{ s *Scanner }

func (d dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	ans := d.s.cfg.Resolver.Addrs(ctx, host, d.s.cfg.IPv6)
	if ans.Status != resolve.StatusOK {
		return nil, fmt.Errorf("scanner: resolving %s: %s", host, ans.Status)
	}
	var nd net.Dialer
	var last error = fmt.Errorf("scanner: %s has no usable address", host)
	for _, ip := range ans.Addrs {
		if !d.s.cfg.AllowPrivate && Forbidden(ip) {
			last = fmt.Errorf("scanner: %s resolves to a private or reserved address", host)
			continue
		}
		c, err := nd.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
		if err == nil {
			return c, nil
		}
		last = err
	}
	return nil, last
}

// NetworkWorks reports whether at least one probe got past TCP connect
// timeouts (a server answered or refused): our own network reaches port 25.
func (s *Scanner) NetworkWorks() bool { return s.reachable.Load() > 0 }
