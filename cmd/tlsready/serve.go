package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/tlsready/tlsready/gateway"
	"github.com/tlsready/tlsready/store"
)

type serveOptions struct {
	db              string
	httpAddr        string
	socketmapAddr   string
	opsAddr         string
	tokenFile       string
	staleAfter      time.Duration
	verifiedPolicy  string
	encryptedPolicy string
	live            bool
	liveScan        *scanFlags // the scanner behind --live
	liveTimeout     time.Duration
	liveRate        float64
	maxBatch        int
	maxConns        int
	verbose         bool
	logFormat       string
	cacheFile       string
}

func newServeCmd() *cobra.Command {
	var o serveOptions
	cmd := &cobra.Command{
		Use:   "serve --db FILE [--http 127.0.0.1:8461] [--socketmap 127.0.0.1:8462]",
		Short: "Answer the mail gateway from the cache: HTTP JSON API and Postfix socketmap",
		Long: `Serves the database's latest results from memory, reloading when a scan writes:

  GET  /v1/domains/{domain}        verdict, flags, scan time, validity, Postfix policy
  GET  /v1/recipients/{address}    the same for the address's domain (address never logged)
  POST /v1/lookup                  {"domains":[...],"recipients":[...]}
  GET  /healthz, GET /metrics      health and Prometheus metrics

and a Postfix socketmap for smtp_tls_policy_maps =
socketmap:inet:127.0.0.1:8462:tlspolicy (dane -> dane-only, mta-sts -> secure
match=..., verified -> --verified-policy, encrypted -> --encrypted-policy,
everything else, unknown and stale results -> not found).

Both listen on loopback by default; an empty address disables one. Binding
either to a non-loopback address requires --token-file (mode 0600: a file
group or others may read is refused); every HTTP request must then carry
"Authorization: Bearer <token>". --ops-listen ADDR serves /healthz and
/metrics alone, without the token, for health checkers and Prometheus (they
name no domain or address). The socketmap protocol has no authentication:
firewall a non-loopback socketmap to the mail gateway. A known path with the
wrong method answers 405 with Allow. SIGTERM or SIGINT shuts down gracefully
(exit 0).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := o.config(cmd)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runServe(ctx, cmd, &o, cfg)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.db, "db", "", "database: SQLite file or postgres:// URL (written by tlsready scan)")
	fs.StringVar(&o.httpAddr, "http", "127.0.0.1:8461", "HTTP API listen address (empty: off)")
	fs.StringVar(&o.socketmapAddr, "socketmap", "127.0.0.1:8462", "Postfix socketmap listen address (empty: off)")
	fs.StringVar(&o.opsAddr, "ops-listen", "", "listen address serving only /healthz and /metrics, without the token (empty: off; e.g. 127.0.0.1:9100)")
	fs.StringVar(&o.tokenFile, "token-file", "", "file holding the HTTP bearer token (at least 16 characters, mode 0600); required off loopback")
	fs.DurationVar(&o.staleAfter, "stale-after", gateway.DefaultStaleAfter,
		"results older than this are stale: the socketmap answers not found (keep it below Postfix's maximal_queue_lifetime)")
	fs.StringVar(&o.verifiedPolicy, "verified-policy", gateway.PolicyVerify, `Postfix policy for "verified" domains: verify (blocks STARTTLS downgrade) or may`)
	fs.StringVar(&o.encryptedPolicy, "encrypted-policy", gateway.PolicyEncrypt, `Postfix policy for "encrypted" domains: encrypt (blocks STARTTLS downgrade) or may`)
	fs.BoolVar(&o.live, "live", false, "allow ?live=1: scan a domain the cache does not know (rate limited; saves the result)")
	o.liveScan = registerLiveFlags(fs)
	fs.DurationVar(&o.liveTimeout, "live-timeout", gateway.DefaultLiveTimeout, "bound on one live check")
	fs.Float64Var(&o.liveRate, "live-rate", gateway.DefaultLiveRate, "live checks per second, all clients together")
	fs.IntVar(&o.maxBatch, "max-batch", gateway.DefaultMaxBatch, "most domains plus recipients in one POST /v1/lookup")
	fs.IntVar(&o.maxConns, "max-conns", gateway.DefaultMaxConns, "open connections per listener")
	fs.BoolVarP(&o.verbose, "verbose", "v", false, "debug logging (domains only, never addresses)")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&o.cacheFile, "cache-file", "", `local copy of the cache (mode 0600), answered from when serve starts while the database is unreachable; default: for a postgres:// URL, serve-<hash of the URL>.cache in $CACHE_DIRECTORY or the user's cache directory ("none": off), for SQLite none`)
	return cmd
}

// config checks the flags and builds the gateway configuration (without the
// store, opened later).
func (o *serveOptions) config(cmd *cobra.Command) (gateway.Config, error) {
	var cfg gateway.Config
	switch {
	case o.db == "":
		return cfg, usageErr("--db is required")
	case o.httpAddr == "" && o.socketmapAddr == "":
		return cfg, usageErr("--http and --socketmap are both empty: nothing to serve")
	case o.staleAfter <= 0:
		return cfg, usageErr("--stale-after must be positive")
	case o.verifiedPolicy != gateway.PolicyVerify && o.verifiedPolicy != gateway.PolicyMay:
		return cfg, usageErr("--verified-policy must be verify or may")
	case o.encryptedPolicy != gateway.PolicyEncrypt && o.encryptedPolicy != gateway.PolicyMay:
		return cfg, usageErr("--encrypted-policy must be encrypt or may")
	case o.liveTimeout <= 0 || o.liveRate <= 0:
		return cfg, usageErr("--live-timeout and --live-rate must be positive")
	case o.maxBatch < 1 || o.maxConns < 1:
		return cfg, usageErr("--max-batch and --max-conns must be at least 1")
	case o.logFormat != "text" && o.logFormat != "json":
		return cfg, usageErr("--log-format must be text or json")
	}
	for _, a := range []struct{ flag, addr string }{{"--http", o.httpAddr}, {"--socketmap", o.socketmapAddr}} {
		if a.addr == "" {
			continue
		}
		host, _, err := net.SplitHostPort(a.addr)
		if err != nil {
			return cfg, usageErr("%s must be HOST:PORT: %v", a.flag, err)
		}
		if !isLoopback(host) && o.tokenFile == "" {
			return cfg, usageErr("%s %s is not a loopback address: --token-file is required", a.flag, a.addr)
		}
	}
	if o.opsAddr != "" { // no token there: health and metrics only
		if _, _, err := net.SplitHostPort(o.opsAddr); err != nil {
			return cfg, usageErr("--ops-listen must be HOST:PORT: %v", err)
		}
	}
	if o.tokenFile != "" {
		tok, err := readToken(o.tokenFile)
		if err != nil {
			return cfg, usageErr("--token-file: %v", err)
		}
		cfg.Token = tok
	}
	level := slog.LevelInfo
	if o.verbose {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	if o.logFormat == "json" {
		cfg.Logger = slog.New(slog.NewJSONHandler(cmd.ErrOrStderr(), opts))
	} else {
		cfg.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), opts))
	}
	if o.live {
		c, err := newLiveChecker(cmd, o.liveScan, cfg.Logger)
		if err != nil {
			return cfg, err
		}
		cfg.Live = c
	}
	cfg.StaleAfter = o.staleAfter
	cfg.VerifiedPolicy, cfg.EncryptedPolicy = o.verifiedPolicy, o.encryptedPolicy
	cfg.LiveTimeout, cfg.LiveRate = o.liveTimeout, o.liveRate
	cfg.MaxBatch, cfg.MaxConns = o.maxBatch, o.maxConns
	return cfg, nil
}

// isLoopback reports whether a listen host binds loopback only.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// readToken reads a bearer token: the file's content without surrounding
// white space, 16 to 4096 printable ASCII characters. A file group or others
// may read or write is refused, as ssh refuses such a private key: the token
// may already be known to every local user.
func readToken(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%s is open to group or others (mode %04o): make it readable by its owner only (chmod 600 %s) and replace the token if others could read it", path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, 4097))
	if err != nil {
		return nil, err
	}
	b = bytes.TrimSpace(b)
	switch {
	case len(b) > 4096:
		return nil, errors.New("token longer than 4096 characters")
	case len(b) < 16:
		return nil, errors.New("token shorter than 16 characters")
	}
	for _, c := range b {
		if c <= ' ' || c > '~' {
			return nil, errors.New("token must be printable ASCII without spaces")
		}
	}
	return b, nil
}

func runServe(ctx context.Context, cmd *cobra.Command, o *serveOptions, cfg gateway.Config) error {
	log := cfg.Logger
	cacheFile, err := serveCacheFile(o.cacheFile, o.db)
	if err != nil { // only the default can fail: serve without it
		log.Warn("no cache file: restarted while the database is unreachable, serve would have no data (pass --cache-file PATH)", "err", err)
	}
	cfg.CacheFile = cacheFile
	var (
		stMu   sync.Mutex
		opened *store.Store
	)
	defer func() {
		stMu.Lock()
		defer stMu.Unlock()
		if opened != nil {
			opened.Close()
		}
	}()
	st, err := openExisting(ctx, o.db, !o.live)
	var usage *exitError
	switch {
	case errors.As(err, &usage):
		// Not a tlsready database, or no such SQLite file: a mistake to
		// report, not an outage to wait out.
		return err
	case err != nil:
		// The database is unreachable: start anyway, from the cache file
		// if there is one, and keep trying to open it (Watch).
		log.Warn("database unreachable at start: answering from the cache file if any, retrying in the background",
			"db", store.RedactURL(o.db), "err", err)
		cfg.OpenStore = func(ctx context.Context) (*store.Store, error) {
			st, err := openExisting(ctx, o.db, !o.live)
			if err == nil {
				stMu.Lock()
				opened = st
				stMu.Unlock()
			}
			return st, err
		}
	default:
		opened = st
		cfg.Store = st
	}
	srv, err := gateway.New(cfg)
	if err != nil {
		return usageErr("%v", err)
	}
	defer srv.Close()
	if cfg.Store == nil {
		switch info, err := srv.LoadCacheFile(cacheFile); {
		case cacheFile == "":
			log.Warn("no cache file: no data until the database answers (the socketmap answers not found)")
		case err != nil:
			log.Warn("cache file not loaded: no data until the database answers (the socketmap answers not found)", "path", cacheFile, "err", err)
		default:
			log.Info("gateway cache loaded from the cache file", "path", cacheFile, "domains", info.Records,
				"synced_at", info.SyncedAt.Format(time.RFC3339), "age", time.Since(info.SyncedAt).Round(time.Second).String())
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, ctx := errgroup.WithContext(ctx)
	var lc net.ListenConfig
	for _, l := range []struct {
		proto, addr string
		serve       func(context.Context, net.Listener) error
	}{{"http", o.httpAddr, srv.ServeAPI}, {"socketmap", o.socketmapAddr, srv.ServeSocketmap}, {"ops", o.opsAddr, srv.ServeOps}} {
		if l.addr == "" {
			continue
		}
		ln, err := lc.Listen(ctx, "tcp", l.addr)
		if err != nil {
			cancel()
			g.Wait()
			return fmt.Errorf("serve: %w", err)
		}
		log.Info("listening", "protocol", l.proto, "addr", ln.Addr().String())
		g.Go(func() error { return l.serve(ctx, ln) })
	}
	g.Go(func() error { return srv.Watch(ctx) })
	err = g.Wait()
	log.Info("stopped", "err", err)
	return err
}

// serveCacheFile resolves --cache-file: "none" is off; "" is the default,
// off for an SQLite file (a copy on the same disk adds nothing when the
// file cannot be read) and, for a postgres:// URL,
// serve-<hash of the URL without its password>.cache in $CACHE_DIRECTORY
// (systemd's CacheDirectory=) or else the user's cache directory
// (os.UserCacheDir()/tlsready), created 0700; an error only when that
// directory cannot be had (serve then runs without a cache file).
func serveCacheFile(flag, db string) (string, error) {
	switch {
	case flag == "none":
		return "", nil
	case flag != "":
		return flag, nil
	case !store.IsPostgresURL(db):
		return "", nil
	}
	dir := os.Getenv("CACHE_DIRECTORY")
	if i := strings.IndexByte(dir, ':'); i >= 0 { // several directories: the first
		dir = dir[:i]
	}
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("no cache directory for the default: %w", err)
		}
		dir = filepath.Join(base, "tlsready")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", err
		}
	}
	sum := sha256.Sum256([]byte(store.RedactURL(db)))
	return filepath.Join(dir, "serve-"+hex.EncodeToString(sum[:6])+".cache"), nil
}
