package scanner

import (
	"context"
	"sync"
)

// Run's concurrency. Config.Concurrency bounds the domains that work at
// once: look up records, connect, probe, judge. A domain that only waits for
// work another domain of the run is doing for it (a shared MX host being
// judged, a probe of an IP it shares, the IP's one connection at a time)
// gives its slot to the next domain meanwhile, and takes a slot again
// before it goes on. Otherwise the customers of a shared hosting IP, whose
// probes one connection at a time take minutes, would hold the slots while
// they queue, and the run would crawl. At most waitFactor × Concurrency
// domains wait so, which bounds the memory of a run whose domains all share
// one slow IP.

const waitFactor = 4

// pool hands out Run's slots.
type pool struct {
	slots chan struct{} // one token per working domain
	room  chan struct{} // one token per domain in flight, working or waiting
}

func newPool(concurrency int) *pool {
	return &pool{
		slots: make(chan struct{}, concurrency),
		room:  make(chan struct{}, (1+waitFactor)*concurrency),
	}
}

// admit waits for room and a slot for one more domain; false when ctx ended.
func (p *pool) admit(ctx context.Context) (*lane, bool) {
	select {
	case p.room <- struct{}{}:
	case <-ctx.Done():
		return nil, false
	}
	l := &lane{p: p, running: 1}
	if !p.acquire(ctx) {
		<-p.room
		return nil, false
	}
	l.held = true
	return l, true
}

func (p *pool) acquire(ctx context.Context) bool {
	select {
	case p.slots <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (p *pool) release() { <-p.slots }

// lane is one domain's claim on a slot. The domain's goroutines tell it
// when they wait for another domain's work (park, unpark), start one
// another (fork, exit) and wait for their own (join): the slot is given up
// while none of them works and one of them waits for another domain.
// A nil *lane (Domain and Check, outside Run) does nothing.
type lane struct {
	p   *pool
	acq sync.Mutex // serialises taking the slot back

	mu      sync.Mutex
	running int  // goroutines working (not parked, not joining)
	parked  int  // goroutines waiting for another domain's work
	held    bool // the domain holds a slot
}

type laneKey struct{}

func withLane(ctx context.Context, l *lane) context.Context {
	return context.WithValue(ctx, laneKey{}, l)
}

func laneOf(ctx context.Context) *lane {
	l, _ := ctx.Value(laneKey{}).(*lane)
	return l
}

// step changes the counters and gives the slot up when nothing works any
// more while something waits for another domain.
func (l *lane) step(running, parked int) {
	l.mu.Lock()
	l.running += running
	l.parked += parked
	release := l.held && l.running == 0 && l.parked > 0
	if release {
		l.held = false
	}
	l.mu.Unlock()
	if release {
		l.p.release()
	}
}

// resume takes a slot back if the domain gave its up.
func (l *lane) resume(ctx context.Context) {
	l.acq.Lock()
	defer l.acq.Unlock()
	l.mu.Lock()
	held := l.held
	l.mu.Unlock()
	if held || !l.p.acquire(ctx) {
		return
	}
	// Hold it, unless the domain went back to waiting meanwhile.
	l.mu.Lock()
	l.held = true
	release := l.running == 0 && l.parked > 0
	if release {
		l.held = false
	}
	l.mu.Unlock()
	if release {
		l.p.release()
	}
}

// fork: a goroutine of the domain is about to start another.
func (l *lane) fork() {
	if l != nil {
		l.step(1, 0)
	}
}

// exit: a goroutine started after fork ends.
func (l *lane) exit() {
	if l != nil {
		l.step(-1, 0)
	}
}

// join runs wait, which waits for goroutines the caller forked.
func (l *lane) join(ctx context.Context, wait func()) {
	if l == nil {
		wait()
		return
	}
	l.step(-1, 0)
	wait()
	l.step(1, 0)
	l.resume(ctx)
}

// park: the caller is about to wait for another domain's work.
func (l *lane) park() {
	if l != nil {
		l.step(-1, 1)
	}
}

// unpark: the wait after park is over; the caller works again once the
// domain holds a slot.
func (l *lane) unpark(ctx context.Context) {
	if l != nil {
		l.step(1, -1)
		l.resume(ctx)
	}
}

// finish gives up the domain's slot and its room in the run.
func (l *lane) finish() {
	l.mu.Lock()
	held := l.held
	l.held = false
	l.mu.Unlock()
	if held {
		l.p.release()
	}
	<-l.p.room
}

// await waits for done or the end of ctx; true if done. A wait for
// another domain's work: the domain's slot may go to another meanwhile.
func await(ctx context.Context, done <-chan struct{}) bool {
	select {
	case <-done:
		return true
	default:
	}
	l := laneOf(ctx)
	l.park()
	defer l.unpark(ctx)
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}

// lockConn takes the IP's connection lock, parking while another domain's
// connection holds it.
func lockConn(ctx context.Context, st *ipState) {
	if st.conn.TryLock() {
		return
	}
	l := laneOf(ctx)
	l.park()
	st.conn.Lock()
	l.unpark(ctx)
}
