package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tlsready/tlsready/report"
)

func newReportCmd() *cobra.Command {
	var (
		db, format, out, lang string
		runID                 int64
	)
	cmd := &cobra.Command{
		Use:   "report --db FILE [--format html|table|csv|json] [--out FILE] [--lang ja|en] [--run N]",
		Short: "Report a finished scan run: HTML for analysts, terminal tables, or per-domain CSV/JSON",
		Long: `Report a finished scan run (default: the latest).

  html   one self-contained HTML file (no network access when opened), Japanese or English
  table  verdict summary, what-if table and top domains for an 80-column terminal
  csv    one row per domain (columns in README "Report exports")
  json   run metadata, totals and one object per domain

Without --format, the format follows --out's extension (.html/.htm, .csv,
.json, .txt/.table); with no --out, or an --out without an extension, it is
table. Any other extension needs --format.

--lang defaults from LC_ALL / LC_MESSAGES / LANG ("ja..." is Japanese), else English.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if db == "" {
				return usageErr("--db is required")
			}
			if !cmd.Flags().Changed("format") {
				f, err := formatFromOut(out)
				if err != nil {
					return err
				}
				format = f
			}
			switch format {
			case "html", "table", "csv", "json":
			default:
				return usageErr("--format must be html, table, csv or json, not %q", format)
			}
			if lang == "" {
				lang = report.DefaultLang(os.Getenv)
			} else if l := strings.ToLower(lang); !strings.HasPrefix(l, "ja") && !strings.HasPrefix(l, "en") {
				return usageErr("--lang must be ja or en, not %q", lang)
			}
			lang = report.NormalizeLang(lang)
			if runID < 0 {
				return usageErr("--run must be a run id (0: the latest finished run)")
			}
			ctx := cmd.Context()
			st, err := openExisting(ctx, db, true)
			if err != nil {
				return err
			}
			defer st.Close()
			if err := checkReportRun(ctx, st, db, runID); err != nil {
				return err
			}
			write := func(w io.Writer) error {
				switch format {
				case "csv":
					return report.WriteCSV(ctx, st, runID, w)
				case "json":
					return report.WriteJSON(ctx, st, runID, w)
				}
				m, err := report.Load(ctx, st, runID, report.LoadOptions{})
				if err != nil {
					return err
				}
				if format == "html" {
					return report.RenderHTML(w, m, lang)
				}
				return report.RenderTable(w, m, lang)
			}
			if toFile, err := writeOut(cmd.OutOrStdout(), out, 0o644, write); err != nil || !toFile {
				return err
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "tlsready: wrote", out)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&db, "db", "", "database: SQLite file or postgres:// URL (opened read-only)")
	f.StringVar(&format, "format", "", "html, table, csv or json (default: from --out's extension, else table)")
	f.StringVar(&out, "out", "", "output file (default: standard output)")
	f.StringVar(&lang, "lang", "", "ja or en (default: from the locale)")
	f.Int64Var(&runID, "run", 0, "run id (default: the latest finished run)")
	return cmd
}

// formatFromOut is the report format implied by --out's extension when
// --format is not given: table for standard output or a file without an
// extension, a usage error for an extension that names no format.
func formatFromOut(out string) (string, error) {
	if out == "" || out == "-" {
		return "table", nil
	}
	switch ext := strings.ToLower(filepath.Ext(out)); ext {
	case "":
		return "table", nil
	case ".html", ".htm":
		return "html", nil
	case ".csv":
		return "csv", nil
	case ".json":
		return "json", nil
	case ".txt", ".table":
		return "table", nil
	default:
		return "", usageErr("--out %s: cannot tell the format from %q; pass --format html, table, csv or json", out, ext)
	}
}

// writeOut writes an --out: to stdout when out is "" or "-", else with
// writeFileAtomic to the file out, created perm; toFile says which.
func writeOut(stdout io.Writer, out string, perm os.FileMode, write func(io.Writer) error) (toFile bool, err error) {
	if out == "" || out == "-" {
		return false, write(stdout)
	}
	return true, writeFileAtomic(out, perm, write)
}

// writeFileAtomic writes path through a temporary file in the same
// directory (created 0600), sets perm and renames it into place, so a reader
// never sees a half-written file and a failed run leaves no partial output.
func writeFileAtomic(path string, perm os.FileMode, write func(io.Writer) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = write(f); err != nil {
		return err
	}
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
