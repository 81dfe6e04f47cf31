package main

import (
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tlsready/tlsready/cmd/internal/job"
	"github.com/tlsready/tlsready/report"
	"github.com/tlsready/tlsready/scanner"
	"github.com/tlsready/tlsready/scanner/resolve"
	"github.com/tlsready/tlsready/scanner/scantest"
	"github.com/tlsready/tlsready/scanner/scantest/worlds"
	"github.com/tlsready/tlsready/scanner/smtpprobe"
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
			sc, reg, _, err := worlds.Demo(nil)
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
			db := filepath.Join(dir, "tlsready.db")
			cfg := demoJob(world, input, db, slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil)))
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "simulated internet: DNS %s, SMTP port %d, HTTPS port %d\n", world.DNSAddr, world.SMTPPort, world.HTTPSPort)
			sum, err := job.Run(ctx, cfg)
			if err := jobExit(err); err != nil {
				return err
			}
			printSummary(out, sum)
			c := world.Counters()
			fmt.Fprintf(out, "simulated servers saw %d SMTP connections, %d DNS queries; MAIL/RCPT/DATA received: %d\n",
				c.SMTPConnections, c.DNSQueries, c.Commands["MAIL"]+c.Commands["RCPT"]+c.Commands["DATA"])
			path := filepath.Join(dir, "report.html")
			if err := writeDemoReport(cmd, db, path, lang); err != nil {
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

// demoJob is the scan of the demo world: the scan's defaults, with the
// world's resolver, CA and ports, and no waits a person would notice.
func demoJob(world *scantest.Internet, input, db string, log *slog.Logger) job.Config {
	trustAD := true // the world's resolver is ours
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	roots.AppendCertsFromPEM(world.CA.PEM)
	return job.Config{
		Input:        input,
		DB:           db,
		Resolver:     resolve.Config{Servers: []string{world.DNSAddr}, TrustAD: &trustAD},
		ResolverName: world.DNSAddr,
		Scanner: scanner.Config{
			Probe:        smtpprobe.Config{Port: world.SMTPPort, HELO: "demo.tlsready.invalid", Timeout: 10 * time.Second},
			RootCAs:      roots,
			HTTPSPort:    world.HTTPSPort,
			Concurrency:  50,
			Rate:         1000,
			AllowPrivate: true,
			TempRetry:    []time.Duration{2 * time.Second}, // the demo's greylisting lifts at once
		},
		Version: version,
		Log:     log,
	}
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
