package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tlsready/tlsready/cmd/internal/job"
	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/store"
)

// Exit codes of `tlsready status` for a monitor (README "Exit codes").
const (
	statusFresh   = 0 // the last finished run is younger than --overdue-after
	statusOverdue = 1 // it is older (or reading the database failed)
	statusNoRun   = 2 // no finished run (or no database)
)

func newStatusCmd() *cobra.Command {
	var (
		db           string
		asJSON       bool
		overdueAfter time.Duration
	)
	cmd := &cobra.Command{
		Use:   "status --db FILE [--json] [--overdue-after 26h]",
		Short: "For cron and monitors: the last finished run, runs interrupted or aborted since, and what to do next",
		Long: `Reads the database (read-only) and reports the last finished run (when, how
old, citizens and domains per verdict), the runs since that are running,
interrupted (resume them by running the same scan again) or aborted
(abandoned for another register, or stopped by a broken network), the
next action, and the audit trail of recipient exports (personal data: who
exported which run's recipients, when, how many, to where; the last 10).

Exit status, for a monitor:
  0  the last finished run is younger than --overdue-after
  1  it is older (overdue), or the database could not be read
  2  no finished run yet, or no such database`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if db == "" {
				return usageErr("--db is required")
			}
			if overdueAfter <= 0 {
				return usageErr("--overdue-after must be positive")
			}
			st, err := openExisting(cmd.Context(), db, true)
			if err != nil {
				return err
			}
			defer st.Close()
			rep, err := buildStatus(cmd.Context(), st, db, overdueAfter, time.Now())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				if err := printJSON(out, rep); err != nil {
					return err
				}
			} else {
				printStatus(out, rep)
			}
			switch rep.ExitCode {
			case statusOverdue:
				return &exitError{code: statusOverdue, err: fmt.Errorf("overdue: the last finished run is %s old, beyond --overdue-after %s", roundAge(rep.LastFinished.Age()), overdueAfter)}
			case statusNoRun:
				return &exitError{code: statusNoRun, err: fmt.Errorf("no finished run in %s yet", store.RedactURL(db))}
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&db, "db", "", "database file (opened read-only)")
	fs.BoolVar(&asJSON, "json", false, "one JSON object (README \"tlsready status\")")
	fs.DurationVar(&overdueAfter, "overdue-after", 26*time.Hour, "the last finished run is overdue (exit 1) when it finished longer ago than this: a daily scan plus two hours")
	// The old name, kept working: "max age" is the MTA-STS policy's alone,
	// and "stale" the gateway's (README "Terms").
	fs.DurationVar(&overdueAfter, "max-age", 26*time.Hour, "the last finished run is overdue when older than this")
	_ = fs.MarkDeprecated("max-age", "use --overdue-after (\"max age\" is the MTA-STS policy's)")
	return cmd
}

// statusReport is what `status` says, and its --json.
type statusReport struct {
	Database     string      `json:"database"`
	State        string      `json:"state"` // "fresh", "overdue", "no-run"
	ExitCode     int         `json:"exit_code"`
	Now          time.Time   `json:"now"`
	OverdueAfter string      `json:"overdue_after"`
	LastFinished *statusRun  `json:"last_finished,omitempty"`
	Running      []statusRun `json:"running,omitempty"` // in progress or interrupted
	Aborted      []statusRun `json:"aborted,omitempty"` // since the last finished run
	Next         string      `json:"next_action"`
	// Exports: the audit trail of recipient exports, newest first (the
	// last 10); ExportsTotal counts them all.
	Exports      []store.Export `json:"exports"`
	ExportsTotal int64          `json:"exports_total"`
	// PinsActive and PinsExpired count the gateway pins (tlsready pin):
	// those that apply now, and those past their --until not yet removed.
	PinsActive  int `json:"pins_active"`
	PinsExpired int `json:"pins_expired"`
	now         time.Time
}

// statusRun is one run as status shows it.
type statusRun struct {
	ID         int64     `json:"id"`
	Status     string    `json:"status"` // finished, running, interrupted, aborted, abandoned
	Input      string    `json:"input,omitempty"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	AgeSeconds int64     `json:"age_seconds,omitempty"` // since it finished (finished) or started
	Reason     string    `json:"reason,omitempty"`
	// InProgress: a scan holds the database's lock (running); nil when that
	// cannot be told.
	InProgress *bool                   `json:"in_progress,omitempty"`
	Domains    int64                   `json:"domains,omitempty"`
	Citizens   int64                   `json:"citizens,omitempty"`
	Verdicts   map[string]verdictCount `json:"verdicts,omitempty"`
	Stats      *store.RunStats         `json:"stats,omitempty"`
	now        time.Time
}

// verdictCount is one verdict's domains and citizens.
type verdictCount struct {
	Domains  int64 `json:"domains"`
	Citizens int64 `json:"citizens"`
}

// Age is how long ago the run finished (or started, when not finished).
func (r *statusRun) Age() time.Duration {
	if r == nil {
		return 0
	}
	if !r.FinishedAt.IsZero() {
		return r.now.Sub(r.FinishedAt)
	}
	return r.now.Sub(r.StartedAt)
}

func buildStatus(ctx context.Context, st *store.Store, db string, overdueAfter time.Duration, now time.Time) (statusReport, error) {
	db = store.RedactURL(db) // shown in the report and the next action: never a password
	rep := statusReport{Database: db, Now: now.UTC(), OverdueAfter: overdueAfter.String(), now: now}
	runs, err := st.Runs(ctx)
	if err != nil {
		return rep, err
	}
	runOf := func(r store.Run) statusRun {
		s := statusRun{ID: r.ID, Status: r.Status, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt, Reason: r.Reason, now: now}
		s.AgeSeconds = int64(s.Age().Seconds())
		return s
	}
	var last *store.Run
	for i := range runs {
		if runs[i].Status == store.RunFinished {
			last = &runs[i]
		}
	}
	if last != nil {
		s := runOf(*last)
		totals, err := st.RunVerdictTotals(ctx, last.ID)
		if err != nil {
			return rep, err
		}
		s.Verdicts = map[string]verdictCount{}
		for v, t := range totals {
			s.Verdicts[string(v)] = verdictCount{Domains: t.Domains, Citizens: t.Citizens}
			s.Domains += t.Domains
			s.Citizens += t.Citizens
		}
		stats := last.Stats
		s.Stats = &stats
		rep.LastFinished = &s
	}

	var held *bool
	if h, err := st.ScanLocked(ctx); err == nil {
		held = &h
	} else if !errors.Is(err, store.ErrLockUnknown) {
		return rep, err
	}
	for _, r := range runs {
		switch {
		case r.Status == store.RunRunning:
			s := runOf(r)
			s.Input = job.DescribeInput(r.Input, "")
			s.InProgress = held
			if held != nil && !*held {
				s.Status = "interrupted"
			}
			rep.Running = append(rep.Running, s)
		case r.Status == store.RunAborted && (last == nil || r.ID > last.ID):
			s := runOf(r)
			if r.Abandoned() {
				s.Status = "abandoned"
			}
			rep.Aborted = append(rep.Aborted, s)
		}
	}

	switch {
	case last == nil:
		rep.State, rep.ExitCode = "no-run", statusNoRun
	case rep.LastFinished.Age() > overdueAfter:
		rep.State, rep.ExitCode = "overdue", statusOverdue
	default:
		rep.State, rep.ExitCode = "fresh", statusFresh
	}
	rep.Next = nextAction(rep, db)
	rep.Exports, rep.ExportsTotal, err = st.Exports(ctx, time.Time{}, 10)
	if err != nil {
		return rep, err
	}
	if rep.Exports == nil {
		rep.Exports = []store.Export{}
	}
	pins, err := st.Pins(ctx)
	if err != nil {
		return rep, err
	}
	for _, p := range pins {
		if p.Active(rep.now) {
			rep.PinsActive++
		} else {
			rep.PinsExpired++
		}
	}
	return rep, nil
}

// nextAction says what the operator should do, most urgent first.
func nextAction(rep statusReport, db string) string {
	for _, r := range rep.Running {
		switch {
		case r.InProgress != nil && *r.InProgress:
			return fmt.Sprintf("wait: a scan is running (run %d, started %s ago)", r.ID, roundAge(r.Age()))
		case r.InProgress == nil:
			return fmt.Sprintf("run %d is running or was interrupted (whether a scan holds the lock cannot be told here): if no scan is running, run the same scan again (register %s) to resume it", r.ID, r.Input)
		default:
			return fmt.Sprintf("resume: run %d was interrupted; run the same scan again (register %s, --db %s) and it continues where it stopped", r.ID, r.Input, db)
		}
	}
	for i := len(rep.Aborted) - 1; i >= 0; i-- {
		if r := rep.Aborted[i]; r.Status == store.RunAborted {
			return fmt.Sprintf("fix, then scan again: run %d was aborted (%s); nothing cached was overwritten", r.ID, r.Reason)
		}
	}
	switch rep.State {
	case "no-run":
		return fmt.Sprintf("scan: no run has finished yet; tlsready scan REGISTER --db %s", db)
	case "overdue":
		return fmt.Sprintf("scan: the last finished run (%d) is %s old, beyond --overdue-after %s; see why the scheduled scan did not run (cron, its log), then run it", rep.LastFinished.ID, roundAge(rep.LastFinished.Age()), rep.OverdueAfter)
	}
	return "nothing to do: the last finished run is fresh"
}

func roundAge(d time.Duration) time.Duration {
	if d > time.Hour {
		return d.Round(time.Minute)
	}
	return d.Round(time.Second)
}

// printStatus renders the report for people.
func printStatus(w io.Writer, rep statusReport) {
	fmt.Fprintf(w, "database:  %s\n", rep.Database)
	state := map[string]string{"fresh": "fresh", "overdue": "OVERDUE", "no-run": "NO FINISHED RUN"}[rep.State]
	fmt.Fprintf(w, "state:     %s (--overdue-after %s)\n", state, rep.OverdueAfter)
	if l := rep.LastFinished; l != nil {
		fmt.Fprintf(w, "last run:  %d, finished %s (%s ago), took %s\n", l.ID, l.FinishedAt.UTC().Format(time.RFC3339),
			roundAge(l.Age()), l.FinishedAt.Sub(l.StartedAt).Round(time.Second))
		fmt.Fprintf(w, "           %d citizens at %d domains", l.Citizens, l.Domains)
		if s := l.Stats; s != nil {
			fmt.Fprintf(w, " (%d scanned, %d cached)", s.Scanned, s.Reused)
			if s.BadLines > 0 || s.DuplicateIDs > 0 {
				fmt.Fprintf(w, "; register: %d bad lines, %d duplicate ids", s.BadLines, s.DuplicateIDs)
			}
		}
		fmt.Fprintln(w)
		fmt.Fprintf(w, "           %-12s %9s %11s %7s\n", "verdict", "domains", "citizens", "share")
		for _, v := range append(append([]result.Verdict{}, result.Verdicts...), result.Unknown) {
			c, ok := l.Verdicts[string(v)]
			if !ok {
				continue
			}
			share := 0.0
			if l.Citizens > 0 {
				share = 100 * float64(c.Citizens) / float64(l.Citizens)
			}
			fmt.Fprintf(w, "           %-12s %9d %11d %6.1f%%\n", v, c.Domains, c.Citizens, share)
		}
	}
	for _, r := range rep.Running {
		what := "running or interrupted"
		switch {
		case r.InProgress != nil && *r.InProgress:
			what = "in progress (a scan holds the lock)"
		case r.InProgress != nil:
			what = "interrupted (no scan holds the lock)"
		}
		fmt.Fprintf(w, "%-10s run %d, started %s (%s ago), register %s: %s\n", r.Status+":", r.ID,
			r.StartedAt.UTC().Format(time.RFC3339), roundAge(r.Age()), r.Input, what)
	}
	for _, r := range rep.Aborted {
		reason := r.Reason
		if r.Status == "abandoned" {
			reason = "given up, " + strings.TrimPrefix(reason, "abandoned: ") + " (the domains it finished stay cached)"
		}
		fmt.Fprintf(w, "%-10s run %d, started %s: %s\n", r.Status+":", r.ID, r.StartedAt.UTC().Format(time.RFC3339), reason)
	}
	fmt.Fprintf(w, "next:      %s\n", rep.Next)
	fmt.Fprintf(w, "pins:      %d active, %d expired (tlsready pin list)\n", rep.PinsActive, rep.PinsExpired)
	fmt.Fprintf(w, "exports:   %d recipient exports recorded", rep.ExportsTotal)
	if len(rep.Exports) < int(rep.ExportsTotal) {
		fmt.Fprintf(w, " (the last %d)", len(rep.Exports))
	}
	fmt.Fprintln(w)
	for _, e := range rep.Exports {
		n := "unfinished"
		if e.Recipients != nil {
			n = fmt.Sprintf("%d recipients", *e.Recipients)
		}
		fmt.Fprintf(w, "           %s  run %d  %s  %s  by %s on %s  to %s\n", e.At.UTC().Format(time.RFC3339), e.RunID,
			strings.Join(e.Verdicts, ","), n, e.OSUser, e.Host, e.Output)
	}
}
