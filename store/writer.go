package store

import (
	"cmp"
	"context"
	"sync"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
)

// Writer batches results from many goroutines into few transactions.
// It is the only writer of results during a scan.
//
// Add may be called from any goroutine, never after Close. An invalid result
// (see SaveResults) is dropped alone; a batch whose transaction fails is lost.
// Either way the writer goes on and keeps the first error for Err and Close.
type Writer struct {
	s        *Store
	batch    int
	interval time.Duration
	queue    chan result.Result
	done     chan struct{}
	onFlush  func(n int, err error) // tests: called after each commit attempt

	closeOnce sync.Once
	mu        sync.Mutex
	err       error
}

// Writer defaults, used for a batch or interval <= 0.
const (
	DefaultWriterBatch    = 256
	DefaultWriterInterval = time.Second
)

// NewWriter starts a writer that commits every batch results or every interval.
func (s *Store) NewWriter(batch int, interval time.Duration) *Writer {
	return s.newWriter(batch, interval, nil)
}

func (s *Store) newWriter(batch int, interval time.Duration, onFlush func(int, error)) *Writer {
	if batch <= 0 {
		batch = DefaultWriterBatch
	}
	if interval <= 0 {
		interval = DefaultWriterInterval
	}
	w := &Writer{
		s:        s,
		batch:    batch,
		interval: interval,
		queue:    make(chan result.Result, 2*batch),
		done:     make(chan struct{}),
		onFlush:  onFlush,
	}
	go w.loop()
	return w
}

// Add queues a result; it blocks when the queue is full.
func (w *Writer) Add(r result.Result) { w.queue <- r }

// Close flushes what is queued and returns the first write error.
// Calling it again returns the same error.
func (w *Writer) Close() error {
	w.closeOnce.Do(func() { close(w.queue) })
	<-w.done
	return w.Err()
}

// Err returns the first write error so far (nil if none).
func (w *Writer) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *Writer) loop() {
	defer close(w.done)
	tick := time.NewTicker(w.interval)
	defer tick.Stop()
	buf := make([]result.Result, 0, w.batch)
	// The statements are prepared once for the writer's lifetime (issue 10);
	// when that fails, each transaction prepares its own and reports why.
	var pre *saveStmts
	defer func() {
		if pre != nil {
			pre.close()
		}
	}()
	flush := func() {
		if len(buf) == 0 {
			return
		}
		// An invalid result is dropped alone (and reported), not with its batch.
		var err error
		valid := make([]result.Result, 0, len(buf))
		for i, r := range buf {
			if verr := validResult(i, r); verr != nil {
				err = cmp.Or(err, verr)
				continue
			}
			valid = append(valid, r)
		}
		ctx := context.Background()
		if pre == nil && !w.s.readOnly && len(valid) > 0 {
			pre, _ = w.s.prepareSave(ctx, w.s.w)
		}
		if serr := w.s.saveResultsWith(ctx, valid, pre); serr != nil {
			err = cmp.Or(err, serr)
		}
		if err != nil {
			w.mu.Lock()
			w.err = cmp.Or(w.err, err)
			w.mu.Unlock()
		}
		if w.onFlush != nil {
			w.onFlush(len(buf), err)
		}
		clear(buf) // drop references to the results
		buf = buf[:0]
	}
	for {
		select {
		case r, ok := <-w.queue:
			if !ok {
				flush()
				return
			}
			buf = append(buf, r)
			if len(buf) >= w.batch {
				flush()
				tick.Reset(w.interval)
			}
		case <-tick.C:
			flush()
		}
	}
}
