package scanner

import (
	"context"
	"errors"
	"testing"
	"time"
)

// startAt is wait without the clock: a connection asked for at now starts
// at the earliest time the limiter allows.
func startAt(l *windowLimiter, now time.Time) time.Time {
	at := l.earliest()
	if at.Before(now) {
		at = now
	}
	l.start(at)
	return at
}

// The starts a window limiter allows: bursts of n, then n more per
// window, never more than n in any window of length per.
func TestWindowLimiterStarts(t *testing.T) {
	t.Parallel()
	l := newWindowLimiter(20)
	if l.per != 1050*time.Millisecond || len(l.times) != 20 {
		t.Fatalf("rate 20: window %v of %d", l.per, len(l.times))
	}
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	var got []time.Time
	// 70 connections asked for at once (a backlog): 20 at t0, 20 at
	// t0+1.05s...
	for range 70 {
		got = append(got, startAt(l, t0))
	}
	for i, at := range got {
		if want := t0.Add(time.Duration(i/20) * l.per); !at.Equal(want) {
			t.Fatalf("connection %d at %v, want %v", i, at.Sub(t0), want.Sub(t0))
		}
	}
	// Asked for one at a time, 30 ms apart: each starts when asked until
	// the window is full.
	l = newWindowLimiter(20)
	got = got[:0]
	for i := range 60 {
		got = append(got, startAt(l, t0.Add(time.Duration(i)*30*time.Millisecond)))
	}
	for i := range got {
		if i > 0 && got[i].Before(got[i-1]) {
			t.Fatalf("connection %d before connection %d", i, i-1)
		}
		if i >= 20 && got[i].Sub(got[i-20]) < l.per {
			t.Fatalf("connections %d and %d %v apart: 21 in one second", i-20, i, got[i].Sub(got[i-20]))
		}
	}
	if !got[19].Equal(t0.Add(19*30*time.Millisecond)) || !got[20].Equal(t0.Add(l.per)) {
		t.Errorf("connection 19 at %v, 20 at %v", got[19].Sub(t0), got[20].Sub(t0))
	}
	// After an idle spell the next burst starts at once.
	late := t0.Add(time.Hour)
	for i := range 20 {
		if at := startAt(l, late); !at.Equal(late) {
			t.Fatalf("after an idle hour, connection %d waits %v", i, at.Sub(late))
		}
	}
	if at := startAt(l, late); !at.Equal(late.Add(l.per)) {
		t.Errorf("the 21st after an idle hour at %v", at.Sub(late))
	}
}

// Above maxWindow connections per second the log stays maxWindow long and
// the window shrinks: rate 100,000 is 1,000 per 10.5 ms.
func TestWindowLimiterHighRate(t *testing.T) {
	t.Parallel()
	l := newWindowLimiter(100000)
	if len(l.times) != maxWindow || l.per != 10500*time.Microsecond {
		t.Fatalf("window %v of %d", l.per, len(l.times))
	}
	l = newWindowLimiter(0)
	if len(l.times) != 1 || l.per != 1050*time.Millisecond {
		t.Fatalf("rate 0: window %v of %d", l.per, len(l.times))
	}
}

// wait sleeps until the window allows and gives up when ctx ends.
func TestWindowLimiterWait(t *testing.T) {
	t.Parallel()
	l := newWindowLimiter(2)
	ctx := context.Background()
	start := time.Now()
	for range 3 { // 2 at once, the third a window later
		if err := l.wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d < l.per {
		t.Errorf("3 connections at rate 2 within %v", d)
	}
	if err := l.wait(ctx); err != nil { // the second window's second
		t.Fatal(err)
	}
	before := l.earliest()
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- l.wait(cctx) }() // a third window away
	time.Sleep(10 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("wait after cancel: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("wait did not end with its context")
	}
	// The cancelled wait took no connection.
	if after := l.earliest(); !after.Equal(before) {
		t.Errorf("the next start moved by %v", after.Sub(before))
	}
}
