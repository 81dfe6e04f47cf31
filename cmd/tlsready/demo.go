package main

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tlsready/tlsready/report"
	"github.com/tlsready/tlsready/scanner/scantest"
	"github.com/tlsready/tlsready/store"
)

func newDemoCmd() *cobra.Command {
	var dir string
	var lang string
	cmd := &cobra.Command{
		Use:   "demo [--dir DIR]",
		Short: "Scan a built-in simulated internet (every verdict) and write a report",
		Long: `Starts the built-in simulated internet on loopback (a DNS server, mail servers
with every kind of TLS behaviour, MTA-STS policy servers, a test CA), writes a
register of a few thousand fake citizens, scans it into DIR/tlsready.db exactly
as "tlsready scan" would, prints the summary and writes DIR/report.html.
Running it again adds a run, so the report shows a trend.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return err
			}
			sc, reg, _, err := scantest.Demo(nil)
			if err != nil {
				return fmt.Errorf("building the demo world: %w", err)
			}
			world, err := scantest.Start(sc)
			if err != nil {
				return fmt.Errorf("starting the demo world: %w", err)
			}
			defer world.Close()

			input := filepath.Join(dir, "register.txt")
			if err := os.WriteFile(input, []byte(strings.Join(reg, "\n")+"\n"), 0o600); err != nil {
				return err
			}
			o := scanOptions{input: input, db: filepath.Join(dir, "tlsready.db")}
			o.scanFlags = scanFlags{
				resolver: world.DNSAddr, caFile: world.CAFile,
				concurrency: 50, rate: 1000, timeout: 10 * time.Second,
				helo: "demo.tlsready.invalid", smtpPort: world.SMTPPort, httpsPort: world.HTTPSPort,
				allowPrivate: true, trustAD: "true", maxMX: 10, maxIPs: 4, logFormat: "text", quiet: true,
				tempRetry: []time.Duration{2 * time.Second}, // the demo's greylisting lifts at once
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "simulated internet: DNS %s, SMTP port %d, HTTPS port %d\n", world.DNSAddr, world.SMTPPort, world.HTTPSPort)
			sum, err := runScanJob(ctx, &o, out)
			if err != nil {
				return err
			}
			printSummary(out, sum)
			c := world.Counters()
			fmt.Fprintf(out, "simulated servers saw %d SMTP connections, %d DNS queries; MAIL/RCPT/DATA received: %d\n",
				c.SMTPConnections, c.DNSQueries, c.Commands["MAIL"]+c.Commands["RCPT"]+c.Commands["DATA"])
			path := filepath.Join(dir, "report.html")
			if err := writeDemoReport(cmd, o.db, path, lang); err != nil {
				return fmt.Errorf("writing the report: %w", err)
			}
			abs, _ := filepath.Abs(path)
			fmt.Fprintf(out, "HTML report: %s\n", abs)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "demo-out", "directory for the register, the database and the report")
	cmd.Flags().StringVar(&lang, "lang", "", "report language: ja or en (default from the locale)")
	return cmd
}

// writeDemoReport writes the HTML report of the latest run in the database.
func writeDemoReport(cmd *cobra.Command, db, path, lang string) error {
	st, err := store.Open(cmd.Context(), db, store.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer st.Close()
	m, err := report.Load(cmd.Context(), st, 0, report.LoadOptions{})
	if err != nil {
		return err
	}
	if lang == "" {
		lang = report.DefaultLang(os.Getenv)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if err := report.RenderHTML(f, m, lang); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
