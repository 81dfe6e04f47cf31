package scanner

import (
	"context"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/scanner/smtpprobe"
)

// DefaultTempRetry is the back-off schedule for an IP that refused the
// banner or EHLO with a 4xx: greylisting and connection rate limits
// typically lift after one to several minutes.
var DefaultTempRetry = []time.Duration{time.Minute, 4 * time.Minute}

// ipState is what the run knows about one MX IP: its probes, by the name
// sent as SNI, and whether its server chooses certificates by SNI.
//
// Politeness: conn is held while a connection to the IP is open, so the IP
// sees one connection at a time however many names, retries and DANE
// re-probes ask for it. The first name's probe is shared by every other
// name unless the IP turns out to choose its certificate by SNI (shared
// hosting), which costs one more handshake to find out (sniTest): then each
// name gets its own probe.
type ipState struct {
	conn sync.Mutex // held while a connection is open

	mu    sync.Mutex
	first *probeEntry            // the first probe, under whichever name asked first
	names map[string]*probeEntry // probes by SNI (first included)
	mode  sniMode
	test  *probeEntry                 // the second name's probe, deciding mode, while it runs
	dane  memo[string, *result.Probe] // probes that kept the DER chain, by SNI
}

type sniMode uint8

const (
	sniUnknown sniMode = iota // one name so far
	sniShared                 // a second name got the same leaf: one probe for all
	sniPerName                // the certificate depends on SNI: a probe per name
)

// probeEntry is one probe of an IP, shared by everyone who asks for it.
type probeEntry struct {
	done    chan struct{}
	sni     string
	attempt int // 1 + retries of a temporary refusal
	probe   *result.Probe
	perName bool      // made because the IP chooses certificates by SNI
	due     time.Time // zero: final; else when a temporary refusal may be tried again
}

// probeRef is a probe as handed to one MX host.
type probeRef struct {
	probe   *result.Probe // nil: ctx ended while waiting
	perName bool
	due     time.Time
}

func newEntry(sni string, attempt int) *probeEntry {
	return &probeEntry{done: make(chan struct{}), sni: sni, attempt: attempt}
}

func (e *probeEntry) finished() bool {
	select {
	case <-e.done:
		return true
	default:
		return false
	}
}

func (e *probeEntry) ref() probeRef { return probeRef{probe: e.probe, perName: e.perName, due: e.due} }

// wait waits for e; false when ctx ended first. Run's slot may serve
// another domain meanwhile (see lane).
func wait(ctx context.Context, e *probeEntry) bool { return await(ctx, e.done) }

func (s *Scanner) ipState(ip netip.Addr) *ipState {
	if v, ok := s.ips.Load(ip); ok {
		return v.(*ipState)
	}
	v, _ := s.ips.LoadOrStore(ip, &ipState{names: map[string]*probeEntry{}})
	return v.(*ipState)
}

// probe returns the run's probe of ip for the MX host name (the SNI). See
// ipState for how probes are shared between names. keepRaw keeps the DER
// chain in a probe this call makes (see probeForDANE). With an IPBroker,
// the scanner holding ip's lease makes it (see brokered).
func (s *Scanner) probe(ctx context.Context, name string, ip netip.Addr, keepRaw bool) probeRef {
	if s.cfg.IPBroker == nil {
		return s.localProbe(ctx, name, ip, keepRaw)
	}
	// What this process was told before: final, or a temporary refusal
	// whose back-off has not passed yet, is the answer again; after the
	// back-off the holder is asked for the next attempt.
	memo := ip.String() + "|" + boolDigit(keepRaw) + "|" + name
	seen := 0
	if v, ok := s.remote.Load(memo); ok {
		ref := v.(probeRef)
		if ref.due.IsZero() || time.Now().Before(ref.due) {
			return ref
		}
		seen = ref.probe.Attempts
	}
	req := ProbeRequest{IP: ip, Key: reqProbe + "|" + strconv.Itoa(seen) + "|" + boolDigit(keepRaw) + "|" + name}
	held := false
	ref := s.brokered(ctx, req, func() probeRef {
		held = true
		return s.localProbe(ctx, name, ip, keepRaw)
	})
	if !held && ref.probe != nil {
		s.remote.Store(memo, ref)
	}
	return ref
}

// localProbe is probe made in this process.
func (s *Scanner) localProbe(ctx context.Context, name string, ip netip.Addr, keepRaw bool) probeRef {
	st := s.ipState(ip)
	for {
		st.mu.Lock()
		f := st.first
		switch {
		case f == nil:
			e := newEntry(name, 1)
			st.first, st.names[name] = e, e
			st.mu.Unlock()
			s.probed.Add(1)
			s.fill(ctx, st, e, ip, keepRaw)
			close(e.done)
			return e.ref()
		case !f.finished():
			st.mu.Unlock()
			if !wait(ctx, f) {
				return probeRef{}
			}
			continue
		case !f.due.IsZero() && !time.Now().Before(f.due):
			// A temporary refusal whose back-off has passed: try again.
			// SNI plays no part before the handshake, so one entry serves
			// every name.
			e := newEntry(f.sni, f.attempt+1)
			st.first, st.names, st.mode = e, map[string]*probeEntry{f.sni: e}, sniUnknown
			st.mu.Unlock()
			s.fill(ctx, st, e, ip, keepRaw)
			close(e.done)
			return e.ref()
		case f.sni == name || st.mode == sniShared || !handshakeTried(f.probe):
			st.mu.Unlock()
			return f.ref()
		}
		if e := st.names[name]; e != nil {
			st.mu.Unlock()
			if !wait(ctx, e) {
				return probeRef{}
			}
			return e.ref()
		}
		if t := st.test; t != nil {
			// Another name is finding out whether the IP chooses by SNI.
			st.mu.Unlock()
			if !wait(ctx, t) {
				return probeRef{}
			}
			continue
		}
		e := newEntry(name, 1)
		st.names[name] = e
		testing := st.mode == sniUnknown
		if testing {
			st.test = e
		}
		st.mu.Unlock()
		s.fill(ctx, st, e, ip, keepRaw)
		st.mu.Lock()
		if testing {
			st.test = nil
			st.mode = sniShared
			if !sameServerAnswer(f.probe, e.probe) {
				st.mode = sniPerName
				s.sniPerNameIPs.Add(1)
			}
		}
		e.perName = st.mode == sniPerName
		st.mu.Unlock()
		close(e.done)
		return e.ref()
	}
}

// fill makes e's probe on a connection of its own (one at a time per IP)
// and schedules a temporary refusal for another try.
func (s *Scanner) fill(ctx context.Context, st *ipState, e *probeEntry, ip netip.Addr, keepRaw bool) {
	e.probe = s.connect(ctx, st, e.sni, ip)
	if !keepRaw && e.probe.TLS != nil {
		e.probe.TLS.Raw = nil
	}
	e.probe.Attempts = e.attempt
	if e.probe.TempRefused() && e.attempt <= len(s.cfg.TempRetry) && ctx.Err() == nil {
		e.due = time.Now().Add(s.cfg.TempRetry[e.attempt-1])
	}
}

// connect makes one probe of ip while holding the IP's connection lock.
func (s *Scanner) connect(ctx context.Context, st *ipState, sni string, ip netip.Addr) *result.Probe {
	lockConn(ctx, st)
	defer st.conn.Unlock()
	p := &Probing{IP: ip, Name: sni, Since: time.Now()}
	s.probing.Store(p, struct{}{})
	defer s.probing.Delete(p)
	return smtpprobe.Probe(ctx, s.cfg.Probe, sni, ip)
}

// probeForDANE returns a probe of ip under sni with its DER chain, for a
// host with TLSA records whose shared probe was made without keeping the
// chain. Once per IP and name per run (and per worker holding ip's lease,
// with an IPBroker).
func (s *Scanner) probeForDANE(ctx context.Context, sni string, ip netip.Addr) *result.Probe {
	if s.cfg.IPBroker == nil {
		return s.localProbeForDANE(ctx, sni, ip)
	}
	req := ProbeRequest{IP: ip, Key: reqDANE + "|" + sni}
	return s.brokered(ctx, req, func() probeRef {
		return probeRef{probe: s.localProbeForDANE(ctx, sni, ip)}
	}).probe
}

// localProbeForDANE is probeForDANE made in this process.
func (s *Scanner) localProbeForDANE(ctx context.Context, sni string, ip netip.Addr) *result.Probe {
	st := s.ipState(ip)
	p, _ := st.dane.do(ctx, sni, func() *result.Probe { return s.connect(ctx, st, sni, ip) })
	return p // nil when ctx ended first
}

// handshakeTried reports whether the probe got as far as a TLS handshake,
// the only step where the name sent as SNI makes a difference.
func handshakeTried(p *result.Probe) bool {
	return p.TLS != nil || strings.HasPrefix(p.STARTTLSReply, "220")
}

// sameServerAnswer reports whether two probes of one IP under different
// names saw the same TLS outcome: the same leaf certificate, or the same
// failure.
func sameServerAnswer(a, b *result.Probe) bool {
	if a.TLS == nil || b.TLS == nil {
		return a.TLS == nil && b.TLS == nil && a.Status == b.Status
	}
	if len(a.TLS.Certs) == 0 || len(b.TLS.Certs) == 0 {
		return len(a.TLS.Certs) == len(b.TLS.Certs)
	}
	return a.TLS.Certs[0].SHA256 == b.TLS.Certs[0].SHA256
}
