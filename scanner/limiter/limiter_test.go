package limiter

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestTryTakeBurstThenRefused(t *testing.T) {
	t.Parallel()
	l := New(3, time.Hour)
	defer l.Stop()
	deadline := time.Now().Add(5 * time.Second)
	got := 0
	for got < 3 && time.Now().Before(deadline) {
		if l.TryTake() {
			got++
		} else {
			time.Sleep(time.Millisecond) // the pump fills the burst in the background
		}
	}
	if got != 3 {
		t.Fatalf("took %d of a burst of 3", got)
	}
	time.Sleep(20 * time.Millisecond)
	if l.TryTake() {
		t.Error("a fourth token within the interval")
	}
}

func TestWaitHonoursContextAndRefills(t *testing.T) {
	t.Parallel()
	l := New(1, 50*time.Millisecond)
	defer l.Stop()
	ctx := context.Background()
	start := time.Now()
	for range 3 {
		if err := l.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// 3 tokens at 1 per 50 ms: the first at once, then at least 2 intervals.
	if el := time.Since(start); el < 90*time.Millisecond {
		t.Errorf("3 tokens in %v at 1 per 50ms", el)
	}
	l2 := New(1, time.Hour)
	defer l2.Stop()
	if err := l2.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := l2.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait = %v, want the context's deadline", err)
	}
}

// TestStop: waits end, and no goroutine outlives the Limiter by more than an
// interval (the library's own goroutine sees its stop at its next tick).
func TestStop(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	l := New(1, 100*time.Millisecond)
	if err := l.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- l.Wait(context.Background()) }()
	l.Stop()
	l.Stop()
	if err := <-done; !errors.Is(err, ErrStopped) {
		t.Errorf("Wait after Stop = %v", err)
	}
}

func TestPerSecond(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		rate     float64
		n        int
		interval time.Duration
	}{{20, 20, time.Second}, {1, 1, time.Second}, {0.5, 1, 2 * time.Second}} {
		l := PerSecond(tt.rate)
		if c := cap(l.tokens) + 1; c != tt.n {
			t.Errorf("PerSecond(%v): burst %d, want %d", tt.rate, c, tt.n)
		}
		l.Stop()
	}
}
