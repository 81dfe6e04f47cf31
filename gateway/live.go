package gateway

import (
	"context"
	"errors"
	"fmt"

	"github.com/tlsready/tlsready/scanner/result"
)

// Live check errors.
var (
	ErrLiveDisabled    = errors.New("gateway: live checks are disabled")
	ErrLiveRateLimited = errors.New("gateway: live check rate limit reached")
	ErrLiveFailed      = errors.New("gateway: live check failed")
)

// flight is one live check in progress; later callers for the same domain
// wait for it instead of starting another scan.
type flight struct {
	done chan struct{}
	ans  Answer
	err  error
}

// liveAnswer answers for d, scanning it live when the cache does not know it
// (or knows only a stale result): at most one scan per domain at a time,
// LiveRate scans per second overall, each bounded by LiveTimeout. The scan
// runs detached from ctx (other callers may be waiting for it); ctx bounds
// only this caller's wait.
func (s *Server) liveAnswer(ctx context.Context, d string) (Answer, error) {
	if s.cfg.Live == nil {
		return Answer{}, ErrLiveDisabled
	}
	rec, ok, err := s.lookup(ctx, d, srcLive)
	if err != nil {
		return Answer{}, err
	}
	if ok && !s.stale(rec.ScannedAt, s.cfg.Now()) {
		return s.answerOf(rec, s.cfg.Now()), nil
	}
	s.flMu.Lock()
	f, joined := s.flights[d]
	if !joined {
		if !s.limiter.TryTake() {
			s.flMu.Unlock()
			s.m.live.WithLabelValues("rate-limited").Inc()
			return Answer{}, ErrLiveRateLimited
		}
		f = &flight{done: make(chan struct{})}
		s.flights[d] = f
	}
	s.flMu.Unlock()
	if joined {
		s.m.live.WithLabelValues("joined").Inc()
		if s.liveJoined != nil {
			s.liveJoined(d)
		}
	} else {
		go s.runFlight(context.WithoutCancel(ctx), d, f)
	}
	select {
	case <-f.done:
		return f.ans, f.err
	case <-ctx.Done():
		return Answer{}, ctx.Err()
	}
}

func (s *Server) runFlight(ctx context.Context, d string, f *flight) {
	defer func() {
		s.flMu.Lock()
		delete(s.flights, d)
		s.flMu.Unlock()
		close(f.done)
	}()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.LiveTimeout)
	defer cancel()
	r, err := s.cfg.Live.Check(ctx, d)
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	if err == nil && (r.Domain != d || !r.Verdict.Valid()) {
		err = fmt.Errorf("checker returned a result for %q with verdict %q", r.Domain, r.Verdict)
	}
	if err != nil {
		s.m.live.WithLabelValues("failed").Inc()
		s.log.Warn("gateway: live check failed", "domain", d, "err", err)
		f.err = fmt.Errorf("%w: %w", ErrLiveFailed, err)
		return
	}
	if r.ScannedAt.IsZero() {
		r.ScannedAt = s.cfg.Now()
	}
	saveCtx, cancelSave := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.LiveTimeout)
	defer cancelSave()
	serr := errors.New("the store is not open")
	if st := s.store(); st != nil {
		serr = st.SaveResults(saveCtx, []result.Result{r})
	}
	if serr != nil {
		s.log.Warn("gateway: live check result not saved", "domain", d, "err", serr)
	}
	rec := recordOf(r)
	s.addOverlay(rec, serr == nil)
	s.m.live.WithLabelValues("ok").Inc()
	f.ans = s.answerOf(rec, s.cfg.Now())
	f.ans.Live = true
}
