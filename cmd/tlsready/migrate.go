package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tlsready/tlsready/store"
)

func newMigrateCmd() *cobra.Command {
	var from, to string
	cmd := &cobra.Command{
		Use:   "migrate --from DB --to DB",
		Short: "Copy a database into a new, empty one: an SQLite file into PostgreSQL, or back",
		Long: `Copy every table of --from (runs, recipients, results, run history,
MTA-STS policy cache, data version) into --to, in one transaction, and
verify the copy: the rows of each table, the data version and a checksum of
the verdicts (every domain's latest verdict and every run's history) must be
the same in both, else the command fails (exit 1).

Each of --from and --to is an SQLite file or a postgres:// (postgresql://)
URL. --to must be empty (an SQLite file is created); it is held with the
scan lock meanwhile. Stop scans of --from before migrating.`,
		Example: `  tlsready migrate --from tlsready.db --to postgres://tlsready@db.example/tlsready
  tlsready migrate --from postgres://tlsready@db.example/tlsready --to copy.db`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from == "" || to == "" {
				return usageErr("--from and --to are both required")
			}
			if from == to {
				return usageErr("--from and --to are the same database")
			}
			ctx := cmd.Context()
			src, err := openExisting(ctx, from, true)
			if err != nil {
				return err
			}
			defer src.Close()
			dst, err := store.Open(ctx, to, store.Options{})
			if err != nil {
				return storeUsage(err)
			}
			defer dst.Close()
			unlock, err := dst.LockScan()
			if errors.Is(err, store.ErrLocked) {
				return fmt.Errorf("%s: a tlsready scan is running on this database; it is not a new one", store.RedactURL(to))
			}
			if err != nil {
				return err
			}
			defer unlock()
			errOut := cmd.ErrOrStderr()
			sum, err := store.Copy(ctx, dst, src, func(table string, rows int64) {
				fmt.Fprintf(errOut, "copied %-22s %d rows\n", table, rows)
			})
			if errors.Is(err, store.ErrNotEmpty) {
				return &exitError{code: exitUsage, err: fmt.Errorf("%w; --to must be a new database", err)}
			}
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "migrated %s -> %s\n", store.RedactURL(from), store.RedactURL(to))
			for _, t := range sum.Tables() {
				fmt.Fprintf(out, "  %-22s %d rows\n", t, sum.Rows[t])
			}
			fmt.Fprintf(out, "  data version           %d\n", sum.DataVersion)
			fmt.Fprintf(out, "  verdicts sha256        %s\n", sum.Verdicts)
			fmt.Fprintln(out, "verified: row counts, data version and verdict checksum match")
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "database to copy: SQLite file or postgres:// URL")
	cmd.Flags().StringVar(&to, "to", "", "new, empty database to copy into: SQLite file or postgres:// URL")
	return cmd
}
