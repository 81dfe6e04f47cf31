package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/spf13/pflag"

	"github.com/tlsready/tlsready/cmd/internal/job"
	"github.com/tlsready/tlsready/scanner"
	"github.com/tlsready/tlsready/scanner/resolve"
	"github.com/tlsready/tlsready/scanner/smtpprobe"
)

// scanFlags are the flags shared by scan, check and demo.
type scanFlags struct {
	resolver     string
	caFile       string
	concurrency  int
	rate         int
	dnsRate      int
	timeout      time.Duration
	helo         string
	smtpPort     int
	httpsPort    int
	ipv6         bool
	allowPrivate bool
	trustAD      string
	noPolicy     bool
	maxMX        int
	maxIPs       int
	tempRetry    []time.Duration
	logFormat    string
	quiet        bool
	verbose      bool

	// dialer, when set, replaces the network for SMTP probes: check's
	// progress watch (checkprogress.go) wraps the connections with it.
	dialer smtpprobe.Dialer
	// logOut receives the log (the command's stderr); nil: os.Stderr.
	logOut io.Writer
	// hostname and hostResolver find the default --helo (defaultHELO);
	// nil: os.Hostname and net.DefaultResolver.
	hostname     func() (string, error)
	hostResolver hostResolver
}

func (f *scanFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.resolver, "resolver", "", "DNS resolver HOST:PORT (default: the nameservers of /etc/resolv.conf)")
	fs.StringVar(&f.caFile, "ca-file", "", "PEM file of extra trusted root certificates (added to the system pool)")
	fs.IntVar(&f.concurrency, "concurrency", scanner.DefaultConcurrency, "domains scanned at once")
	fs.IntVar(&f.rate, "rate", scanner.DefaultRate, "new SMTP connections per second (global)")
	fs.IntVar(&f.dnsRate, "dns-rate", 0, "DNS queries per second (0: unlimited)")
	fs.DurationVar(&f.timeout, "probe-timeout", scanner.DefaultProbeTimeout, "deadline for one MX IP probe (connect, banner, EHLO, STARTTLS, handshake, retry)")
	// The old name, kept working: the same deadline is --probe-timeout in
	// scan, check and serve.
	fs.DurationVar(&f.timeout, "timeout", scanner.DefaultProbeTimeout, "deadline for one MX IP probe")
	_ = fs.MarkDeprecated("timeout", "use --probe-timeout (the same name in scan, check and serve)")
	fs.StringVar(&f.helo, "helo", "", "EHLO name identifying the operator: a fully qualified name with forward-confirmed reverse DNS (default: the host's fully qualified name; refused when it has none)")
	fs.IntVar(&f.smtpPort, "smtp-port", 25, "SMTP port to probe (labs and tests)")
	fs.IntVar(&f.httpsPort, "https-port", 443, "HTTPS port for MTA-STS policies (labs and tests)")
	fs.BoolVar(&f.ipv6, "ipv6", false, "also look up and probe AAAA addresses")
	fs.BoolVar(&f.allowPrivate, "allow-private", false, "connect to loopback, private and reserved addresses (labs and tests only)")
	fs.StringVar(&f.trustAD, "trust-ad", "auto", "trust the resolver's AD bit: auto (only a loopback resolver), true, false")
	fs.BoolVar(&f.noPolicy, "no-policy", false, "skip MTA-STS, DANE and TLSRPT")
	fs.IntVar(&f.maxMX, "max-mx", scanner.DefaultMaxMX, "MX hosts looked at per domain")
	fs.IntVar(&f.maxIPs, "max-ips", scanner.DefaultMaxIPs, "addresses probed per MX host")
	fs.DurationSliceVar(&f.tempRetry, "temp-retry", scanner.DefaultTempRetry,
		"back-off schedule for an MX IP that answers the banner or EHLO with a 4xx (greylisting, rate limits): tried again after each wait, later in the run; 0: no retries")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.BoolVarP(&f.quiet, "quiet", "q", false, "no progress bar or progress lines (the final summary is still printed)")
	fs.BoolVarP(&f.verbose, "verbose", "v", false, "debug logging")
}

// validate checks the flags and settles --helo (defaultHELO when empty).
func (f *scanFlags) validate(ctx context.Context) error {
	switch {
	case f.concurrency < 1 || f.concurrency > 100000:
		return usageErr("--concurrency must be between 1 and 100000")
	case f.rate < 1:
		return usageErr("--rate must be at least 1")
	case f.dnsRate < 0:
		return usageErr("--dns-rate must not be negative")
	case f.timeout < time.Second:
		return usageErr("--probe-timeout must be at least 1s")
	case f.smtpPort < 1 || f.smtpPort > 65535 || f.httpsPort < 1 || f.httpsPort > 65535:
		return usageErr("ports must be between 1 and 65535")
	case f.logFormat != "text" && f.logFormat != "json":
		return usageErr("--log-format must be text or json")
	case f.trustAD != "auto" && f.trustAD != "true" && f.trustAD != "false":
		return usageErr("--trust-ad must be auto, true or false")
	case f.maxMX < 1 || f.maxIPs < 1:
		return usageErr("--max-mx and --max-ips must be at least 1")
	}
	if f.resolver != "" {
		if _, _, err := net.SplitHostPort(f.resolver); err != nil {
			return usageErr("--resolver must be HOST:PORT: %v", err)
		}
	}
	if f.helo != "" {
		h, ok := fqdn(f.helo)
		if !ok {
			return usageErr("--helo %q is not a fully qualified domain name: receivers reject or distrust a bare host name; pass the scanning host's full name, e.g. --helo scanner.example.org (see README, --helo)", f.helo)
		}
		f.helo = h
		return nil
	}
	hostname, res := f.hostname, f.hostResolver
	if hostname == nil {
		hostname = os.Hostname
	}
	if res == nil {
		res = net.DefaultResolver
	}
	h, err := defaultHELO(ctx, hostname, res)
	if err != nil {
		return usageErr("%v", err)
	}
	f.helo = h
	return nil
}

func (f *scanFlags) logger() *slog.Logger {
	level := slog.LevelInfo
	if f.verbose {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	w := f.logOut
	if w == nil {
		w = os.Stderr
	}
	if f.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// build makes the resolver, checks that it answers (checkResolver), and
// makes the scanner. The caller closes both.
func (f *scanFlags) build(ctx context.Context, log *slog.Logger, cache scanner.STSCache) (*resolve.Client, *scanner.Scanner, error) {
	res, err := f.buildResolver(log)
	if err != nil {
		return nil, nil, err
	}
	if err := f.checkResolver(ctx, res, log); err != nil {
		res.Close()
		return nil, nil, err
	}
	roots, err := f.roots()
	if err != nil {
		res.Close()
		return nil, nil, err
	}
	sc, err := f.buildScanner(log, res, cache, roots)
	if err != nil {
		res.Close()
		return nil, nil, err
	}
	return res, sc, nil
}

// servers are the resolvers to use: --resolver, else those of /etc/resolv.conf.
func (f *scanFlags) servers() ([]string, error) {
	if f.resolver != "" {
		return []string{f.resolver}, nil
	}
	servers, err := resolve.SystemServers("/etc/resolv.conf")
	if err != nil {
		return nil, fmt.Errorf("no --resolver and /etc/resolv.conf unusable: %w", err)
	}
	return servers, nil
}

// buildResolver makes the DNS client from --resolver, --dns-rate and --trust-ad.
func (f *scanFlags) buildResolver(log *slog.Logger) (*resolve.Client, error) {
	rc, err := f.resolverConfig(log)
	if err != nil {
		return nil, err
	}
	return resolve.New(rc)
}

// resolverConfig is the DNS client's configuration from --resolver,
// --dns-rate and --trust-ad.
func (f *scanFlags) resolverConfig(log *slog.Logger) (resolve.Config, error) {
	servers, err := f.servers()
	if err != nil {
		return resolve.Config{}, err
	}
	rc := resolve.Config{Servers: servers, Rate: f.dnsRate, Logger: log}
	if f.trustAD != "auto" {
		b, _ := strconv.ParseBool(f.trustAD)
		rc.TrustAD = &b
	}
	return rc, nil
}

// checkResolver asks the resolver the root NS question before the first
// domain (job.CheckResolver): a resolver that does not answer is exit 4.
func (f *scanFlags) checkResolver(ctx context.Context, res *resolve.Client, log *slog.Logger) error {
	servers, _ := f.servers()
	return jobExit(job.CheckResolver(ctx, res, servers, log))
}

// roots is the system pool plus --ca-file.
func (f *scanFlags) roots() (*x509.CertPool, error) {
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	if f.caFile != "" {
		pem, err := os.ReadFile(f.caFile)
		if err != nil {
			return nil, fmt.Errorf("--ca-file: %w", err)
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca-file %s: no certificates found", f.caFile)
		}
	}
	return roots, nil
}

// buildScanner makes a scanner (one run's shared caches) over res.
func (f *scanFlags) buildScanner(log *slog.Logger, res resolve.Resolver, cache scanner.STSCache, roots *x509.CertPool) (*scanner.Scanner, error) {
	cfg := f.scannerConfig(roots)
	cfg.Resolver, cfg.STSCache, cfg.Logger = res, cache, log
	return scanner.New(cfg)
}

// scannerConfig is the scanner's configuration from the flags, without its
// resolver, MTA-STS cache and logger.
func (f *scanFlags) scannerConfig(roots *x509.CertPool) scanner.Config {
	tempRetry := f.tempRetry
	if len(tempRetry) == 1 && tempRetry[0] == 0 {
		tempRetry = []time.Duration{} // --temp-retry 0: judge on the first answer
	}
	return scanner.Config{
		Probe: smtpprobe.Config{
			Port:    f.smtpPort,
			HELO:    f.helo, // settled by validate
			Timeout: f.timeout,
			Dialer:  f.dialer,
		},
		RootCAs:      roots,
		HTTPSPort:    f.httpsPort,
		Concurrency:  f.concurrency,
		Rate:         f.rate,
		MaxMX:        f.maxMX,
		MaxIPs:       f.maxIPs,
		IPv6:         f.ipv6,
		AllowPrivate: f.allowPrivate,
		NoPolicy:     f.noPolicy,
		TempRetry:    tempRetry,
	}
}
