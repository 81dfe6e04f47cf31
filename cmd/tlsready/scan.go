package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tlsready/tlsready/cmd/internal/job"
)

type scanOptions struct {
	scanFlags
	input         string
	db            string
	rescanAfter   time.Duration
	keepAddresses bool
	summaryJSON   string
	progressEvery time.Duration
	lease         time.Duration
	memory        job.Memory // the garbage collector's settings for the run
}

func newScanCmd() *cobra.Command {
	var o scanOptions
	cmd := &cobra.Command{
		Use:   "scan [REGISTER] --db FILE",
		Short: "Scan a register of recipient addresses into the database",
		Long: `Reads the register (one address per line, or CSV with an "email" column and an
optional "id" column; .gz read as such; "-" for stdin), stores each recipient's
id and domain (never the local part unless --keep-addresses), and scans every
domain whose cached result is older than --rescan-after: MX, STARTTLS, certificates,
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
			if o.rescanAfter < 0 {
				return usageErr("--rescan-after must not be negative")
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
			o.memory = scanMemory(os.Getenv)
			sum, err := runScanJob(ctx, &o)
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
	fs.DurationVar(&o.rescanAfter, "rescan-after", job.DefaultRescanAfter, "scan a domain again when its cached result is older than this; a younger result is reused (0: scan every domain)")
	// The old name, kept working: "max age" is the MTA-STS policy's alone
	// (README "Terms").
	fs.DurationVar(&o.rescanAfter, "max-age", job.DefaultRescanAfter, "scan a domain again when its cached result is older than this")
	_ = fs.MarkDeprecated("max-age", "use --rescan-after (\"max age\" is the MTA-STS policy's)")
	fs.BoolVar(&o.keepAddresses, "keep-addresses", false, "store full addresses (default: only recipient ids and domains)")
	fs.DurationVar(&o.progressEvery, "progress-every", 10*time.Second, "interval of the progress lines logged when stderr is not a terminal")
	fs.DurationVar(&o.lease, "lease", job.DefaultLease, "with a postgres:// --db: how long this worker's claims on domains and MX IPs last without renewal (renewed every third of it while it works); a killed worker's claims pass to the other workers after it")
	fs.StringVar(&o.summaryJSON, "summary-json", "", "also write the run summary as JSON to this file (mode 0600, replaced atomically; written when the run ends, finished or not)")
	return cmd
}

// scanMemory is the garbage collector's settings for a scan: GOMEMLIMIT and
// GOGC, when set, win.
func scanMemory(getenv func(string) string) job.Memory {
	var m job.Memory
	if getenv("GOMEMLIMIT") == "" {
		// A soft limit makes the collector work harder as the heap nears it,
		// instead of letting garbage double the live heap (GOGC=100): the
		// run's caches are large and long-lived.
		m.Limit = 768 << 20
	}
	if getenv("GOGC") == "" {
		// Under that limit, the heap may grow to 3x the live data between
		// collections instead of 2x: 8% less CPU per domain for a quarter
		// more memory (issue 10: scanner 403 against 438 µs/domain, peak
		// RSS 246 against 201 MiB at 30,000 domains).
		m.GCPercent = 200
	}
	return m
}

// runScanJob runs the scan the options describe (job.Run) and gives its
// errors their exit codes.
func runScanJob(ctx context.Context, o *scanOptions) (job.Summary, error) {
	log := o.logger()
	cfg, err := o.jobConfig(log)
	if err != nil {
		return job.Summary{}, err
	}
	sum, err := job.Run(ctx, cfg)
	return sum, jobExit(err)
}

// jobConfig is the job.Config of the options.
func (o *scanOptions) jobConfig(log *slog.Logger) (job.Config, error) {
	rc, err := o.resolverConfig(log)
	if err != nil {
		return job.Config{}, err
	}
	roots, err := o.roots()
	if err != nil {
		return job.Config{}, err
	}
	return job.Config{
		Input:         o.input,
		DB:            o.db,
		KeepAddresses: o.keepAddresses,
		RescanAfter:   o.rescanAfter,
		Lease:         o.lease,
		Resolver:      rc,
		ResolverName:  o.resolver,
		Scanner:       o.scannerConfig(roots),
		Version:       version,
		Log:           log,
		Progress: func(p job.Plan) job.Progress {
			return newProgress(p.Pending, p.Total, o.quiet, o.progressEvery, log, func() []probing {
				var ps []probing
				for _, x := range p.Probing() {
					ps = append(ps, probing{ip: x.IP, name: x.Name, since: x.Since})
				}
				return ps
			})
		},
		Memory: o.memory,
	}, nil
}

// jobExit gives the errors of job.Run and job.CheckResolver their exit
// codes (README "Exit codes").
func jobExit(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, job.ErrInterrupted):
		return &exitError{code: exitInterrupted, err: err}
	case errors.Is(err, job.ErrNetworkDown):
		return &exitError{code: exitEnvironment, err: err}
	case errors.Is(err, job.ErrNoRegister):
		return &exitError{code: exitUsage, err: err}
	}
	return storeUsage(err)
}
