package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tlsready/tlsready/report"
	"github.com/tlsready/tlsready/scanner/result"
)

func newExportCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Export data for follow-up work (recipients for outreach)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageErr("export needs a subcommand: recipients (see tlsready export --help)")
		},
	}
	cmd.AddCommand(newExportRecipientsCmd())
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
			var n int64
			write := func(w io.Writer) (err error) {
				n, err = report.ExportRecipients(cmd.Context(), st, runID, vs, w)
				return err
			}
			if out == "" || out == "-" {
				return write(cmd.OutOrStdout())
			}
			if err := writeFileAtomic(out, 0o600, write); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "tlsready: wrote %d recipients to %s\n", n, out)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&db, "db", "", "database: SQLite file or postgres:// URL (opened read-only)")
	f.StringVar(&verdicts, "verdict", "plaintext,partial", "comma-separated verdicts: "+strings.Join(verdictWords(), ", "))
	f.StringVar(&out, "out", "", "output file, created 0600 (default: standard output)")
	f.Int64Var(&runID, "run", 0, "run id (default: the latest finished run); only the latest run's recipients are kept")
	return cmd
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
