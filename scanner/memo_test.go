package scanner

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestMemo(t *testing.T) {
	t.Parallel()
	var m memo[string, int]
	var calls atomic.Int32
	release := make(chan struct{})
	var wg sync.WaitGroup
	got := make([]int, 20)
	for i := range got {
		wg.Go(func() {
			v, ok := m.do(context.Background(), "k", func() int {
				calls.Add(1)
				<-release
				return 42
			})
			if !ok {
				t.Error("not ok")
			}
			got[i] = v
		})
	}
	time.Sleep(20 * time.Millisecond)
	close(release)
	wg.Wait()
	if calls.Load() != 1 {
		t.Errorf("computed %d times, want once", calls.Load())
	}
	for i, v := range got {
		if v != 42 {
			t.Errorf("caller %d got %d", i, v)
		}
	}
	if v, _ := m.do(context.Background(), "other", func() int { return 7 }); v != 7 {
		t.Errorf("other key: %d", v)
	}
}

func TestMemoWaitEndsWithContext(t *testing.T) {
	t.Parallel()
	var m memo[string, int]
	release := make(chan struct{})
	defer close(release)
	started := make(chan struct{})
	go m.do(context.Background(), "k", func() int { close(started); <-release; return 1 })
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, ok := m.do(ctx, "k", func() int { t.Error("computed twice"); return 2 }); ok {
		t.Error("ok after the context ended")
	}
}

func TestMemoRedo(t *testing.T) {
	t.Parallel()
	var m memo[string, int]
	var calls atomic.Int32
	compute := func() int { return int(calls.Add(1)) }
	stale := func(v int) bool { return v < 3 }
	for want := 1; want <= 3; want++ {
		v, _ := m.doUnless(context.Background(), "k", stale, compute)
		if v != want {
			t.Fatalf("got %d, want %d", v, want)
		}
	}
	// 3 is not stale: kept.
	if v, _ := m.doUnless(context.Background(), "k", stale, compute); v != 3 || calls.Load() != 3 {
		t.Errorf("got %d after %d computations", v, calls.Load())
	}
}

// BenchmarkMemoHit: a run's shared MX host, asked for by domain after
// domain. "before" is the pattern memo replaced, which made an entry and
// its channel on every call, found or not.
func BenchmarkMemoHit(b *testing.B) {
	ctx := context.Background()
	b.Run("memo", func(b *testing.B) {
		var m memo[string, int]
		m.do(ctx, "mx.provider.example", func() int { return 1 })
		b.ReportAllocs()
		for b.Loop() {
			m.do(ctx, "mx.provider.example", func() int { return 2 })
		}
	})
	b.Run("before", func(b *testing.B) {
		type entry struct {
			done chan struct{}
			v    int
		}
		var m sync.Map
		first := &entry{done: make(chan struct{}), v: 1}
		close(first.done)
		m.Store("mx.provider.example", first)
		b.ReportAllocs()
		for b.Loop() {
			e := &entry{done: make(chan struct{})}
			if v, loaded := m.LoadOrStore("mx.provider.example", e); loaded {
				await(ctx, v.(*entry).done)
			}
		}
	})
}
