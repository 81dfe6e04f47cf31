package scanner

import (
	"context"
	"time"
)

// windowLimiter is the global connection rate: at most n connections in
// any interval of length per (a sliding window log, n = the rate per second
// and per = 1.05 s up to 1,000/s, see windowGuard). Connections may start
// together, in bursts of up to n, where a leaky bucket would space them
// 1/rate apart.
//
// Why bursts (issue 10): at --rate 20 evenly spaced connections leave the
// process idle between two probes, and on the benchmark machine waking an
// idle process makes the work that follows cost two to three times its CPU
// (the benchmark measures it: an X25519 agreement 110-160 µs back to back,
// 360-660 µs once every 50 ms). Twenty probes started together keep the
// process and its cores busy while they run: the scanner's CPU per domain
// at --rate 20 fell from 2.5-3.0x that of an unlimited run to 1.06-1.38x,
// median 1.12 (make bench-cpu, 3 runs). The rate still holds in every window of one second, not only
// per refill period, as it did with the leaky bucket; each IP still gets
// one connection at a time.
type windowLimiter struct {
	per time.Duration

	// turn is held by the connection waiting for its start, one at a
	// time in arrival order; the next one reckons from the actual starts,
	// not from reservations made long before, so a late wake-up never
	// brings the next window's connections closer.
	turn  chan struct{}
	times []time.Time // when the last len(times) connections started, a ring
	next  int         // the oldest entry of times
}

// maxWindow bounds the log: above this rate the window is shorter than a
// second (per = 1.05 maxWindow/rate), and a second holds at most rate +
// maxWindow.
const maxWindow = 1000

// windowGuard lengthens the window by a twentieth: a burst's connections
// reach the network a little after their start (scheduling, the dial), a
// few milliseconds apart, and a connection of the next burst must not fall
// within the same second as seen by the servers (TestPoliteness counts
// there). The average rate is 1/1.05 of the limit: 19 connections/s at
// --rate 20.
const windowGuard = 20

func newWindowLimiter(rate int) *windowLimiter {
	n := min(max(rate, 1), maxWindow)
	per := time.Duration(n) * time.Second / time.Duration(max(rate, 1))
	return &windowLimiter{
		per:   per + per/windowGuard,
		turn:  make(chan struct{}, 1),
		times: make([]time.Time, n),
	}
}

// wait returns when the next connection may start: no earlier than per
// after the start of the connection n before it. It returns ctx's error
// if ctx ends first (no connection is counted).
func (l *windowLimiter) wait(ctx context.Context) error {
	select {
	case l.turn <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-l.turn }()
	if d := time.Until(l.earliest()); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	l.start(time.Now())
	return nil
}

// start counts a connection starting at now. Called with the turn held.
func (l *windowLimiter) start(now time.Time) {
	l.times[l.next] = now
	l.next = (l.next + 1) % len(l.times)
}

// earliest is when the next connection may start. Called with the turn held.
func (l *windowLimiter) earliest() time.Time { return l.times[l.next].Add(l.per) }
