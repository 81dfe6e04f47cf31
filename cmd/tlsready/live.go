package main

import (
	"context"
	"crypto/x509"
	"log/slog"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tlsready/tlsready/gateway"
	"github.com/tlsready/tlsready/scanner"
	"github.com/tlsready/tlsready/scanner/resolve"
	"github.com/tlsready/tlsready/scanner/result"
)

// registerLiveFlags registers the scanner flags of `serve --live`: the
// subset of the scan flags a single on-demand check needs.
func registerLiveFlags(fs *pflag.FlagSet) *scanFlags {
	// tempRetry 0: a live check answers now; an IP that refuses with a 4xx
	// is judged on that answer (unreachable), and the next scan tries again.
	f := &scanFlags{concurrency: 1, rate: 1, maxMX: scanner.DefaultMaxMX, maxIPs: scanner.DefaultMaxIPs, trustAD: "auto", logFormat: "text", tempRetry: []time.Duration{0}}
	fs.StringVar(&f.resolver, "resolver", "", "live checks: DNS resolver HOST:PORT (default: /etc/resolv.conf)")
	fs.StringVar(&f.caFile, "ca-file", "", "live checks: extra trusted roots (PEM)")
	fs.DurationVar(&f.timeout, "probe-timeout", scanner.DefaultLiveProbeTimeout, "live checks: deadline for one MX IP probe (the same flag as scan's and check's)")
	fs.StringVar(&f.helo, "helo", "", "live checks: EHLO name identifying the operator, fully qualified (default: the host's fully qualified name)")
	fs.IntVar(&f.smtpPort, "smtp-port", 25, "live checks: SMTP port (labs and tests)")
	fs.IntVar(&f.httpsPort, "https-port", 443, "live checks: HTTPS port for MTA-STS (labs and tests)")
	fs.BoolVar(&f.allowPrivate, "allow-private", false, "live checks: connect to private/reserved addresses (labs and tests)")
	fs.StringVar(&f.trustAD, "trust-ad", "auto", "live checks: trust the resolver's AD bit: auto, true, false")
	fs.BoolVar(&f.ipv6, "ipv6", false, "live checks: also probe AAAA addresses")
	return f
}

// liveChecker scans one domain on demand. Each check gets a fresh Scanner:
// a scanner's probe cache is one run's, and a long-lived one would answer
// from probes made hours ago.
type liveChecker struct {
	flags *scanFlags
	roots *x509.CertPool // read once, not per check
	res   *resolve.Client
	log   *slog.Logger
}

func newLiveChecker(cmd *cobra.Command, f *scanFlags, log *slog.Logger) (gateway.Checker, error) {
	if err := f.validate(cmd.Context()); err != nil {
		return nil, err
	}
	roots, err := f.roots()
	if err != nil {
		return nil, err
	}
	res, err := f.buildResolver(log)
	if err != nil {
		return nil, err
	}
	go func() { <-cmd.Context().Done(); res.Close() }()
	return &liveChecker{flags: f, roots: roots, res: res, log: log}, nil
}

func (l *liveChecker) Check(ctx context.Context, domain string) (result.Result, error) {
	sc, err := l.flags.buildScanner(l.log, l.res, nil, l.roots)
	if err != nil {
		return result.Result{}, err
	}
	defer sc.Close()
	return sc.Check(ctx, domain)
}
