package main

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Progress rates are measured over the last rateWindow, and are not said at
// all before rateMinSpan has passed (a first rate over a few milliseconds
// is noise: "120019 domains/s").
const (
	rateWindow  = 30 * time.Second
	rateMinSpan = 5 * time.Second
)

// meter keeps (time, domains done) samples over a sliding window and
// derives the rate and the ETA from them. Not safe for concurrent use.
type meter struct {
	window, minSpan time.Duration
	samples         []sample // oldest first; samples[0] is at or before the window's start
}

type sample struct {
	t time.Time
	n int64
}

func newMeter(window, minSpan time.Duration) *meter {
	return &meter{window: window, minSpan: minSpan}
}

// observe records that n domains were done at t.
func (m *meter) observe(t time.Time, n int64) {
	m.samples = append(m.samples, sample{t, n})
	cut := t.Add(-m.window)
	i := 0
	for i+1 < len(m.samples) && !m.samples[i+1].t.After(cut) {
		i++
	}
	m.samples = m.samples[i:]
}

// rate returns domains per second over the window (or since the first
// sample, when the window is not full yet); false until minSpan has passed.
func (m *meter) rate() (float64, bool) {
	if len(m.samples) < 2 {
		return 0, false
	}
	a, b := m.samples[0], m.samples[len(m.samples)-1]
	span := b.t.Sub(a.t)
	if span < m.minSpan {
		return 0, false
	}
	return float64(b.n-a.n) / span.Seconds(), true
}

// eta returns the time left for left domains at the window's rate; false
// when the rate is not known yet or nothing finished in the window.
func (m *meter) eta(left int64) (time.Duration, bool) {
	r, ok := m.rate()
	if !ok || r <= 0 {
		return 0, false
	}
	return time.Duration(float64(left) / r * float64(time.Second)), true
}

// probing is one MX IP the scanner is talking to (scanner.Scanner.Probing).
type probing struct {
	ip    netip.Addr
	name  string
	since time.Time
}

// progress shows a bar on a terminal, and a log line every interval
// otherwise (cron). It counts the domains this run has to scan (left),
// the run's total and the cached results reused, the rate over the last
// rateWindow and the ETA from it; near the end (every domain left is being
// worked on, or none finished within the window) the domains and hosts
// still in flight and how long the oldest has waited.
type progress struct {
	bar      *progressbar.ProgressBar
	log      *slog.Logger
	now      func() time.Time
	pending  int64 // domains this run scans
	total    int64 // the run's domains
	cached   int64 // results reused (total - pending)
	probes   func() []probing
	mu       sync.Mutex
	done_    int64
	inflight map[string]time.Time // handed to the scanner, no result yet
	early    map[string]bool      // a result that came before Started was told
	m        *meter
	stop     chan struct{}
	stopped  chan struct{}
}

// newProgress: pending domains to scan of total in the run; every is the
// interval of the log lines (0: 10 s); probes, when not nil, lists the MX
// IPs being probed.
func newProgress(pending, total int64, quiet bool, every time.Duration, log *slog.Logger, probes func() []probing) *progress {
	p := &progress{log: log, now: time.Now, pending: pending, total: total, cached: total - pending, probes: probes,
		inflight: map[string]time.Time{}, early: map[string]bool{}, m: newMeter(rateWindow, rateMinSpan),
		stop: make(chan struct{}), stopped: make(chan struct{})}
	if quiet || pending == 0 {
		close(p.stopped)
		return p
	}
	if every <= 0 {
		every = 10 * time.Second
	}
	tty := term.IsTerminal(int(os.Stderr.Fd()))
	if tty {
		p.bar = progressbar.NewOptions64(pending,
			progressbar.OptionSetWriter(os.Stderr),
			progressbar.OptionSetDescription(p.describe(p.now())),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(false),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
	}
	p.m.observe(p.now(), 0)
	go p.loop(tty, every)
	return p
}

func (p *progress) loop(tty bool, every time.Duration) {
	defer close(p.stopped)
	tick := min(time.Second, every)
	t := time.NewTicker(tick)
	defer t.Stop()
	last := p.now()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		now := p.now()
		p.mu.Lock()
		p.m.observe(now, p.done_)
		p.mu.Unlock()
		if tty {
			p.bar.Describe(p.describe(now))
			continue
		}
		if now.Sub(last) >= every-tick/2 {
			last = now
			p.log.Info("progress", p.attrs(now)...)
		}
	}
}

// status is what a progress line says at now.
type status struct {
	done, left, total, cached int64
	rate                      float64 // domains per second over the window; -1: not known yet
	eta                       time.Duration
	etaKnown                  bool
	stalled                   bool // nothing finished within the window
	nearEnd                   bool
	inFlight                  int
	oldest                    string
	oldestWait                time.Duration
	probing                   int
	oldestProbe               string
	probeWait                 time.Duration
}

func (p *progress) status(now time.Time) status {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := status{done: p.done_, left: p.pending - p.done_, total: p.total, cached: p.cached, rate: -1, inFlight: len(p.inflight)}
	if r, ok := p.m.rate(); ok {
		s.rate = r
		s.stalled = r == 0 && len(p.m.samples) > 0 && now.Sub(p.m.samples[0].t) >= p.m.window
	}
	s.eta, s.etaKnown = p.m.eta(s.left)
	s.nearEnd = s.left > 0 && (int64(len(p.inflight)) >= s.left || s.stalled)
	if !s.nearEnd {
		return s
	}
	for d, t := range p.inflight {
		if w := now.Sub(t); s.oldest == "" || w > s.oldestWait || (w == s.oldestWait && d < s.oldest) {
			s.oldest, s.oldestWait = d, w
		}
	}
	if p.probes != nil {
		ps := p.probes()
		s.probing = len(ps)
		for _, x := range ps {
			if w := now.Sub(x.since); s.oldestProbe == "" || w > s.probeWait {
				s.oldestProbe, s.probeWait = fmt.Sprintf("%s (%s)", x.ip, x.name), w
			}
		}
	}
	return s
}

func (p *progress) attrs(now time.Time) []any {
	s := p.status(now)
	a := []any{"done", s.done, "left", s.left, "total", s.total, "cached", s.cached}
	switch {
	case s.rate < 0:
		a = append(a, "per_second", "measuring")
	default:
		a = append(a, "per_second", fmt.Sprintf("%.1f", s.rate))
	}
	switch {
	case s.etaKnown:
		a = append(a, "eta", s.eta.Round(time.Second))
	case s.stalled:
		a = append(a, "eta", fmt.Sprintf("unknown (none finished in the last %s)", rateWindow))
	default:
		a = append(a, "eta", "unknown")
	}
	if s.nearEnd {
		a = append(a, "in_flight", s.inFlight)
		if s.oldest != "" {
			a = append(a, "oldest", s.oldest, "waiting", s.oldestWait.Round(time.Second))
		}
		a = append(a, "probing", s.probing)
		if s.oldestProbe != "" {
			a = append(a, "oldest_probe", s.oldestProbe, "probe_waiting", s.probeWait.Round(time.Second))
		}
	}
	return a
}

// describe is the bar's description.
func (p *progress) describe(now time.Time) string {
	s := p.status(now)
	d := "domains"
	if s.cached > 0 {
		d += fmt.Sprintf(" (%d cached of %d)", s.cached, s.total)
	}
	switch {
	case s.rate < 0:
		d += " · measuring"
	case s.etaKnown:
		d += fmt.Sprintf(" · %.1f/s · eta %s", s.rate, s.eta.Round(time.Second))
	default:
		d += fmt.Sprintf(" · %.1f/s", s.rate)
	}
	if s.nearEnd && s.oldest != "" {
		d += fmt.Sprintf(" · %d in flight, %s waiting %s", s.inFlight, s.oldest, s.oldestWait.Round(time.Second))
		if s.oldestProbe != "" {
			d += fmt.Sprintf(" (%d probing, %s %s)", s.probing, s.oldestProbe, s.probeWait.Round(time.Second))
		}
	}
	return d
}

// Started: the scanner took domain d.
func (p *progress) Started(d string) {
	p.mu.Lock()
	if p.early[d] {
		delete(p.early, d)
	} else {
		p.inflight[d] = p.now()
	}
	p.mu.Unlock()
}

// Finished: domain d's result came.
func (p *progress) Finished(d string) {
	p.mu.Lock()
	if _, ok := p.inflight[d]; ok {
		delete(p.inflight, d)
	} else {
		p.early[d] = true
	}
	p.done_++
	p.mu.Unlock()
	if p.bar != nil {
		_ = p.bar.Add(1)
	}
}

// Done: the scan is over.
func (p *progress) Done() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.stopped
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}
