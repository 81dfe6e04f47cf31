package job

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tlsready/tlsready/scanner"
	"github.com/tlsready/tlsready/scanner/register"
	"github.com/tlsready/tlsready/scanner/resolve"
	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/store"
)

// Config is one scan: the register, the store, and the scanner's settings.
type Config struct {
	// Input is the register's path (addresses or CSV, optionally gzipped;
	// "-": standard input).
	Input string
	// DB is the store: a SQLite file or a postgres:// URL. On PostgreSQL,
	// several processes running the same Config share one run.
	DB string
	// KeepAddresses stores full addresses; false: only recipient ids and
	// domains.
	KeepAddresses bool
	// RescanAfter: a domain whose stored result is older is scanned again; a
	// younger result is reused (not scanned again, counted as cached). 0:
	// every domain is scanned. tlsready scan's default is DefaultRescanAfter.
	RescanAfter time.Duration
	// Lease is how long a worker's claims on domains and MX IPs in a shared
	// run last without renewal (renewed every third of it); 0: DefaultLease.
	Lease time.Duration

	// Resolver configures the DNS client the run makes (and closes).
	// Resolver.Logger nil: Log.
	Resolver resolve.Config
	// ResolverName is recorded in the run's stats as its resolver (as the
	// operator gave it; empty: the system's).
	ResolverName string
	// Scanner configures the scanner. Its Resolver, STSCache and Logger are
	// set by Run, and its IPBroker in a shared run.
	Scanner scanner.Config
	// Version is the scanner's version, recorded in the run's stats.
	Version string

	// Log receives the run's log; nil: discard.
	Log *slog.Logger
	// Progress, when set, is called once the pending domains are known and
	// is then told of each domain started and finished.
	Progress func(Plan) Progress
	// Memory sets the Go garbage collector for the run; zero: unchanged.
	Memory Memory
}

const (
	// DefaultLease is the lease of a shared run's worker when Config.Lease
	// is 0.
	DefaultLease = 30 * time.Second
	// DefaultRescanAfter is tlsready scan's --rescan-after.
	DefaultRescanAfter = 20 * time.Hour
)

// Memory is the garbage collector's settings for a run (runtime/debug).
// They are the process's: Run sets them for its duration and puts the
// previous ones back, so only a process that does nothing else at the same
// time should set them.
type Memory struct {
	// Limit is the soft memory limit in bytes (debug.SetMemoryLimit); 0:
	// unchanged.
	Limit int64
	// GCPercent is the heap growth between collections
	// (debug.SetGCPercent); 0: unchanged.
	GCPercent int
}

// Plan is what a run is about to scan, for its progress display.
type Plan struct {
	Pending int64 // domains this invocation scans (in a shared run: the run's domains left)
	Total   int64 // the run's domains
	// Probing lists the MX IPs being probed now.
	Probing func() []scanner.Probing
}

// Progress is told of a run's progress. Started and Finished may be called
// from several goroutines, and Finished before Started for one domain.
type Progress interface {
	Started(domain string)
	Finished(domain string)
	// Done is called once, when the scan is over.
	Done()
}

// Summary is what a finished (or interrupted) run reports.
type Summary struct {
	Run      store.Run                   // the run, finished (when it finished)
	Verdicts map[result.Verdict][2]int64 // domains, citizens per verdict; nil unless finished
	Elapsed  time.Duration
	Ingest   time.Duration // reading, normalising, deduplicating and storing the register
	Scan     time.Duration // scanning the pending domains, results written
	Pending  int           // domains scanned in this invocation
}

// Errors a run ends with, for errors.Is; the error's text says more.
var (
	// ErrInterrupted: the context was cancelled. What finished is saved, and
	// running the same Config again resumes the run.
	ErrInterrupted = errors.New("job: interrupted")
	// ErrNetworkDown: this side's network cannot scan (outbound port 25
	// blocked, the resolver dead or not answering). Nothing cached was
	// overwritten.
	ErrNetworkDown = errors.New("job: this network cannot scan")
	// ErrScanLocked: another scan is running on the database.
	ErrScanLocked = errors.New("job: another scan is running on this database")
	// ErrNoRegister: the register does not exist.
	ErrNoRegister = errors.New("job: no such register")
)

// kindError is err, which errors.Is also finds to be kind.
type kindError struct{ kind, err error }

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.kind, e.err} }

func mark(kind, err error) error { return &kindError{kind: kind, err: err} }

// Results are committed 500 at a time, or every 2 s: at --rate 20 a commit
// (a transaction with its prepared statements) every 250 ms cost more CPU
// than the probes it saved (issue 10). An interrupted run still flushes;
// kill -9 loses at most the last 2 s, probed again on resume.
const (
	writeBatch = 500
	writeEvery = 2 * time.Second
)

// Run ingests the register, scans what is pending and finishes the run. The
// summary holds what is known when it returns, whether it finished or not.
func Run(ctx context.Context, cfg Config) (Summary, error) {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	var sum Summary
	started := time.Now()
	if cfg.Memory.Limit > 0 {
		defer debug.SetMemoryLimit(debug.SetMemoryLimit(cfg.Memory.Limit))
	}
	if cfg.Memory.GCPercent > 0 {
		defer debug.SetGCPercent(debug.SetGCPercent(cfg.Memory.GCPercent))
	}

	// The register and the resolver are checked before the database is
	// touched: a scan that cannot start leaves no empty database, lock file
	// or run behind. A dead resolver is ErrNetworkDown whatever the
	// register's size.
	inputID, err := InputIdentity(cfg.Input)
	if err != nil {
		return sum, err
	}
	// Several workers on one PostgreSQL run share it (shared.go): they
	// recognise the register by its content, wherever its copy lies.
	shared := store.IsPostgresURL(cfg.DB)
	if shared && cfg.Input != "-" {
		if inputID, err = contentIdentity(cfg.Input); err != nil {
			return sum, err
		}
	}
	rc := cfg.Resolver
	if rc.Logger == nil {
		rc.Logger = log
	}
	res, err := resolve.New(rc)
	if err != nil {
		return sum, err
	}
	defer res.Close()
	if err := CheckResolver(ctx, res, rc.Servers, log); err != nil {
		return sum, err
	}

	st, err := store.Open(ctx, cfg.DB, store.Options{})
	if err != nil {
		return sum, err
	}
	defer st.Close()
	// SQLite has one writer: a second scan is refused. On PostgreSQL the
	// workers of a run take turns to set it up (and to finish it) and then
	// share it with leases.
	var unlock func() error
	if shared {
		unlock, err = st.LockScanShared()
	} else {
		unlock, err = st.LockScan()
	}
	if errors.Is(err, store.ErrLocked) {
		return sum, mark(ErrScanLocked, fmt.Errorf("%s: another tlsready scan is running on this database; wait for it or stop it", store.RedactURL(cfg.DB)))
	}
	if err != nil {
		return sum, err
	}
	defer unlock()
	r := &runner{cfg: cfg, log: log, st: st, res: res, shared: shared}
	if shared {
		if r.unlockSetup, err = st.LockRunSetup(ctx); err != nil {
			return sum, err
		}
		defer r.unlockSetup()
	}
	defer r.end()

	if err := r.begin(ctx, inputID); err != nil {
		return sum, err
	}
	sum.Run = r.run // replaced by the finished run at the end
	if err := r.ingest(ctx); err != nil {
		return sum, err
	}
	sum.Ingest = time.Since(started)
	logMem(log, "ingested")
	if err := r.plan(ctx); err != nil {
		return sum, err
	}
	sum.Pending = len(r.pending)
	scanStart := time.Now()
	scs, err := r.scan(ctx)
	if err != nil {
		return sum, err
	}
	sum.Scan = time.Since(scanStart)
	logMem(log, "scanned")
	if err := ctx.Err(); err != nil {
		log.Info("interrupted; finished domains are saved", "scanned", scs.scanned, "left", int64(len(r.pending))-scs.scanned)
		return sum, mark(ErrInterrupted, errors.New("interrupted; run the same command again to resume"))
	}
	if err := r.finish(ctx, scs); err != nil {
		return sum, err
	}
	logMem(log, "finished")
	run, err := st.GetRun(ctx, r.run.ID)
	if err != nil {
		return sum, err
	}
	sum.Run = run
	sum.Elapsed = time.Since(started)
	sum.Verdicts = map[result.Verdict][2]int64{}
	err = st.RunDomains(ctx, run.ID, func(d store.RunDomain) error {
		c := sum.Verdicts[d.Verdict]
		c[0]++
		c[1] += d.Citizens
		sum.Verdicts[d.Verdict] = c
		return nil
	})
	log.Info("run finished", "run", run.ID, "domains", r.total, "scanned", scs.scanned,
		"mx_ips", scs.MXIPs, "connections", scs.Connections, "sni_per_name_ips", scs.SNIPerNameIPs, "elapsed", sum.Elapsed.Round(time.Millisecond))
	return sum, err
}

// runner is one Run, phase by phase: begin, ingest, plan, scan, finish.
type runner struct {
	cfg    Config
	log    *slog.Logger
	st     *store.Store
	res    *resolve.Client
	shared bool // several workers on one PostgreSQL run (shared.go)
	// unlockSetup lets the other workers of a shared run set it up (once
	// this one has joined it); nil otherwise.
	unlockSetup func() error

	run     store.Run
	stats   store.RunStats // the run's, stored when it finishes
	queue   store.RunQueue // a shared run's
	queued  bool           // another worker of the shared run set it up
	total   int64          // the run's domains
	pending []string       // the domains to scan (shared: as many as the run has left)
	worker  *sharedWorker  // this worker of a shared run

	// deferred are called when Run returns, the last first: the scanner
	// and a shared run's lease renewal and answers to the other workers
	// last until the run is finished.
	deferred []func()
}

// atEnd calls f when Run returns.
func (r *runner) atEnd(f func()) { r.deferred = append(r.deferred, f) }

// end calls the functions given to atEnd, the last first.
func (r *runner) end() {
	for i := len(r.deferred) - 1; i >= 0; i-- {
		r.deferred[i]()
	}
}

// begin begins the run, or resumes the interrupted run of the same input,
// and abandons the interrupted runs of other inputs.
func (r *runner) begin(ctx context.Context, inputID string) error {
	run, resumed, err := r.st.BeginRun(ctx, inputID, time.Now())
	if err != nil {
		return err
	}
	r.run, r.stats = run, run.Stats
	if resumed {
		r.log.Info("resuming interrupted run", "run", run.ID)
	} else {
		r.log.Info("starting run", "run", run.ID)
	}
	// An interrupted run of another input (another file, or this one changed
	// since) is resumed only by that input: say so, and mark it abandoned
	// rather than leave it "running" forever.
	abandoned, err := r.st.AbandonRuns(ctx, run.ID, fmt.Sprintf("run %d started with another input", run.ID))
	if err != nil {
		return err
	}
	for _, a := range abandoned {
		r.log.Warn("an interrupted run of another input is abandoned; the domains it finished stay cached",
			"abandoned_run", a.ID, "its_input", DescribeInput(a.Input, r.cfg.Input), "started", a.StartedAt.Format(time.RFC3339), "run", run.ID)
	}
	return nil
}

// ingest streams the register into the store (in a shared run, the first
// worker does; the others find the run queued) and counts its lines.
func (r *runner) ingest(ctx context.Context) error {
	var err error
	if r.shared {
		if r.queue, r.queued, err = r.st.RunQueued(ctx, r.run.ID); err != nil {
			return err
		}
	}
	var ing register.Stats
	if r.queued {
		r.stats = r.queue.Stats
		r.log.Info("joining the run another worker set up", "run", r.run.ID, "domains", r.queue.Total)
	} else {
		ing, err = ingest(ctx, r.st, r.run.ID, r.cfg.Input, r.cfg.KeepAddresses, r.log)
	}
	if err != nil {
		return err
	}
	stats := &r.stats
	if !r.queued {
		stats.Lines, stats.Entries, stats.BadLines, stats.BadByReason = ing.Lines, ing.OK, ing.Bad, ing.ByReason
		stats.Recipients = ing.OK - ing.DuplicateIDs
		stats.DuplicateIDs, stats.DuplicateAddrs = ing.DuplicateIDs, ing.DuplicateAddresses
		stats.DuplicateIDLines = duplicateLines(ing.DuplicateIDLines)
		stats.DuplicateAddrLines = duplicateLines(ing.DuplicateAddressLines)
	}
	if ing.Bad > 0 {
		for _, reason := range SortedReasons(ing.ByReason) {
			r.log.Warn("bad input lines skipped", "reason", reason, "count", ing.ByReason[reason], "first_lines", ing.BadLines[reason])
		}
	}
	if ing.DuplicateIDs > 0 {
		r.log.Warn("lines repeat an earlier line's id: the later line replaces the earlier, one citizen",
			"count", ing.DuplicateIDs, "first_lines", FormatDuplicates(stats.DuplicateIDLines, 0))
	}
	if ing.DuplicateAddresses > 0 {
		r.log.Warn("lines repeat an earlier line's address under another id: a citizen each",
			"count", ing.DuplicateAddresses, "first_lines", FormatDuplicates(stats.DuplicateAddrLines, 0))
	}
	if err := ctx.Err(); err != nil {
		return mark(ErrInterrupted, errors.New("interrupted during ingestion; run the same command again to resume"))
	}
	return nil
}

// plan finds the domains to scan: those without a result younger than
// RescanAfter. A shared run's first worker queues them; every worker then
// joins the run and lets the others set it up.
func (r *runner) plan(ctx context.Context) error {
	var err error
	if r.queued {
		r.total = r.queue.Total
	} else {
		if r.total, err = r.st.CountRunDomains(ctx, r.run.ID); err != nil {
			return err
		}
		var freshSince time.Time
		if r.cfg.RescanAfter > 0 {
			freshSince = time.Now().Add(-r.cfg.RescanAfter)
		}
		if r.pending, err = r.st.PendingDomains(ctx, r.run.ID, freshSince); err != nil {
			return err
		}
		r.stats.Domains = r.total
		r.log.Info("domains", "total", r.total, "to_scan", len(r.pending), "cached", r.total-int64(len(r.pending)))
		// Not in name order: a hoster's customers, often neighbours by name,
		// would queue at its IPs together (scanner.SpreadOrder).
		scanner.SpreadOrder(r.pending, uint64(r.run.ID))
	}
	if !r.shared {
		return nil
	}
	if !r.queued {
		r.stats.Reused = r.total - int64(len(r.pending))
		r.setRunStats()
		r.queue = store.RunQueue{Total: r.total, Stats: r.stats}
		if err := r.st.QueueRun(ctx, r.run.ID, r.pending, r.queue); err != nil {
			return err
		}
	}
	r.worker = &sharedWorker{st: r.st, run: r.run.ID, id: newWorkerID(), lease: r.cfg.Lease, log: r.log}
	if err := r.st.JoinRun(ctx, r.run.ID, r.worker.id, r.cfg.Lease); err != nil {
		return err
	}
	left, err := r.st.WorkLeft(ctx, r.run.ID)
	if err != nil {
		return err
	}
	r.pending = make([]string, left) // for the counts: what the run has left
	if err := r.unlockSetup(); err != nil {
		return err
	}
	r.worker.broker = newLeaseBroker(r.worker)
	r.log.Info("worker joined the run", "run", r.run.ID, "worker", r.worker.id, "left", left, "lease", r.cfg.Lease)
	return nil
}

// setRunStats records how the run scans: resolver, vantage, version.
func (r *runner) setRunStats() {
	r.stats.Resolver = r.cfg.ResolverName
	r.stats.TrustAD = r.res.TrustsAD()
	r.stats.Vantage = r.cfg.Scanner.Probe.HELO
	r.stats.ScannerVersion = r.cfg.Version
}

// scanned is what this process's scan did.
type scanned struct {
	scanner.Stats
	scanned int64 // results
}

// scan feeds the pending domains (in a shared run, those this worker
// claims) to a scanner and writes the results, held back until the
// network is known to work. Cancelling ctx stops it with what finished
// written.
func (r *runner) scan(ctx context.Context) (scanned, error) {
	st, run, log := r.st, r.run, r.log
	// The MTA-STS cache with its domains in memory: no query per domain
	// without a cached policy, most of them (issue 10).
	stsCache, err := st.STSIndex(ctx)
	if err != nil {
		return scanned{}, err
	}
	scfg := r.cfg.Scanner
	scfg.Resolver, scfg.STSCache, scfg.Logger = r.res, stsCache, log
	if r.shared {
		scfg.IPBroker = r.worker.broker
	}
	sc, err := scanner.New(scfg)
	if err != nil {
		return scanned{}, err
	}
	r.atEnd(sc.Close)
	r.setRunStats()

	w := st.NewWriter(writeBatch, writeEvery)
	var prog Progress = noProgress{}
	if r.cfg.Progress != nil {
		prog = r.cfg.Progress(Plan{Pending: int64(len(r.pending)), Total: r.total, Probing: sc.Probing})
	}
	in := make(chan string)
	var n int64
	var held []result.Result // results kept back until the network is known to work
	var heldMu sync.Mutex
	confirmed := false
	// release writes the results held back, once the network is known to
	// work; heldMu held.
	release := func() {
		confirmed = true
		for _, h := range held {
			w.Add(h)
		}
		held = nil
	}
	// A write error (disk full, database gone read-only) stops the scan:
	// probing on without saving would only waste the servers' goodwill.
	scanCtx, stopScan := context.WithCancel(ctx)
	r.atEnd(stopScan)
	var feedErr error
	var lostErr atomic.Pointer[error]
	var sharedDone sync.WaitGroup
	if r.shared {
		worker := r.worker
		// Leases renewed until this worker is done with the run; the
		// others' probe requests answered while the run has work left.
		leaseCtx, stopLeases := context.WithCancel(context.WithoutCancel(ctx))
		r.atEnd(stopLeases)
		go worker.renew(leaseCtx, func(err error) {
			lostErr.Store(&err)
			stopScan()
		})
		answerCtx, stopAnswers := context.WithCancel(scanCtx)
		r.atEnd(stopAnswers)
		sharedDone.Go(func() { worker.broker.answer(answerCtx, sc) })
		sharedDone.Go(func() { worker.broker.pollAnswers(answerCtx) })
		go func() {
			// Once nothing is left to claim, results held back are
			// written: the run cannot end while they are unsaved.
			drained := func() {
				heldMu.Lock()
				defer heldMu.Unlock()
				if confirmed || sc.Err() != nil {
					return
				}
				release()
			}
			// in is closed after feedErr is set: Run returns after both.
			defer close(in)
			concurrency := scfg.Concurrency
			if concurrency <= 0 {
				concurrency = scanner.DefaultConcurrency
			}
			_, feedErr = worker.feed(scanCtx, in, max(concurrency/2, 10), prog.Started, drained)
			if feedErr != nil {
				stopScan()
			}
		}()
		r.atEnd(func() {
			stopAnswers()
			sharedDone.Wait()
		})
	} else {
		go func() {
			defer close(in)
			for _, d := range r.pending {
				select {
				case in <- d:
					prog.Started(d)
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	sc.Run(scanCtx, in, func(res result.Result) {
		if w.Err() != nil {
			stopScan()
			return
		}
		heldMu.Lock()
		defer heldMu.Unlock()
		res.RunID = run.ID
		n++
		prog.Finished(res.Domain)
		// Until at least one probe reached a server, a run that turns out to
		// be behind a blocked port 25 must not have written anything. (A
		// worker of a shared run may probe nothing itself: its results are
		// then the other workers' probes.)
		if !confirmed && (sc.Stats().MXIPs > 0 || r.shared) && sc.Err() == nil && sc.NetworkWorks() {
			release()
		}
		if !confirmed {
			held = append(held, res)
			return
		}
		w.Add(res)
	})
	prog.Done()
	if r.shared {
		// This worker stopping is not the run's end: its leases go back to
		// the others (at once, unless it was killed).
		leave := func() { _ = st.LeaveRun(context.WithoutCancel(ctx), run.ID, r.worker.id) }
		if err := sc.Err(); err != nil {
			w.Close()
			leave()
			return scanned{}, mark(ErrNetworkDown, fmt.Errorf("%w; this worker left run %d, whose other workers go on", err, run.ID))
		}
		lost := lostErr.Load()
		if lost != nil {
			feedErr = errors.Join(feedErr, *lost)
		}
		if err := feedErr; err != nil {
			w.Close()
			leave()
			return scanned{}, fmt.Errorf("worker of run %d: %w", run.ID, err)
		}
		if ctx.Err() != nil {
			r.atEnd(leave)
		}
	}
	if err := sc.Err(); err != nil {
		w.Close()
		_ = st.AbortRun(context.WithoutCancel(ctx), run.ID, err.Error())
		return scanned{}, mark(ErrNetworkDown, fmt.Errorf("%w; run aborted, nothing cached was overwritten", err))
	}
	if ctx.Err() == nil {
		for _, h := range held { // e.g. a small run where nothing was reachable
			w.Add(h)
		}
	}
	if err := w.Close(); err != nil {
		return scanned{}, fmt.Errorf("writing results: %w", err)
	}
	return scanned{Stats: sc.Stats(), scanned: n}, nil
}

// finish stores the run's stats and marks it finished: in a shared run,
// the last worker to report does, once, and the others wait for it.
func (r *runner) finish(ctx context.Context, scs scanned) error {
	stats := &r.stats
	stats.Scanned += scs.scanned
	stats.Reused = r.total - int64(len(r.pending))
	stats.MXIPs += scs.MXIPs
	stats.Connections += scs.Connections
	stats.SNIPerNameIPs += scs.SNIPerNameIPs
	stats.DNSQueries += r.res.Queries()
	if !r.shared {
		return r.st.FinishRun(ctx, r.run.ID, *stats, time.Now())
	}
	mine := store.RunStats{Scanned: scs.scanned, MXIPs: scs.MXIPs, Connections: scs.Connections,
		SNIPerNameIPs: scs.SNIPerNameIPs, DNSQueries: r.res.Queries()}
	if err := r.st.ReportWorker(ctx, r.run.ID, r.worker.id, mine); err != nil {
		return err
	}
	// The last worker to report finishes the run, once; the others wait
	// for it (and take over if it dies first).
	for {
		done, err := r.st.FinishSharedRun(ctx, r.run.ID, time.Now(), func(reported []store.RunStats) store.RunStats {
			return mergeWorkerStats(r.queue.Stats, reported)
		})
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		select {
		case <-time.After(500 * time.Millisecond):
		case <-ctx.Done():
			return mark(ErrInterrupted, errors.New("interrupted while waiting for the other workers to finish the run"))
		}
	}
}

// noProgress is the Progress of a run without one.
type noProgress struct{}

func (noProgress) Started(string)  {}
func (noProgress) Finished(string) {}
func (noProgress) Done()           {}
