package job

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/tlsready/tlsready/scanner"
	"github.com/tlsready/tlsready/store"
)

// A shared run: several `tlsready scan --db postgres://...` workers, on one
// machine or several, each running the same command, share one run (README,
// "Running on several machines"). The first to take the setup lock begins
// (or resumes) the run, ingests the register and queues the pending domains;
// the others find the queue and join. Each worker claims domains in batches
// with leases, renewed while it works; the MX IPs are leased too, and a
// worker asks the holder of an IP's lease for the probes it needs
// (leaseBroker), so every MX IP is connected to by one worker per run. A
// worker killed loses its unfinished leases, which the others take over
// once they expire. The last worker finishes the run, once.

// newWorkerID names this worker in the run's tables: host, pid and a random
// part (a pid is reused after a restart).
func newWorkerID() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// sharedWorker is this process's part of a shared run.
type sharedWorker struct {
	st     *store.Store
	run    int64
	id     string
	lease  time.Duration
	log    *slog.Logger
	broker *leaseBroker

	mu        sync.Mutex
	lastRenew time.Time
}

// renew keeps the worker's leases alive every lease/3 until ctx ends. A
// worker that could not renew for two thirds of the lease stops (lost is
// called) before its leases expire and pass to the others: two workers
// never hold one MX IP.
func (w *sharedWorker) renew(ctx context.Context, lost func(error)) {
	t := time.NewTicker(w.lease / 3)
	defer t.Stop()
	w.mu.Lock()
	w.lastRenew = time.Now()
	w.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := w.st.RenewLeases(ctx, w.run, w.id, w.lease)
		w.mu.Lock()
		if err == nil {
			w.lastRenew = time.Now()
		}
		since := time.Since(w.lastRenew)
		w.mu.Unlock()
		if err != nil && ctx.Err() == nil {
			w.log.Warn("renewing leases failed", "err", err)
			if since >= w.lease*2/3 {
				lost(fmt.Errorf("this worker could not renew its leases for %v (--lease %v): it stops, and the other workers take its domains and MX IPs over: %w",
					since.Round(time.Second), w.lease, err))
				return
			}
		}
	}
}

// feed claims domains in batches and hands them to the scanner until no
// domain of the run is left (every one saved in the run, by any worker):
// while other workers still hold leases, it waits, to take over those that
// expire. It returns the domains it handed out; the caller closes in.
//
// drained is called the first time nothing is left to claim.
func (w *sharedWorker) feed(ctx context.Context, in chan<- string, batch int, started func(string), drained func()) (int64, error) {
	var n int64
	idle := time.Duration(0)
	for {
		ds, err := w.st.ClaimDomains(ctx, w.run, w.id, batch, w.lease)
		if err != nil {
			return n, err
		}
		for _, d := range ds {
			select {
			case in <- d:
				n++
				started(d)
			case <-ctx.Done():
				return n, nil
			}
		}
		if len(ds) > 0 {
			idle = 0
			continue
		}
		if drained != nil {
			drained()
			drained = nil
		}
		left, err := w.st.WorkLeft(ctx, w.run)
		if err != nil {
			return n, err
		}
		if left == 0 {
			return n, nil
		}
		// Domains in flight here or elsewhere: look again soon, then
		// less often (a dead worker's leases expire only after --lease).
		idle = min(max(2*idle, 200*time.Millisecond), 2*time.Second)
		select {
		case <-time.After(idle):
		case <-ctx.Done():
			return n, nil
		}
	}
}

// leaseBroker is the scanner's IPBroker over the run's tables: an IP's
// lease is taken by the first worker that needs it; a worker that does not
// hold it records a request and reads the holder's answer. One goroutine
// polls the answers for all waiting requests; another answers the requests
// made of this worker's IPs with Scanner.Answer.
type leaseBroker struct {
	w *sharedWorker

	mu   sync.Mutex
	held map[netip.Addr]bool
	wait map[store.ProbeKey]*askWait
	kick chan struct{}
}

type askWait struct {
	done    chan struct{}
	outcome []byte
	ok      bool
	err     error
}

// pollEvery is how often waiting requests and open requests are looked up.
const pollEvery = 50 * time.Millisecond

func newLeaseBroker(w *sharedWorker) *leaseBroker {
	return &leaseBroker{w: w, held: map[netip.Addr]bool{}, wait: map[store.ProbeKey]*askWait{}, kick: make(chan struct{}, 1)}
}

func (b *leaseBroker) Hold(ctx context.Context, ip netip.Addr) (bool, error) {
	b.mu.Lock()
	h := b.held[ip]
	b.mu.Unlock()
	if h {
		return true, nil
	}
	ok, err := b.w.st.HoldIP(ctx, b.w.run, b.w.id, ip.String(), b.w.lease)
	if err != nil {
		return false, err
	}
	if ok {
		b.mu.Lock()
		b.held[ip] = true
		b.mu.Unlock()
	}
	return ok, nil
}

func (b *leaseBroker) Ask(ctx context.Context, req scanner.ProbeRequest) ([]byte, bool, error) {
	key := store.ProbeKey{IP: req.IP.String(), Key: req.Key}
	if err := b.w.st.RequestProbe(ctx, b.w.run, key); err != nil {
		return nil, false, err
	}
	b.mu.Lock()
	aw := b.wait[key]
	if aw == nil {
		aw = &askWait{done: make(chan struct{})}
		b.wait[key] = aw
	}
	b.mu.Unlock()
	select {
	case b.kick <- struct{}{}:
	default:
	}
	select {
	case <-aw.done:
		return aw.outcome, aw.ok, aw.err
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
}

// pollAnswers delivers the answers to waiting requests until ctx ends.
func (b *leaseBroker) pollAnswers(ctx context.Context) {
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-b.kick:
		}
		b.mu.Lock()
		keys := make([]store.ProbeKey, 0, len(b.wait))
		for k := range b.wait {
			keys = append(keys, k)
		}
		b.mu.Unlock()
		if len(keys) == 0 {
			continue
		}
		states, err := b.w.st.ProbeOutcomes(ctx, b.w.run, keys)
		if err != nil && ctx.Err() != nil {
			return
		}
		b.mu.Lock()
		for _, k := range keys {
			aw := b.wait[k]
			st, found := states[k]
			switch {
			case err != nil:
				aw.err = err
			case found && st.Outcome != nil:
				aw.outcome, aw.ok = st.Outcome, true
			case !found || !st.Held:
				aw.ok = false // the holder is gone: take the IP over
			default:
				continue // still waiting
			}
			delete(b.wait, k)
			close(aw.done)
		}
		b.mu.Unlock()
	}
}

// answer makes the probes the other workers asked of this worker's IPs
// until ctx ends.
func (b *leaseBroker) answer(ctx context.Context, sc *scanner.Scanner) {
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	busy := map[store.ProbeKey]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		reqs, err := b.w.st.OpenProbeRequests(ctx, b.w.run, b.w.id)
		if err != nil {
			if ctx.Err() == nil {
				b.w.log.Warn("reading probe requests failed", "err", err)
			}
			continue
		}
		for _, k := range reqs {
			mu.Lock()
			if busy[k] {
				mu.Unlock()
				continue
			}
			busy[k] = true
			mu.Unlock()
			ip, err := netip.ParseAddr(k.IP)
			if err != nil {
				continue // stays busy: never asked again
			}
			wg.Go(func() {
				out, err := sc.Answer(ctx, scanner.ProbeRequest{IP: ip, Key: k.Key})
				if errors.Is(err, scanner.ErrBadRequest) {
					b.w.log.Warn("malformed probe request ignored", "ip", k.IP)
					return // stays busy
				}
				if err == nil {
					err = b.w.st.PutProbeOutcome(ctx, b.w.run, k, out)
				}
				if err != nil && ctx.Err() == nil {
					b.w.log.Warn("answering a probe request failed", "ip", k.IP, "err", err)
				}
				mu.Lock()
				delete(busy, k) // answered, or to try again
				mu.Unlock()
			})
		}
	}
}

// mergeWorkerStats is the finished shared run's stats: the ingest's (base)
// with the sums of what the workers reported.
func mergeWorkerStats(base store.RunStats, reported []store.RunStats) store.RunStats {
	s := base
	for _, r := range reported {
		s.Scanned += r.Scanned
		s.MXIPs += r.MXIPs
		s.Connections += r.Connections
		s.SNIPerNameIPs += r.SNIPerNameIPs
		s.DNSQueries += r.DNSQueries
	}
	return s
}
