package scanner

import (
	"context"
	"sync"
)

// memo computes a value once per key per run and shares it, read-only: the
// first caller for a key computes it, later callers wait for it (await: a
// waiting domain's slot may serve another domain meanwhile) or take it
// when it is ready. A run's MX host lookups, judged hosts, TLSA lookups,
// STARTTLS retries and DANE probes go through one each.
//
// The zero memo is ready to use. Values are never evicted: a run's memos
// live as long as its Scanner.
type memo[K comparable, V any] struct {
	m sync.Map // K -> *memoEntry[V]
}

type memoEntry[V any] struct {
	done chan struct{}
	v    V
}

// do returns key's value, computing it with compute when no caller has;
// ok is false when ctx ended while waiting for another caller's.
func (m *memo[K, V]) do(ctx context.Context, key K, compute func() V) (v V, ok bool) {
	return m.doUnless(ctx, key, nil, compute)
}

// doUnless is do, except that a value for which redo reports true is
// computed again, by the first caller that finds it so (the others wait
// for that one); redo nil: never.
func (m *memo[K, V]) doUnless(ctx context.Context, key K, redo func(V) bool, compute func() V) (v V, ok bool) {
	var mine *memoEntry[V]
	for {
		cur, found := m.m.Load(key)
		if !found {
			if mine == nil {
				mine = &memoEntry[V]{done: make(chan struct{})}
			}
			if cur, found = m.m.LoadOrStore(key, mine); !found {
				break
			}
		}
		old := cur.(*memoEntry[V])
		if !await(ctx, old.done) {
			return v, false
		}
		if redo == nil || !redo(old.v) {
			return old.v, true
		}
		if mine == nil {
			mine = &memoEntry[V]{done: make(chan struct{})}
		}
		if m.m.CompareAndSwap(key, old, mine) {
			break
		}
	}
	mine.v = compute()
	close(mine.done)
	return mine.v, true
}
