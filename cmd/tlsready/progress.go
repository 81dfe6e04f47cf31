package main

import (
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress shows a bar on a terminal, and a log line every 10 s otherwise (cron).
type progress struct {
	bar   *progressbar.ProgressBar
	n     atomic.Int64
	total int
	stop  chan struct{}
	done_ chan struct{}
}

func newProgress(total int, quiet bool, log *slog.Logger) *progress {
	p := &progress{total: total, stop: make(chan struct{}), done_: make(chan struct{})}
	if quiet || total == 0 {
		close(p.done_)
		return p
	}
	if term.IsTerminal(int(os.Stderr.Fd())) {
		p.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(os.Stderr),
			progressbar.OptionSetDescription("domains"),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("domains"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
		close(p.done_)
		return p
	}
	start := time.Now()
	go func() {
		defer close(p.done_)
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				n := p.n.Load()
				el := time.Since(start)
				rate := float64(n) / el.Seconds()
				var eta time.Duration
				if rate > 0 {
					eta = time.Duration(float64(int64(total)-n)/rate) * time.Second
				}
				log.Info("progress", "done", n, "total", total, "per_second", int(rate), "eta", eta.Round(time.Second))
			}
		}
	}()
	return p
}

func (p *progress) add(n int) {
	p.n.Add(int64(n))
	if p.bar != nil {
		_ = p.bar.Add(n)
	}
}

func (p *progress) done() {
	if p.bar != nil {
		_ = p.bar.Finish()
		return
	}
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done_
}
