package scanner

import (
	"context"
	"testing"
	"time"
)

// TestLane: a domain that waits for another domain's work gives its slot
// up, takes one back before it goes on, and keeps it while any of its
// goroutines works; at most waitFactor × concurrency domains are in flight.
func TestLane(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := newPool(1)
	a, ok := p.admit(ctx)
	if !ok {
		t.Fatal("no slot for the first domain")
	}
	if free(p) {
		t.Fatal("a working domain left its slot free")
	}

	// a starts two goroutines and waits for them (join); one of them
	// waits for another domain, the other works: the slot stays.
	a.fork()
	a.fork()
	a.step(-1, 0) // the parent joins
	a.park()
	if free(p) {
		t.Fatal("slot given up while a goroutine of the domain still works")
	}
	// The working one ends: now nothing works.
	a.exit()
	if !free(p) {
		t.Fatal("slot kept while the domain only waits")
	}

	// b takes the slot; a, done waiting, must wait for b.
	b, ok := p.admit(ctx)
	if !ok {
		t.Fatal("no slot for the second domain")
	}
	resumed := make(chan struct{})
	go func() {
		a.unpark(ctx)
		close(resumed)
	}()
	select {
	case <-resumed:
		t.Fatal("a went on while b held the only slot")
	case <-time.After(50 * time.Millisecond):
	}
	b.finish()
	<-resumed
	if free(p) {
		t.Fatal("a goes on without a slot")
	}
	a.exit()     // the waiting child ends
	a.step(1, 0) // the parent's join returns
	a.finish()
	if !free(p) || len(p.room) != 0 {
		t.Fatalf("slots %d, room %d after every domain finished", len(p.slots), len(p.room))
	}

	// Room: 1 working + waitFactor waiting domains, then admit blocks.
	var lanes []*lane
	for range 1 + waitFactor {
		l, ok := p.admit(ctx)
		if !ok {
			t.Fatal("admit failed")
		}
		l.park()
		lanes = append(lanes, l)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, ok := p.admit(short); ok {
		t.Fatalf("%d domains in flight with concurrency 1", 2+waitFactor)
	}
	for _, l := range lanes {
		l.finish()
	}
}

func free(p *pool) bool { return len(p.slots) < cap(p.slots) }

// A nil lane (Domain, Check) does nothing.
func TestLaneNil(t *testing.T) {
	t.Parallel()
	var l *lane
	l.fork()
	l.park()
	l.unpark(context.Background())
	l.exit()
	ran := false
	l.join(context.Background(), func() { ran = true })
	if !ran {
		t.Fatal("join did not wait")
	}
}
