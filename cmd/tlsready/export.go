package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tlsready/tlsready/report"
	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/store"
)

func newExportCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Export data for follow-up work (recipients for outreach, a static Postfix TLS policy map)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageErr("export needs a subcommand: recipients or policy (see tlsready export --help)")
		},
	}
	cmd.AddCommand(newExportRecipientsCmd(), newExportPolicyCmd())
	return cmd
}

func newExportRecipientsCmd() *cobra.Command {
	var (
		db, verdicts, out string
		runID             int64
	)
	cmd := &cobra.Command{
		Use:   "recipients --db FILE --verdict plaintext,partial [--out FILE] [--run N]",
		Short: "Recipient ids (and addresses, if the scan kept them) at domains with the given verdicts, as CSV",
		Long: `Write the recipients of a finished run (default: the latest) whose domain had
one of the verdicts, as CSV: id,domain,verdict and, when the scan kept
addresses (--keep-addresses), address. The file is personal data: it is
created with mode 0600.

Every export is recorded in the database before anything is written (its
audit trail of personal data: when, which run and verdicts, how many
recipients, the operating-system user and host, the output); tlsready status
shows the trail. So the command needs write access to the database: without
it, nothing is exported.

Recipients are not versioned per run: the database keeps only the recipient
list of the latest run that read a register. For an older run (--run N after
a later scan, even one still running, has added recipients) the command fails
instead of writing an incomplete list.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if db == "" {
				return usageErr("--db is required")
			}
			vs, err := parseVerdicts(verdicts)
			if err != nil {
				return err
			}
			if runID < 0 {
				return usageErr("--run must be a run id (0: the latest finished run)")
			}
			st, err := openExisting(cmd.Context(), db, true)
			if err != nil {
				return err
			}
			defer st.Close()
			if err := checkReportRun(cmd.Context(), st, db, runID); err != nil {
				return err
			}
			// The audit trail: an entry before any personal data is written,
			// completed with the count once it is.
			rid := runID
			if rid == 0 {
				run, err := st.LatestFinishedRun(cmd.Context())
				if err != nil {
					return err
				}
				rid = run.ID
			}
			output := "-"
			if out != "" && out != "-" {
				output = out
				if abs, err := filepath.Abs(out); err == nil {
					output = abs
				}
			}
			audit, err := store.Open(cmd.Context(), db, store.Options{})
			if err != nil {
				return fmt.Errorf("every export of recipients is recorded in the database, and %s cannot be written: %w", store.RedactURL(db), err)
			}
			defer audit.Close()
			who, host := auditIdentity()
			entry, err := audit.LogExport(cmd.Context(), store.Export{At: time.Now(), Kind: "recipients", RunID: rid,
				Verdicts: verdictStrings(vs), OSUser: who, Host: host, Output: output})
			if err != nil {
				return fmt.Errorf("every export of recipients is recorded in the database, and recording this one failed: %w", err)
			}
			var n int64
			write := func(w io.Writer) (err error) {
				n, err = report.ExportRecipients(cmd.Context(), st, runID, vs, w)
				return err
			}
			finish := func(err error) error {
				if err != nil {
					return err // the entry stays without a count: the export did not finish
				}
				return audit.FinishExport(context.WithoutCancel(cmd.Context()), entry, n)
			}
			toFile, err := writeOut(cmd.OutOrStdout(), out, 0o600, write)
			if err = finish(err); err != nil || !toFile {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "tlsready: wrote %d recipients to %s\n", n, out)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&db, "db", "", "database: SQLite file or postgres:// URL (the export is recorded in it)")
	f.StringVar(&verdicts, "verdict", "plaintext,partial", "comma-separated verdicts: "+strings.Join(verdictWords(), ", "))
	f.StringVar(&out, "out", "", "output file, created 0600 (default: standard output)")
	f.Int64Var(&runID, "run", 0, "run id (default: the latest finished run); only the latest run's recipients are kept")
	return cmd
}

// verdictStrings are vs as words.
func verdictStrings(vs []result.Verdict) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}

// auditIdentity is who and where, as the audit trails record it (exports,
// pins): the operating-system user (osUser) and the host name.
func auditIdentity() (osUserName, host string) {
	host, _ = os.Hostname()
	return osUser(), host
}

// osUser names the operating-system user running the command, and the
// user who ran sudo, if so: "root (sudo from alice)".
func osUser() string {
	name := ""
	if u, err := user.Current(); err == nil {
		name = u.Username
	} else {
		name = fmt.Sprintf("uid %d", os.Getuid())
	}
	if su := os.Getenv("SUDO_USER"); su != "" && su != name {
		name += " (sudo from " + su + ")"
	}
	return name
}

// verdictWords are the values --verdict takes: the ten verdicts and
// "unknown" (a domain of the run without a stored result).
func verdictWords() []string {
	words := make([]string, 0, len(result.Verdicts)+1)
	for _, v := range append(slices.Clone(result.Verdicts), result.Unknown) {
		words = append(words, string(v))
	}
	return words
}

// parseVerdicts parses --verdict: comma-separated verdict words, duplicates
// dropped; a wrong word is a usage error that lists the valid ones.
func parseVerdicts(s string) ([]result.Verdict, error) {
	var out []result.Verdict
	for _, w := range strings.Split(s, ",") {
		w = strings.ToLower(strings.TrimSpace(w))
		if w == "" {
			continue
		}
		if !slices.Contains(verdictWords(), w) {
			return nil, usageErr("--verdict: %q is not a verdict; valid: %s", w, strings.Join(verdictWords(), ", "))
		}
		if v := result.Verdict(w); !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	if len(out) == 0 {
		return nil, usageErr("--verdict is empty; valid: %s", strings.Join(verdictWords(), ", "))
	}
	return out, nil
}
