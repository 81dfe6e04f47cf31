package gateway

import (
	"cmp"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Prometheus series of one Server (its own registry: no
// package-level state). Labels never carry domains or addresses.
type metrics struct {
	httpRequests    *prometheus.CounterVec   // endpoint, code
	httpDuration    *prometheus.HistogramVec // endpoint
	smRequests      *prometheus.CounterVec   // status
	smDuration      prometheus.Observer
	lookups         *prometheus.CounterVec // source (cache|batch|socketmap|live|store), outcome (hit|no-policy|stale|miss)
	answers         *prometheus.CounterVec // source (http|socketmap), policy (dane-only|secure|verify|encrypt|may|none)
	reloads         *prometheus.CounterVec // result
	live            *prometheus.CounterVec // outcome
	cacheFileWrites *prometheus.CounterVec // result (ok|error)

	smOK, smNotFound, smTemp, smPerm prometheus.Counter
	storeErrors                      prometheus.Counter
	// lookups pre-bound by source (srcCache...srcStore).
	lookupHit, lookupStale, lookupMiss [5]prometheus.Counter
	lookupNoPolicy                     prometheus.Counter // socketmap only
	// answers pre-bound by source (srcHTTP, srcSocketmapAnswer) and policy level (policyLevels).
	answerBy [2][len(policyLevels)]prometheus.Counter
}

// Answer sources of the answers metric.
const (
	srcHTTP            = 0
	srcSocketmapAnswer = 1
)

// policyLevels are the policy label values: the Postfix level (the first
// word of a policy), "none" for no policy.
var policyLevels = [...]string{PolicyDANEOnly, PolicySecure, PolicyVerify, PolicyEncrypt, PolicyMay, "none"}

// countAnswer counts an answer of source src (srcHTTP, srcSocketmapAnswer)
// carrying policy ("" for none).
func (s *Server) countAnswer(src int, policy string) {
	level, _, _ := strings.Cut(policy, " ")
	level = cmp.Or(level, "none")
	for i, l := range policyLevels {
		if l == level {
			s.m.answerBy[src][i].Inc()
			return
		}
	}
	s.m.answers.WithLabelValues([]string{"http", "socketmap"}[src], level).Inc() // not reached: every policy is one of the levels
}

// latencyBuckets resolve the sub-millisecond range the gateway aims at.
var latencyBuckets = []float64{25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2e-3, 5e-3, 10e-3, 50e-3, 0.25, 1, 5, 30}

func newMetrics(s *Server) metrics {
	const ns = "tlsready_gateway_"
	m := metrics{
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ns + "http_requests_total", Help: "HTTP requests by endpoint and status code.",
		}, []string{"endpoint", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: ns + "http_request_duration_seconds", Help: "HTTP request latency by endpoint.", Buckets: latencyBuckets,
		}, []string{"endpoint"}),
		smRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ns + "socketmap_requests_total", Help: "Socketmap requests by reply status (OK, NOTFOUND, TEMP, PERM).",
		}, []string{"status"}),
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ns + "lookups_total", Help: "Domain lookups by source (cache, batch, socketmap: from memory; store: before the first cache load) and outcome: hit (a fresh result; for the socketmap only when answered OK with a policy), no-policy (socketmap: a fresh result whose verdict maps to no policy, answered NOTFOUND), stale, miss.",
		}, []string{"source", "outcome"}),
		answers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ns + "answers_total", Help: "Answers by source (http: GET and batch items; socketmap: OK and NOTFOUND replies) and Postfix policy level (dane-only, secure, verify, encrypt, may; none: no policy, the socketmap's NOTFOUND).",
		}, []string{"source", "policy"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ns + "cache_reloads_total", Help: "Cache refreshes from the store by result: full (every result read), incremental (only the changed ones), error; cache-file: loaded from the cache file at a start without the store.",
		}, []string{"result"}),
		live: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ns + "live_checks_total", Help: "On-demand live checks by outcome.",
		}, []string{"outcome"}),
		cacheFileWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ns + "cache_file_writes_total", Help: "Writes of the cache file (--cache-file) by result: ok, error.",
		}, []string{"result"}),
	}
	smDur := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: ns + "socketmap_request_duration_seconds", Help: "Socketmap request latency (request read to reply buffered).", Buckets: latencyBuckets,
	})
	m.smDuration = smDur
	m.smOK = m.smRequests.WithLabelValues("OK")
	m.smNotFound = m.smRequests.WithLabelValues("NOTFOUND")
	m.smTemp = m.smRequests.WithLabelValues("TEMP")
	m.smPerm = m.smRequests.WithLabelValues("PERM")
	for i, src := range []string{"cache", "batch", "socketmap", "live", "store"} {
		m.lookupHit[i] = m.lookups.WithLabelValues(src, "hit")
		m.lookupStale[i] = m.lookups.WithLabelValues(src, "stale")
		m.lookupMiss[i] = m.lookups.WithLabelValues(src, "miss")
	}
	m.lookupNoPolicy = m.lookups.WithLabelValues("socketmap", "no-policy")
	for i, src := range []string{"http", "socketmap"} {
		for j, level := range policyLevels {
			m.answerBy[i][j] = m.answers.WithLabelValues(src, level)
		}
	}
	storeErrors := prometheus.NewCounter(prometheus.CounterOpts{
		Name: ns + "store_errors_total", Help: "Store reads that failed (lookups before the first cache load).",
	})
	m.storeErrors = storeErrors

	snap := func(f func(t *snapshot) float64) func() float64 {
		return func() float64 {
			t := s.snap.Load()
			if t == nil {
				return 0
			}
			return f(t)
		}
	}
	gauges := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: ns + "cache_domains", Help: "Domains in the cache snapshot."},
			snap(func(t *snapshot) float64 { return float64(t.len()) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: ns + "pins_active", Help: "Pins (tlsready pin) that apply now: their policy wins over the scan results."},
			snap(func(t *snapshot) float64 {
				n, now := 0, s.cfg.Now()
				for _, p := range t.pins {
					if p.Active(now) {
						n++
					}
				}
				return float64(n)
			})),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: ns + "cache_data_version", Help: "Store data version of the cache snapshot."},
			snap(func(t *snapshot) float64 { return float64(t.version) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: ns + "cache_load_seconds", Help: "How long the last full cache load took."},
			snap(func(t *snapshot) float64 { return t.loadTook.Seconds() })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: ns + "cache_age_seconds", Help: "Time since the cache was last loaded or updated."},
			snap(func(t *snapshot) float64 { return s.cfg.Now().Sub(t.loadedAt).Seconds() })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: ns + "data_age_seconds", Help: "Age of the newest scan result in the cache (how long since the batch last wrote)."},
			snap(func(t *snapshot) float64 {
				if t.newest == 0 {
					return 0
				}
				return s.cfg.Now().Sub(time.Unix(0, t.newest)).Seconds()
			})),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: ns + "cache_sync_age_seconds", Help: "Time since the last successful refresh, when the cache held everything the store had: how far answers may lag the store; grows while the store is unreachable (0 before the first)."},
			func() float64 { return s.Status().Age.Seconds() }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: ns + "cache_last_refresh_success_timestamp_seconds", Help: "Unix time of the last successful refresh (0 before the first)."},
			func() float64 { return unixSeconds(s.syncedAt.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: ns + "cache_last_refresh_failure_timestamp_seconds", Help: "Unix time of the last failed refresh (0 if none)."},
			func() float64 { return unixSeconds(s.failedAt.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: ns + "cache_refresh_failing", Help: "1 while the last refresh failed (answers come from memory; /healthz says degraded), else 0."},
			func() float64 {
				if s.failedSince.Load() > 0 {
					return 1
				}
				return 0
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: ns + "cache_refresh_consecutive_failures", Help: "Refreshes failed since the last successful one."},
			func() float64 { return float64(s.failedSince.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: ns + "cache_from_file", Help: "1 while the answers come from the cache file (a start without the store), not yet from the store; /healthz says degraded."},
			func() float64 {
				if s.Status().FromCacheFile {
					return 1
				}
				return 0
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: ns + "cache_ready", Help: "1 once the first cache load (from the store or the cache file) completed."},
			func() float64 {
				if s.Ready() {
					return 1
				}
				return 0
			}),
	}
	s.reg.MustRegister(m.httpRequests, m.httpDuration, m.smRequests, smDur, m.lookups, m.answers, m.reloads, m.live, m.cacheFileWrites, storeErrors)
	s.reg.MustRegister(gauges...)
	return m
}

// unixSeconds converts Unix nanoseconds to seconds (0 stays 0).
func unixSeconds(ns int64) float64 {
	if ns == 0 {
		return 0
	}
	return float64(ns) / 1e9
}
