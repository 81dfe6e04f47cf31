// Package gateway answers a mail gateway, from memory, what a recipient
// domain's mail TLS supports: the JSON HTTP API of `tlsready serve` and a
// Postfix socketmap (socketmap_table(5)) that maps verdicts to Postfix TLS
// policies for smtp_tls_policy_maps (postconf(5)).
//
// The answers come from an in-memory snapshot of the store's latest results,
// reloaded in the background when store.DataVersion changes; lookups never
// touch SQLite and the socketmap never scans. Optional live checks
// (HTTP ?live=1) scan a domain the cache does not know, bounded by a timeout
// and a rate limit, and save the result.
//
// It owns the mapping from verdicts to gateway policies (policy.go) and the
// cache file a node restarts from. It must not know how a domain is scanned
// (it calls a scanner.Scanner for live checks only) nor how the store keeps
// its tables: it reads the store's read model (store.Answer) and its data
// version, on SQLite or PostgreSQL alike.
package gateway

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tlsready/tlsready/scanner/dnsname"
	"github.com/tlsready/tlsready/scanner/limiter"
	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/store"
)

// Checker scans one domain live (the scanner implements it). Check must be
// safe for concurrent use, honour ctx (return promptly once it is done) and
// return a result for the domain with a valid verdict, or an error.
type Checker interface {
	Check(ctx context.Context, domain string) (result.Result, error)
}

// Defaults for the zero values of Config.
const (
	// DefaultStaleAfter: results older than this are answered as unknown by
	// the socketmap. Four days stays below Postfix's default
	// maximal_queue_lifetime (5d): mail deferred because a domain broke what
	// we enforce is delivered under the default policy once the entry goes
	// stale, before Postfix would bounce it. It assumes a daily batch scan
	// and tolerates a few missed runs.
	DefaultStaleAfter      = 96 * time.Hour
	DefaultLiveTimeout     = 30 * time.Second
	DefaultLiveRate        = 1.0 // live checks per second, all clients together
	DefaultMaxBatch        = 1000
	DefaultMaxConns        = 512
	DefaultRefreshInterval = time.Second
	DefaultIdleTimeout     = 60 * time.Second // socketmap connections; Postfix closes its own after ~10 s
	// DefaultCacheFileInterval: the cache file is rewritten at most this
	// often (a million domains take about a second to write).
	DefaultCacheFileInterval = time.Minute
	storeOpenTimeout         = 10 * time.Second // one OpenStore attempt
	maxOverlay               = 10000            // live results kept beside the snapshot
)

// Config configures a Server. Zero values take the documented defaults.
type Config struct {
	Store *store.Store // the store; read-only is enough unless Live is set. Nil: OpenStore opens it
	// OpenStore opens the store when Store is nil: Refresh calls it until
	// it succeeds (a node started while its database is unreachable).
	OpenStore func(context.Context) (*store.Store, error)
	// CacheFile: when set, the cache is written there (WriteCacheFile)
	// after refreshes that changed it, at most every CacheFileInterval,
	// and LoadCacheFile reads it back at a start without the store.
	CacheFile         string
	CacheFileInterval time.Duration    // 0: DefaultCacheFileInterval
	Live              Checker          // nil: live checks disabled (?live=1 answers 403)
	StaleAfter        time.Duration    // 0: DefaultStaleAfter
	VerifiedPolicy    string           // Postfix level for "verified": "verify" (default) or "may"
	EncryptedPolicy   string           // Postfix level for "encrypted": "encrypt" (default) or "may"
	Token             []byte           // nil: no authentication; else every HTTP request needs "Authorization: Bearer <Token>"
	LiveTimeout       time.Duration    // 0: DefaultLiveTimeout
	LiveRate          float64          // live checks per second (burst: one second's worth, at least 1); 0: DefaultLiveRate
	MaxBatch          int              // most domains plus recipients in one POST /v1/lookup; 0: DefaultMaxBatch
	MaxConns          int              // open connections per listener; 0: DefaultMaxConns
	RefreshInterval   time.Duration    // how often DataVersion is polled; 0: DefaultRefreshInterval
	IdleTimeout       time.Duration    // idle socketmap and HTTP keep-alive connections; 0: DefaultIdleTimeout
	Logger            *slog.Logger     // nil: discard; debug level only, never addresses
	Now               func() time.Time // nil: time.Now
}

// Validate reports what is wrong with the configuration (after defaults).
func (c *Config) Validate() error {
	var errs []error
	if c.Store == nil && c.OpenStore == nil {
		errs = append(errs, errors.New("gateway: Config.Store or Config.OpenStore is required"))
	}
	if c.VerifiedPolicy != PolicyVerify && c.VerifiedPolicy != PolicyMay {
		errs = append(errs, fmt.Errorf("gateway: verified policy %q: want %q or %q", c.VerifiedPolicy, PolicyVerify, PolicyMay))
	}
	if c.EncryptedPolicy != PolicyEncrypt && c.EncryptedPolicy != PolicyMay {
		errs = append(errs, fmt.Errorf("gateway: encrypted policy %q: want %q or %q", c.EncryptedPolicy, PolicyEncrypt, PolicyMay))
	}
	if c.StaleAfter < 0 || c.LiveTimeout < 0 || c.LiveRate < 0 || c.MaxBatch < 0 || c.MaxConns < 0 ||
		c.RefreshInterval < 0 || c.IdleTimeout < 0 || c.CacheFileInterval < 0 {
		errs = append(errs, errors.New("gateway: negative durations, rates or limits"))
	}
	return errors.Join(errs...)
}

func (c *Config) setDefaults() {
	c.StaleAfter = cmp.Or(c.StaleAfter, DefaultStaleAfter)
	c.VerifiedPolicy = cmp.Or(c.VerifiedPolicy, PolicyVerify)
	c.EncryptedPolicy = cmp.Or(c.EncryptedPolicy, PolicyEncrypt)
	c.LiveTimeout = cmp.Or(c.LiveTimeout, DefaultLiveTimeout)
	c.LiveRate = cmp.Or(c.LiveRate, DefaultLiveRate)
	c.MaxBatch = cmp.Or(c.MaxBatch, DefaultMaxBatch)
	c.MaxConns = cmp.Or(c.MaxConns, DefaultMaxConns)
	c.RefreshInterval = cmp.Or(c.RefreshInterval, DefaultRefreshInterval)
	c.IdleTimeout = cmp.Or(c.IdleTimeout, DefaultIdleTimeout)
	c.CacheFileInterval = cmp.Or(c.CacheFileInterval, DefaultCacheFileInterval)
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Server answers lookups from the cache. Create it with New, keep the cache
// fresh with Watch, and serve with ServeAPI / ServeSocketmap (or Handler).
type Server struct {
	cfg Config
	log *slog.Logger

	snap atomic.Pointer[snapshot] // nil until the first load
	st   atomic.Pointer[store.Store]

	cacheTried   atomic.Bool // fallBackToCacheFile ran
	cacheWritten int64       // data version last written to CacheFile (Watch's goroutine only)
	cacheWriteAt time.Time   // when

	ovMu    sync.Mutex
	overlay map[string]overlayEntry // live results not (yet) in the snapshot
	ovLen   atomic.Int32

	reloadMu sync.Mutex // one reload at a time
	mergeMin int        // see mergeAt; tests lower it

	// How old the cache is: when a refresh last succeeded (the store
	// answered and the cache matched it afterwards), when one last failed
	// and how many failed since the last success (Unix nanoseconds, 0: never).
	syncedAt    atomic.Int64
	failedAt    atomic.Int64
	failedSince atomic.Int64

	limiter *limiter.Limiter // live checks (nil without Config.Live); stopped by Close
	flMu    sync.Mutex
	flights map[string]*flight

	reg *prometheus.Registry
	m   metrics

	// test hooks (set only by this package's tests, before serving)
	afterReload func(*snapshot)
	liveJoined  func(domain string)
}

type overlayEntry struct {
	rec       record
	savedAt   time.Time
	persisted bool // saved to the store: the next snapshot read after savedAt decides
}

// New validates cfg and returns a Server with an empty cache (not ready:
// lookups answer 503 / TEMP until the first load; see Watch and Refresh).
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		overlay:  map[string]overlayEntry{},
		flights:  map[string]*flight{},
		reg:      prometheus.NewRegistry(),
		mergeMin: defaultMergeMin,
	}
	if cfg.Store != nil {
		s.st.Store(cfg.Store)
	}
	if cfg.Live != nil {
		s.limiter = limiter.PerSecond(cfg.LiveRate)
	}
	s.m = newMetrics(s)
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return s, nil
}

// Close releases what New started for live checks (the rate limiter's
// goroutines). Lookups after Close still answer from the cache; live checks
// are refused as over the rate (ErrLiveRateLimited).
func (s *Server) Close() {
	if s.limiter != nil {
		s.limiter.Stop()
	}
}

// Ready reports whether the first cache load has completed.
func (s *Server) Ready() bool { return s.snap.Load() != nil }

// Refresh brings the cache up to date with the store when the store's
// DataVersion differs from the snapshot's: the first time (or when the
// version went back: another database) it loads every result; afterwards it
// applies only the results changed since the snapshot's version
// (store.AnswersSince). The new snapshot replaces the old one atomically;
// lookups continue meanwhile.
//
// A successful Refresh (reloaded or not) marks the cache as in step with the
// store as of when it asked; a failed one leaves the cache as it was and is
// counted until the next success (Status, /healthz, /metrics).
func (s *Server) Refresh(ctx context.Context) (reloaded bool, err error) {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	asOf := s.cfg.Now()
	defer func() {
		switch {
		case err == nil:
			s.syncedAt.Store(asOf.UnixNano())
			s.failedSince.Store(0)
		case ctx.Err() == nil: // not a shutdown
			s.failedAt.Store(s.cfg.Now().UnixNano())
			s.failedSince.Add(1)
		}
	}()
	st, err := s.openStore(ctx)
	if err != nil {
		s.m.reloads.WithLabelValues("error").Inc()
		return false, err
	}
	v, err := st.DataVersion(ctx)
	if err != nil {
		s.m.reloads.WithLabelValues("error").Inc()
		return false, err
	}
	cur := s.snap.Load()
	if cur != nil && cur.fromFile {
		cur = nil // loaded from the cache file: only a full load is right
	}
	if cur != nil && cur.version == v {
		return false, nil
	}
	start := time.Now()
	kind := "incremental"
	var (
		next    *snapshot
		skipped int
	)
	if cur != nil && v > cur.version {
		next, skipped, err = s.loadChanges(ctx, cur)
	}
	if next == nil && err == nil {
		kind = "full"
		next, skipped, err = s.loadFull(ctx)
	}
	if err != nil {
		s.m.reloads.WithLabelValues("error").Inc()
		return false, fmt.Errorf("gateway: load cache: %w", err)
	}
	pins, badPins, err := loadPins(ctx, st)
	if err != nil {
		s.m.reloads.WithLabelValues("error").Inc()
		return false, fmt.Errorf("gateway: load pins: %w", err)
	}
	next.pins = pins
	skipped += badPins
	next.loadedAt = s.cfg.Now()
	s.snap.Store(next)
	s.pruneOverlay(start)
	s.m.reloads.WithLabelValues(kind).Inc()
	s.log.Debug("gateway cache loaded", "kind", kind, "domains", next.len(), "delta", next.delta.len(),
		"skipped", skipped, "data_version", next.version, "took", time.Since(start))
	if skipped > 0 {
		s.log.Warn("gateway: results not cached (invalid domain, verdict or stored JSON)", "count", skipped)
	}
	if s.afterReload != nil {
		s.afterReload(next)
	}
	return true, nil
}

// store returns the store, nil while it has not been opened (OpenStore).
func (s *Server) store() *store.Store { return s.st.Load() }

// openStore returns the store, opening it with Config.OpenStore (bounded
// by storeOpenTimeout) when it is not open yet.
func (s *Server) openStore(ctx context.Context) (*store.Store, error) {
	if st := s.st.Load(); st != nil {
		return st, nil
	}
	ctx, cancel := context.WithTimeout(ctx, storeOpenTimeout)
	defer cancel()
	st, err := s.cfg.OpenStore(ctx)
	if err != nil {
		return nil, fmt.Errorf("gateway: open store: %w", err)
	}
	s.st.Store(st)
	s.log.Info("gateway: store opened")
	return st, nil
}

// CacheStatus says how old the cache's data is (GET /healthz).
type CacheStatus struct {
	Ready bool // the first load completed
	// SyncedAt is when the last successful refresh asked the store: the
	// cache held everything the store had then. Zero before the first.
	SyncedAt time.Time
	// Age is Now - SyncedAt: how far the answers may lag the store. It
	// grows with the refresh interval's jitter normally and without bound
	// while the store cannot be reached.
	Age time.Duration
	// RefreshFailed: the last refresh failed (the store did not answer or
	// the cache could not be read); lookups are answered from memory.
	RefreshFailed bool
	Failures      int64     // refreshes failed since the last success
	FailedAt      time.Time // the last failure; zero if none
	// FromCacheFile: the answers come from the cache file (LoadCacheFile),
	// not yet from the store.
	FromCacheFile bool
}

// Status returns the cache's CacheStatus now.
func (s *Server) Status() CacheStatus {
	now := s.cfg.Now()
	st := CacheStatus{Ready: s.Ready(), Failures: s.failedSince.Load()}
	if sn := s.snap.Load(); sn != nil {
		st.FromCacheFile = sn.fromFile
	}
	st.RefreshFailed = st.Failures > 0
	if ns := s.syncedAt.Load(); ns != 0 {
		st.SyncedAt = time.Unix(0, ns).UTC()
		st.Age = max(0, now.Sub(st.SyncedAt))
	}
	if ns := s.failedAt.Load(); ns != 0 {
		st.FailedAt = time.Unix(0, ns).UTC()
	}
	return st
}

// Watch loads the cache, then polls the store's DataVersion every
// RefreshInterval and applies the changes (Refresh) until ctx is done (it
// then returns nil). A refresh costs CPU that a running batch scan also
// wants, so after one that took d the next waits at least 4·d: the cache
// spends at most a fifth of one core on refreshing. An update of a few
// batches of results takes milliseconds; only the first load (and the
// occasional in-memory merge) takes longer.
func (s *Server) Watch(ctx context.Context) error {
	tick := time.NewTicker(s.cfg.RefreshInterval)
	defer tick.Stop()
	var next time.Time
	for {
		if time.Now().After(next) {
			start := time.Now()
			reloaded, err := s.Refresh(ctx)
			switch {
			case ctx.Err() != nil:
				return nil
			case err != nil:
				s.log.Warn("gateway: cache refresh failed", "err", err)
				s.fallBackToCacheFile()
			case reloaded:
				next = start.Add(5 * time.Since(start))
			}
			if err == nil {
				s.maybeWriteCacheFile()
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// pruneOverlay drops live results the new snapshot has authority over: those
// saved before the snapshot's load began, and unsaved ones gone stale.
func (s *Server) pruneOverlay(loadStart time.Time) {
	if s.ovLen.Load() == 0 {
		return
	}
	now := s.cfg.Now()
	s.ovMu.Lock()
	defer s.ovMu.Unlock()
	for d, o := range s.overlay {
		if (o.persisted && o.savedAt.Before(loadStart)) || s.stale(o.rec.ScannedAt, now) {
			delete(s.overlay, d)
		}
	}
	s.ovLen.Store(int32(len(s.overlay)))
}

// addOverlay remembers a live result until a snapshot covers it.
func (s *Server) addOverlay(rec record, persisted bool) {
	s.ovMu.Lock()
	defer s.ovMu.Unlock()
	if _, ok := s.overlay[rec.Domain]; !ok && len(s.overlay) >= maxOverlay {
		return
	}
	s.overlay[rec.Domain] = overlayEntry{rec: rec, savedAt: time.Now(), persisted: persisted}
	s.ovLen.Store(int32(len(s.overlay)))
}

// get returns the cached record of an A-label domain: a live result newer
// than the snapshot first, then the snapshot.
func (s *Server) get(domain string) (record, bool) {
	if s.ovLen.Load() > 0 {
		s.ovMu.Lock()
		o, ok := s.overlay[domain]
		s.ovMu.Unlock()
		if ok {
			return o.rec, true
		}
	}
	return s.snap.Load().get(domain)
}

func (s *Server) stale(scannedAt, now time.Time) bool {
	return !now.Before(scannedAt.Add(s.cfg.StaleAfter))
}

// Answer is the gateway's answer for one domain (the HTTP API's JSON).
type Answer struct {
	Domain        string         `json:"domain"`                   // A-label
	DomainUnicode string         `json:"domain_unicode,omitempty"` // U-label form when it differs
	Verdict       result.Verdict `json:"verdict"`                  // one of the ten, or "unknown"
	Flags         []string       `json:"flags"`
	ScannedAt     time.Time      `json:"scanned_at,omitzero"`
	ValidUntil    time.Time      `json:"valid_until,omitzero"` // ScannedAt + stale-after
	Stale         bool           `json:"stale"`                // past ValidUntil: the socketmap answers not found
	Policy        string         `json:"policy"`               // the socketmap's Postfix policy, "" for not found
	// PendingPolicy: the stricter policy the latest scan calls for, not
	// answered until a second scan confirms it ("" when none waits).
	PendingPolicy string   `json:"pending_policy,omitempty"`
	Pin           *PinInfo `json:"pin,omitempty"` // the pin Policy comes from, nil for none
	MX            []string `json:"mx"`
	Live          bool     `json:"live,omitempty"`  // just scanned on demand
	Error         string   `json:"error,omitempty"` // batch item that is not a valid domain/address
}

// ErrStore is returned (wrapped) when, before the first cache load, the
// store could not answer.
var ErrStore = errors.New("gateway: store lookup failed")

// storeLookupTimeout bounds one store read while the cache is still loading.
const storeLookupTimeout = 2 * time.Second

// Lookup answers for one domain (any form NormalizeDomain accepts). A domain
// not in the cache answers verdict "unknown".
func (s *Server) Lookup(ctx context.Context, domain string) (Answer, error) {
	d, err := NormalizeDomain(domain)
	if err != nil {
		return Answer{}, err
	}
	return s.answer(ctx, d, srcCache)
}

// Lookup sources, for the metrics.
const (
	srcCache     = 0
	srcBatch     = 1
	srcSocketmap = 2
	srcLive      = 3
	srcStore     = 4 // before the first cache load
)

// lookup returns the record of a normalised domain: a live result newer than
// the snapshot, else the snapshot; before the first load completes (a
// million domains take seconds to load), one bounded read from the store.
// It counts the lookup, but for srcSocketmap from memory: the socketmap
// counts its own once it knows the policy (a fresh result without one is
// no hit there).
func (s *Server) lookup(ctx context.Context, d string, src int) (record, bool, error) {
	rec, ok, _, err := s.lookupFrom(ctx, d, src)
	return rec, ok, err
}

// lookupFrom is lookup, and says whether the answer came from memory.
func (s *Server) lookupFrom(ctx context.Context, d string, src int) (rec record, ok, fromMemory bool, err error) {
	rec, ok = s.get(d)
	if ok || s.snap.Load() != nil {
		if src != srcSocketmap {
			s.countLookup(src, rec, ok)
		}
		return rec, ok, true, nil
	}
	ctx, cancel := context.WithTimeout(ctx, storeLookupTimeout)
	defer cancel()
	st := s.store()
	if st == nil {
		s.m.storeErrors.Inc()
		return record{}, false, false, fmt.Errorf("%w: the store is not open", ErrStore)
	}
	a, err := st.LookupAnswer(ctx, d)
	if err == nil && a.Verdict == "" {
		err = fmt.Errorf("lookup: the stored result of %s does not decode", d)
	}
	if errors.Is(err, store.ErrNotFound) {
		s.countLookup(srcStore, record{}, false)
		return record{}, false, false, nil
	}
	if err != nil {
		s.m.storeErrors.Inc()
		return record{}, false, false, fmt.Errorf("%w: %w", ErrStore, err)
	}
	rec = recordOfAnswer(&a)
	rec.Domain = d
	s.countLookup(srcStore, rec, true)
	return rec, true, false, nil
}

func (s *Server) countLookup(src int, rec record, found bool) {
	switch {
	case !found:
		s.m.lookupMiss[src].Inc()
	case s.stale(rec.ScannedAt, s.cfg.Now()):
		s.m.lookupStale[src].Inc()
	default:
		s.m.lookupHit[src].Inc()
	}
}

// answer builds the Answer for a normalised domain.
func (s *Server) answer(ctx context.Context, d string, src int) (Answer, error) {
	rec, ok, err := s.lookup(ctx, d, src)
	if err != nil {
		return Answer{}, err
	}
	if !ok {
		a := Answer{Domain: d, DomainUnicode: dnsname.Unicode(d), Verdict: result.Unknown, Flags: []string{}, MX: []string{}}
		if p, ok := s.pin(d, s.cfg.Now()); ok {
			a.Policy, a.Pin = p.Policy, pinInfo(p)
		}
		return a, nil
	}
	return s.answerOf(rec, s.cfg.Now()), nil
}

func (s *Server) answerOf(rec record, now time.Time) Answer {
	stale := s.stale(rec.ScannedAt, now)
	a := Answer{
		Domain:        rec.Domain,
		DomainUnicode: dnsname.Unicode(rec.Domain),
		Verdict:       rec.Verdict,
		Flags:         rec.Flags,
		ScannedAt:     rec.ScannedAt,
		ValidUntil:    rec.ScannedAt.Add(s.cfg.StaleAfter),
		Stale:         stale,
		MX:            splitList(rec.MX),
	}
	a.Policy, a.PendingPolicy = s.policyPending(rec, stale)
	if p, ok := s.pin(rec.Domain, now); ok {
		a.Policy, a.PendingPolicy, a.Pin = p.Policy, "", pinInfo(p)
	}
	if a.Flags == nil {
		a.Flags = []string{}
	}
	return a
}

func splitList(s string) []string {
	if s == "" {
		return []string{}
	}
	out := make([]string, 0, 4)
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] != ',' {
			i++
		}
		out = append(out, s[:i])
		if i == len(s) {
			break
		}
		s = s[i+1:]
	}
	return out
}
