// Package limiter is the program's one token-bucket rate limiter: the
// design card's github.com/projectdiscovery/ratelimit (N tokens every
// interval), with what its Limiter lacks and our callers need: a wait that
// ends with a context (the resolver's queries) and a take that does not wait
// at all (the gateway refuses a live check over its rate instead of queueing
// it).
//
// It owns the rate and nothing else: it must not know what it limits. (The
// scanner's SMTP connections use scanner/window.go's sliding window
// instead, which starts a window's connections together; its comment says
// why.)
package limiter

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/projectdiscovery/ratelimit"
)

// ErrStopped is Wait's error after Stop.
var ErrStopped = errors.New("limiter: stopped")

// Limiter hands out n tokens every interval. Safe for concurrent use.
type Limiter struct {
	l      *ratelimit.Limiter
	tokens chan struct{} // n-1 tokens ready, and one more while pump offers it
	done   chan struct{}
	once   sync.Once
}

// New returns a Limiter of n tokens (at least 1) every interval. Stop it
// when done.
func New(n uint, interval time.Duration) *Limiter {
	n = max(n, 1)
	l := &Limiter{
		l:      ratelimit.New(context.Background(), n, interval),
		tokens: make(chan struct{}, n-1),
		done:   make(chan struct{}),
	}
	go l.pump()
	return l
}

// PerSecond returns a Limiter of rate tokens per second: one second's worth
// at a time (at least one), or, below one a second, one every 1/rate
// seconds.
func PerSecond(rate float64) *Limiter {
	if rate >= 1 {
		return New(uint(rate), time.Second)
	}
	return New(1, time.Duration(float64(time.Second)/rate))
}

// pump moves tokens from the library's limiter, whose Take cannot be
// abandoned, to l.tokens, where a receive can be (Wait) or need not block
// (TryTake). l.tokens holds up to n: a burst of n is ready at once, as the
// library's own window gives it, also to TryTake calls back to back.
func (l *Limiter) pump() {
	for {
		l.l.Take() // returns at once after l.l.Stop
		select {
		case l.tokens <- struct{}{}:
		case <-l.done:
			return
		}
	}
}

// Wait takes a token, waiting for one until ctx ends (ctx's error) or the
// Limiter is stopped (ErrStopped).
func (l *Limiter) Wait(ctx context.Context) error {
	select {
	case <-l.tokens:
		select {
		case <-l.done:
			return ErrStopped // a token the pump handed over while stopping
		default:
			return nil
		}
	case <-ctx.Done():
		return ctx.Err()
	case <-l.done:
		return ErrStopped
	}
}

// TryTake takes a token if one is available now, without waiting; false
// after Stop.
func (l *Limiter) TryTake() bool {
	select {
	case <-l.done:
		return false
	default:
	}
	select {
	case <-l.tokens:
		return true
	default:
		return false
	}
}

// Stop ends the Limiter: waits end with ErrStopped and its goroutines exit,
// the library's at its next tick (it does not watch its context while it
// waits for one: at most an interval). It may be called more than once.
func (l *Limiter) Stop() {
	l.once.Do(func() {
		close(l.done)
		l.l.Stop()
	})
}
