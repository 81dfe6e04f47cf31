package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tlsready/tlsready/scanner"
	"github.com/tlsready/tlsready/scanner/register"
	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/store"
)

type scanOptions struct {
	scanFlags
	input         string
	db            string
	maxAge        time.Duration
	keepAddresses bool
	summaryJSON   string
	progressEvery time.Duration
	lease         time.Duration
}

func newScanCmd() *cobra.Command {
	var o scanOptions
	cmd := &cobra.Command{
		Use:   "scan [REGISTER] --db FILE",
		Short: "Scan a register of recipient addresses into the database",
		Long: `Reads the register (one address per line, or CSV with an "email" column and an
optional "id" column; .gz read as such; "-" for stdin), stores each recipient's
id and domain (never the local part unless --keep-addresses), and scans every
domain whose cached result is older than --max-age: MX, STARTTLS, certificates,
MTA-STS, DANE, TLSRPT. An interrupted run is resumed by running the same
command again.

The register is the argument or --input (the same thing):
  tlsready scan register.csv.gz --db tlsready.db
  tlsready scan --input register.csv.gz --db tlsready.db`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				if o.input != "" && o.input != args[0] {
					return usageErr("two registers given, %q and --input %q: give one", args[0], o.input)
				}
				o.input = args[0]
			}
			switch {
			case o.input == "":
				return usageErr("no register given: tlsready scan REGISTER --db FILE (or --input REGISTER; - reads standard input)")
			case o.db == "":
				return usageErr("--db is required: the database file to write, e.g. tlsready scan %s --db tlsready.db", o.input)
			}
			if err := o.validate(cmd.Context()); err != nil {
				return err
			}
			if o.maxAge < 0 {
				return usageErr("--max-age must not be negative")
			}
			if o.lease < time.Second {
				return usageErr("--lease must be at least 1s")
			}
			if o.summaryJSON != "" {
				if err := checkSummaryPath(o.summaryJSON); err != nil {
					return err
				}
			}
			o.logOut = cmd.ErrOrStderr()
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			started := time.Now()
			sum, err := runScanJob(ctx, &o, cmd.OutOrStdout())
			if o.summaryJSON != "" { // how it ended, whether a run began or not
				if werr := writeSummaryJSON(o.summaryJSON, sum, started, err); werr != nil {
					return errors.Join(err, werr)
				}
			}
			if err != nil {
				return err
			}
			printSummary(cmd.OutOrStdout(), sum)
			return nil
		},
	}
	fs := cmd.Flags()
	o.register(fs)
	fs.StringVar(&o.input, "input", "", "register file (addresses or CSV, optionally gzipped), - for stdin; or give it as the argument")
	fs.StringVar(&o.db, "db", "", "database file (created 0600)")
	fs.DurationVar(&o.maxAge, "max-age", 20*time.Hour, "reuse cached results younger than this instead of probing again")
	fs.BoolVar(&o.keepAddresses, "keep-addresses", false, "store full addresses (default: only recipient ids and domains)")
	fs.DurationVar(&o.progressEvery, "progress-every", 10*time.Second, "interval of the progress lines logged when stderr is not a terminal")
	fs.DurationVar(&o.lease, "lease", 30*time.Second, "with a postgres:// --db: how long this worker's claims on domains and MX IPs last without renewal (renewed every third of it while it works); a killed worker's claims pass to the other workers after it")
	fs.StringVar(&o.summaryJSON, "summary-json", "", "also write the run summary as JSON to this file (mode 0600, replaced atomically; written when the run ends, finished or not)")
	return cmd
}

// scanSummary is what a finished (or interrupted) scan reports.
type scanSummary struct {
	Run      store.Run
	Verdicts map[result.Verdict][2]int64 // domains, citizens
	Elapsed  time.Duration
	Ingest   time.Duration // reading, normalising, deduplicating and storing the register
	Scan     time.Duration // scanning the pending domains, results written
	Pending  int           // domains scanned in this invocation
}

// runScanJob ingests the register, scans what is pending and finishes the run.
func runScanJob(ctx context.Context, o *scanOptions, out io.Writer) (scanSummary, error) {
	log := o.logger()
	var sum scanSummary
	started := time.Now()
	if os.Getenv("GOMEMLIMIT") == "" {
		// A soft limit makes the collector work harder as the heap nears it,
		// instead of letting garbage double the live heap (GOGC=100): the
		// run's caches are large and long-lived. GOMEMLIMIT overrides it.
		debug.SetMemoryLimit(768 << 20)
	}
	if os.Getenv("GOGC") == "" {
		// Under that limit, the heap may grow to 3x the live data between
		// collections instead of 2x: 8% less CPU per domain for a quarter
		// more memory (issue 10: scanner 403 against 438 µs/domain, peak
		// RSS 246 against 201 MiB at 30,000 domains). GOGC overrides it.
		debug.SetGCPercent(200)
	}

	// The register and the resolver are checked before the database is
	// touched: a scan that cannot start leaves no empty database, lock file
	// or run behind. A dead resolver is exit 4 whatever the register's size.
	inputID, err := inputIdentity(o.input)
	if err != nil {
		return sum, err
	}
	// Several workers on one PostgreSQL run share it (shared.go): they
	// recognise the register by its content, wherever its copy lies.
	shared := store.IsPostgresURL(o.db)
	if shared && o.input != "-" {
		if inputID, err = contentIdentity(o.input); err != nil {
			return sum, err
		}
	}
	res, err := o.buildResolver(log)
	if err != nil {
		return sum, err
	}
	defer res.Close()
	if err := o.checkResolver(ctx, res, log); err != nil {
		return sum, err
	}

	st, err := store.Open(ctx, o.db, store.Options{})
	if err != nil {
		return sum, storeUsage(err)
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
		return sum, fmt.Errorf("%s: another tlsready scan is running on this database; wait for it or stop it", store.RedactURL(o.db))
	}
	if err != nil {
		return sum, err
	}
	defer unlock()
	if shared {
		if unlock, err = st.LockRunSetup(ctx); err != nil {
			return sum, err
		}
		defer unlock()
	}

	run, resumed, err := st.BeginRun(ctx, inputID, time.Now())
	if err != nil {
		return sum, err
	}
	sum.Run = run // replaced by the finished run at the end
	if resumed {
		log.Info("resuming interrupted run", "run", run.ID)
	} else {
		log.Info("starting run", "run", run.ID)
	}
	// An interrupted run of another input (another file, or this one changed
	// since) is resumed only by that input: say so, and mark it abandoned
	// rather than leave it "running" forever.
	abandoned, err := st.AbandonRuns(ctx, run.ID, fmt.Sprintf("run %d started with another input", run.ID))
	if err != nil {
		return sum, err
	}
	for _, r := range abandoned {
		log.Warn("an interrupted run of another input is abandoned; the domains it finished stay cached",
			"abandoned_run", r.ID, "its_input", describeInput(r.Input, o.input), "started", r.StartedAt.Format(time.RFC3339), "run", run.ID)
	}

	// 1. Ingest: stream the register into the store (in a shared run, the
	// first worker does; the others find the run queued).
	stats := run.Stats
	var queue store.RunQueue
	queued := false
	if shared {
		if queue, queued, err = st.RunQueued(ctx, run.ID); err != nil {
			return sum, err
		}
	}
	var ing register.Stats
	if queued {
		stats = queue.Stats
		log.Info("joining the run another worker set up", "run", run.ID, "domains", queue.Total)
	} else {
		ing, err = ingest(ctx, st, run.ID, o.input, o.keepAddresses, log)
	}
	if err != nil {
		return sum, err
	}
	if !queued {
		stats.Lines, stats.Entries, stats.BadLines, stats.BadByReason = ing.Lines, ing.OK, ing.Bad, ing.ByReason
		stats.Recipients = ing.OK - ing.DuplicateIDs
		stats.DuplicateIDs, stats.DuplicateAddrs = ing.DuplicateIDs, ing.DuplicateAddresses
		stats.DuplicateIDLines = duplicateLines(ing.DuplicateIDLines)
		stats.DuplicateAddrLines = duplicateLines(ing.DuplicateAddressLines)
	}
	if ing.Bad > 0 {
		for _, reason := range sortedReasons(ing.ByReason) {
			log.Warn("bad input lines skipped", "reason", reason, "count", ing.ByReason[reason], "first_lines", ing.BadLines[reason])
		}
	}
	if ing.DuplicateIDs > 0 {
		log.Warn("lines repeat an earlier line's id: the later line replaces the earlier, one citizen",
			"count", ing.DuplicateIDs, "first_lines", formatDuplicates(stats.DuplicateIDLines, 0))
	}
	if ing.DuplicateAddresses > 0 {
		log.Warn("lines repeat an earlier line's address under another id: a citizen each",
			"count", ing.DuplicateAddresses, "first_lines", formatDuplicates(stats.DuplicateAddrLines, 0))
	}
	if err := ctx.Err(); err != nil {
		return sum, &exitError{code: exitInterrupted, err: errors.New("interrupted during ingestion; run the same command again to resume")}
	}
	sum.Ingest = time.Since(started)
	logMem(log, "ingested")

	// 2. Scan what is not fresh.
	var total int64
	var pending []string
	if queued {
		total = queue.Total
	} else {
		if total, err = st.CountRunDomains(ctx, run.ID); err != nil {
			return sum, err
		}
		var freshSince time.Time
		if o.maxAge > 0 {
			freshSince = time.Now().Add(-o.maxAge)
		}
		if pending, err = st.PendingDomains(ctx, run.ID, freshSince); err != nil {
			return sum, err
		}
		stats.Domains = total
		log.Info("domains", "total", total, "to_scan", len(pending), "cached", total-int64(len(pending)))
		// Not in name order: a hoster's customers, often neighbours by name,
		// would queue at its IPs together (scanner.SpreadOrder).
		scanner.SpreadOrder(pending, uint64(run.ID))
	}
	var worker *sharedWorker
	if shared {
		if !queued {
			stats.Reused = total - int64(len(pending))
			stats.Resolver, stats.TrustAD, stats.Vantage, stats.ScannerVersion = o.resolver, res.TrustsAD(), o.helo, version
			queue = store.RunQueue{Total: total, Stats: stats}
			if err := st.QueueRun(ctx, run.ID, pending, queue); err != nil {
				return sum, err
			}
		}
		worker = &sharedWorker{st: st, run: run.ID, id: newWorkerID(), lease: o.lease, log: log}
		if err := st.JoinRun(ctx, run.ID, worker.id, o.lease); err != nil {
			return sum, err
		}
		left, err := st.WorkLeft(ctx, run.ID)
		if err != nil {
			return sum, err
		}
		pending = make([]string, left) // for the counts: what the run has left
		if err := unlock(); err != nil {
			return sum, err
		}
		worker.broker = newLeaseBroker(worker)
		o.broker = worker.broker
		log.Info("worker joined the run", "run", run.ID, "worker", worker.id, "left", left, "lease", o.lease)
	}

	roots, err := o.roots()
	if err != nil {
		return sum, err
	}
	// The MTA-STS cache with its domains in memory: no query per domain
	// without a cached policy, most of them (issue 10).
	stsCache, err := st.STSIndex(ctx)
	if err != nil {
		return sum, err
	}
	sc, err := o.buildScanner(log, res, stsCache, roots)
	if err != nil {
		return sum, err
	}
	defer sc.Close()
	stats.Resolver = o.resolver
	stats.TrustAD = res.TrustsAD()
	stats.Vantage = o.helo
	stats.ScannerVersion = version

	scanStart := time.Now()
	sum.Pending = len(pending)
	// Results are committed 500 at a time, or every 2 s: at --rate 20 a
	// commit (a transaction with its prepared statements) every 250 ms cost
	// more CPU than the probes it saved (issue 10). SIGINT and SIGTERM still
	// flush; kill -9 loses at most the last 2 s, probed again on resume.
	w := st.NewWriter(500, 2*time.Second)
	prog := newProgress(int64(len(pending)), total, o.quiet, o.progressEvery, log, func() []probing {
		var ps []probing
		for _, p := range sc.Probing() {
			ps = append(ps, probing{ip: p.IP, name: p.Name, since: p.Since})
		}
		return ps
	})
	in := make(chan string)
	var scanned int64
	var held []result.Result // results kept back until the network is known to work
	var heldMu sync.Mutex
	confirmed := false
	// A write error (disk full, database gone read-only) stops the scan:
	// probing on without saving would only waste the servers' goodwill.
	scanCtx, stopScan := context.WithCancel(ctx)
	defer stopScan()
	var feedErr error
	var lostErr atomic.Pointer[error]
	var sharedDone sync.WaitGroup
	if shared {
		// Leases renewed until this worker is done with the run; the
		// others' probe requests answered while the run has work left.
		leaseCtx, stopLeases := context.WithCancel(context.WithoutCancel(ctx))
		defer stopLeases()
		go worker.renew(leaseCtx, func(err error) {
			lostErr.Store(&err)
			stopScan()
		})
		answerCtx, stopAnswers := context.WithCancel(scanCtx)
		defer stopAnswers()
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
				confirmed = true
				for _, h := range held {
					w.Add(h)
				}
				held = nil
			}
			// in is closed after feedErr is set: Run returns after both.
			defer close(in)
			_, feedErr = worker.feed(scanCtx, in, max(o.concurrency/2, 10), prog.started, drained)
			if feedErr != nil {
				stopScan()
			}
		}()
		defer func() {
			stopAnswers()
			sharedDone.Wait()
		}()
	} else {
		go func() {
			defer close(in)
			for _, d := range pending {
				select {
				case in <- d:
					prog.started(d)
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	sc.Run(scanCtx, in, func(r result.Result) {
		if w.Err() != nil {
			stopScan()
			return
		}
		heldMu.Lock()
		defer heldMu.Unlock()
		r.RunID = run.ID
		scanned++
		prog.finished(r.Domain)
		// Until at least one probe reached a server, a run that turns out to
		// be behind a blocked port 25 must not have written anything. (A
		// worker of a shared run may probe nothing itself: its results are
		// then the other workers' probes.)
		if !confirmed && (sc.Stats().MXIPs > 0 || shared) && sc.Err() == nil && sc.NetworkWorks() {
			confirmed = true
			for _, h := range held {
				w.Add(h)
			}
			held = nil
		}
		if !confirmed {
			held = append(held, r)
			return
		}
		w.Add(r)
	})
	prog.done()
	if shared {
		// This worker stopping is not the run's end: its leases go back to
		// the others (at once, unless it was killed).
		leave := func() { _ = st.LeaveRun(context.WithoutCancel(ctx), run.ID, worker.id) }
		if err := sc.Err(); err != nil {
			w.Close()
			leave()
			return sum, &exitError{code: exitEnvironment, err: fmt.Errorf("%w; this worker left run %d, whose other workers go on", err, run.ID)}
		}
		lost := lostErr.Load()
		if lost != nil {
			feedErr = errors.Join(feedErr, *lost)
		}
		if err := feedErr; err != nil {
			w.Close()
			leave()
			return sum, fmt.Errorf("worker of run %d: %w", run.ID, err)
		}
		if ctx.Err() != nil {
			defer leave()
		}
	}
	if err := sc.Err(); err != nil {
		w.Close()
		_ = st.AbortRun(context.WithoutCancel(ctx), run.ID, err.Error())
		return sum, &exitError{code: exitEnvironment, err: fmt.Errorf("%w; run aborted, nothing cached was overwritten", err)}
	}
	if ctx.Err() == nil {
		for _, h := range held { // e.g. a small run where nothing was reachable
			w.Add(h)
		}
	}
	if err := w.Close(); err != nil {
		return sum, fmt.Errorf("writing results: %w", err)
	}
	sum.Scan = time.Since(scanStart)
	logMem(log, "scanned")
	scs := sc.Stats()
	stats.Scanned += scanned
	stats.Reused = total - int64(len(pending))
	stats.MXIPs += scs.MXIPs
	stats.Connections += scs.Connections
	stats.SNIPerNameIPs += scs.SNIPerNameIPs
	stats.DNSQueries += res.Queries()
	if err := ctx.Err(); err != nil {
		log.Info("interrupted; finished domains are saved", "scanned", scanned, "left", int64(len(pending))-scanned)
		return sum, &exitError{code: exitInterrupted, err: errors.New("interrupted; run the same command again to resume")}
	}
	if shared {
		mine := store.RunStats{Scanned: scanned, MXIPs: scs.MXIPs, Connections: scs.Connections,
			SNIPerNameIPs: scs.SNIPerNameIPs, DNSQueries: res.Queries()}
		if err := st.ReportWorker(ctx, run.ID, worker.id, mine); err != nil {
			return sum, err
		}
		// The last worker to report finishes the run, once; the others
		// wait for it (and take over if it dies first).
		for {
			done, err := st.FinishSharedRun(ctx, run.ID, time.Now(), func(r []store.RunStats) store.RunStats {
				return mergeWorkerStats(queue.Stats, r)
			})
			if err != nil {
				return sum, err
			}
			if done {
				break
			}
			select {
			case <-time.After(500 * time.Millisecond):
			case <-ctx.Done():
				return sum, &exitError{code: exitInterrupted, err: errors.New("interrupted while waiting for the other workers to finish the run")}
			}
		}
	} else if err := st.FinishRun(ctx, run.ID, stats, time.Now()); err != nil {
		return sum, err
	}
	logMem(log, "finished")
	run, err = st.GetRun(ctx, run.ID)
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
	log.Info("run finished", "run", run.ID, "domains", total, "scanned", scanned,
		"mx_ips", scs.MXIPs, "connections", scs.Connections, "sni_per_name_ips", scs.SNIPerNameIPs, "elapsed", sum.Elapsed.Round(time.Millisecond))
	return sum, err
}

// inputIdentity names the input so an interrupted run is resumed only with
// the same register: path, size and modification time. It also checks that
// the file can be opened, before anything else is done.
func inputIdentity(path string) (string, error) {
	if path == "-" {
		return "-", nil
	}
	f, err := register.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", usageErr("register %s: no such file", path)
	}
	if err != nil {
		return "", fmt.Errorf("--input: %w", err)
	}
	f.Close()
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("--input: %w", err)
	}
	return fmt.Sprintf("%s|%d|%d", path, fi.Size(), fi.ModTime().UnixNano()), nil
}

// contentIdentity names the register by its size and SHA-256, for a shared
// run: workers on several machines each read their own copy of it.
func contentIdentity(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("--input: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", fmt.Errorf("--input: %w", err)
	}
	return fmt.Sprintf("sha256:%x|%d", h.Sum(nil), n), nil
}

// describeInput tells a person what an input identity (inputIdentity) was,
// beside the current --input.
func describeInput(id, current string) string {
	if id == "-" {
		return "standard input"
	}
	// "path|size|mtime", where the path itself may hold "|".
	j := strings.LastIndexByte(id, '|')
	i := -1
	if j > 0 {
		i = strings.LastIndexByte(id[:j], '|')
	}
	if i < 0 {
		return id
	}
	path, size := id[:i], id[i+1:j]
	if path == current {
		return fmt.Sprintf("%s as it was then (%s bytes; the file has changed since)", path, size)
	}
	return fmt.Sprintf("%s (%s bytes)", path, size)
}

// ingest streams the register into the store in batches. Reading and
// normalising run in their own goroutine, overlapping the inserts.
func ingest(ctx context.Context, st *store.Store, runID int64, path string, keep bool, log *slog.Logger) (register.Stats, error) {
	f, err := register.Open(path)
	if err != nil {
		return register.Stats{}, fmt.Errorf("--input: %w", err)
	}
	defer f.Close()
	rd := register.NewReader(f, register.Options{KeepAddresses: keep, Duplicates: true})
	const batchSize = 20000
	batches := make(chan []store.Recipient, 2)
	free := make(chan []store.Recipient, 3)
	for range 3 {
		free <- make([]store.Recipient, 0, batchSize)
	}
	readErr := make(chan error, 1)
	stop := make(chan struct{})
	go func() {
		defer close(batches)
		batch := <-free
		for {
			e, err := rd.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				readErr <- fmt.Errorf("reading the register: %w", err)
				return
			}
			batch = append(batch, store.Recipient{ID: e.ID, Domain: e.Domain, Address: e.Address})
			if len(batch) == batchSize {
				select {
				case batches <- batch:
				case <-stop:
					return
				}
				select {
				case batch = <-free:
				case <-stop:
					return
				}
			}
		}
		if len(batch) > 0 {
			select {
			case batches <- batch:
			case <-stop:
			}
		}
		readErr <- nil
	}()
	var insertErr error
	for batch := range batches {
		if insertErr == nil && ctx.Err() == nil {
			insertErr = st.AddRecipients(ctx, runID, batch)
		}
		if insertErr != nil || ctx.Err() != nil {
			close(stop)
			for range batches { // let the reader finish
			}
			break
		}
		free <- batch[:0]
	}
	if insertErr != nil {
		return rd.Stats(), insertErr
	}
	if ctx.Err() != nil {
		return rd.Stats(), nil
	}
	if err := <-readErr; err != nil {
		return rd.Stats(), err
	}
	s := rd.Stats()
	log.Info("register read", "lines", s.Lines, "entries", s.OK, "bad_lines", s.Bad,
		"duplicate_ids", s.DuplicateIDs, "duplicate_addresses", s.DuplicateAddresses, "recipients", s.OK-s.DuplicateIDs)
	return s, nil
}

// logMem logs the process's memory at the end of a phase (debug level).
func logMem(log *slog.Logger, phase string) {
	rss, hwm, heap := memStats()
	log.Debug("memory", "phase", phase, "rss_mib", rss>>10, "peak_rss_mib", hwm>>10, "go_heap_mib", heap)
}
